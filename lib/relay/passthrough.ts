/**
 * POST /linear/graphql: a worker's GraphQL request forwarded to Linear with the app's token for
 * the workspace (workers never hold Linear tokens). The relay keeps one view of Linear's rate
 * limit per workspace: once Linear said RATELIMITED (or Remaining hit 0), every caller is answered
 * at once with a RATELIMITED error shaped like Linear's (HTTP 400, the reset header) until the
 * reset, without reaching Linear. Errors of the relay itself are GraphQL-shaped too, so a client
 * reads them like Linear's. Neither a token nor the worker's Authorization header is forwarded back or logged.
 */
import { FactoryError } from '../errors.ts'
import { logger } from '../log.ts'
import { clampResetAt } from '../ratelimit.ts'
import type { LinearAppSettings } from './app-settings.ts'
import type { FetchFn } from './token-endpoint.ts'
import type { TokenKeeper } from './tokens.ts'

/** Largest request body forwarded (a GraphQL document with its variables). */
export const MAX_GRAPHQL_BODY = 1024 * 1024

/** Headers of Linear's reply passed back to the worker. */
const PASSED_BACK = /^(content-type|retry-after|x-ratelimit-.*|x-complexity)$/i

export interface PassthroughDeps {
  fetch: FetchFn
  now: () => number
  timeoutMs: number
}

export interface RateView {
  remaining: number | null
  resetAt: number | null
  /** Callers are answered RATELIMITED until then (epoch ms); 0 when not limited. */
  limitedUntil: number
}

export interface Passthrough {
  handle(request: Request, opts?: { orgId?: string }): Promise<Response>
  /** The rate-limit view per workspace (for /status). */
  rateLimits(): Record<string, RateView>
}

const log = logger('relay-graphql')

function graphqlError(status: number, message: string, code: string, type: string, headers: Record<string, string> = {}): Response {
  const body = { errors: [{ message, extensions: { code, type, userPresentableMessage: message } }] }
  return Response.json(body, { status, headers })
}

function ratelimited(until: number, now: number): Response {
  const body = {
    errors: [
      {
        message: 'Rate limit exceeded',
        extensions: {
          code: 'RATELIMITED',
          type: 'ratelimited',
          userError: true,
          userPresentableMessage: 'You have exceeded the rate limit of the Linear API. Please try again later.',
          retryAfterMs: Math.max(0, until - now),
        },
      },
    ],
  }
  const headers = {
    'x-ratelimit-requests-remaining': '0',
    'x-ratelimit-requests-reset': String(until),
    'retry-after': String(Math.ceil(Math.max(0, until - now) / 1000)),
  }
  return Response.json(body, { status: 400, headers })
}

/** The request body, or null when it is larger than `max` bytes (read no further than that). */
async function readCapped(request: Request, max: number): Promise<Blob | null> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  if (declared > max) return null
  const chunks: Uint8Array[] = []
  let size = 0
  if (request.body) {
    for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length
      if (size > max) return null
      chunks.push(chunk)
    }
  }
  // A Blob, not a stream: the body is sent again when a 401 leads to a retry.
  return new Blob(chunks as BlobPart[])
}

const num = (v: string | null) => (v !== null && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null)

/** The pass-through handler over `keeper` (tokens) and `settings.apiUrl`. */
export function graphqlPassthrough(opts: {
  keeper: TokenKeeper
  settings: LinearAppSettings
  deps?: Partial<PassthroughDeps>
}): Passthrough {
  const deps: PassthroughDeps = { fetch: (input, init) => fetch(input, init), now: Date.now, timeoutMs: 30_000, ...opts.deps }
  const views = new Map<string, RateView>()

  /** Update the view from one reply of Linear (its headers, and its body when it is an error). */
  function observe(orgId: string, res: Response, body: ArrayBuffer): void {
    const now = deps.now()
    const view = views.get(orgId) ?? { remaining: null, resetAt: null, limitedUntil: 0 }
    const remaining = num(res.headers.get('x-ratelimit-requests-remaining'))
    const reset = num(res.headers.get('x-ratelimit-requests-reset'))
    if (remaining !== null) view.remaining = remaining
    if (reset !== null) view.resetAt = reset
    let limited = remaining === 0 && reset !== null && reset > now
    if (!res.ok) {
      try {
        const errors = (JSON.parse(Buffer.from(body).toString('utf8')) as { errors?: { extensions?: { code?: string } }[] }).errors
        if (errors?.some((e) => e.extensions?.code === 'RATELIMITED')) limited = true
      } catch {}
    }
    if (limited) {
      // Linear's reset, else the complexity reset, else a minute; never trusted more than an hour ahead.
      const resetAt = reset ?? num(res.headers.get('x-ratelimit-complexity-reset')) ?? now + 60_000
      view.limitedUntil = Math.max(view.limitedUntil, clampResetAt(resetAt, now))
      log.warn(`org ${orgId}: Linear rate limit reached; answering RATELIMITED until ${new Date(view.limitedUntil).toISOString()}`)
    }
    views.set(orgId, view)
  }

  return {
    async handle(request, handleOpts = {}) {
      const orgId = handleOpts.orgId ?? request.headers.get('x-linear-organization')
      if (!orgId)
        return graphqlError(
          400,
          'no workspace: send the X-Linear-Organization header (needed when the relay has more than one install)',
          'RELAY_NO_ORGANIZATION',
          'invalid input',
        )
      const limitedUntil = views.get(orgId)?.limitedUntil ?? 0
      if (limitedUntil > deps.now()) return ratelimited(limitedUntil, deps.now())
      const body = await readCapped(request, MAX_GRAPHQL_BODY)
      if (!body) return graphqlError(413, `request body larger than ${MAX_GRAPHQL_BODY} bytes`, 'RELAY_BODY_TOO_LARGE', 'invalid input')
      const send = (token: string) =>
        deps.fetch(opts.settings.apiUrl, {
          method: 'POST',
          headers: { 'content-type': request.headers.get('content-type') ?? 'application/json', authorization: `Bearer ${token}` },
          body,
          signal: AbortSignal.timeout(deps.timeoutMs),
        })
      let res: Response
      let replyBody: ArrayBuffer
      try {
        res = await opts.keeper.callWithToken(orgId, send)
        replyBody = await res.arrayBuffer()
      } catch (err) {
        return failure(orgId, err)
      }
      observe(orgId, res, replyBody)
      const headers = new Headers()
      res.headers.forEach((value, name) => PASSED_BACK.test(name) && headers.set(name, value))
      return new Response(replyBody, { status: res.status, headers })
    },
    rateLimits() {
      return Object.fromEntries([...views].map(([org, v]) => [org, { ...v }]))
    },
  }
}

/** A failure before Linear answered, as a GraphQL-shaped error with the status a client can act on. */
function failure(orgId: string, err: unknown): Response {
  if (err instanceof FactoryError) {
    if (err.code === 'relay_not_installed' && err.details?.reason === 'revoked')
      return graphqlError(403, `${err.message}; reinstall the app via /oauth/authorize`, 'RELAY_INSTALL_REVOKED', 'forbidden')
    if (err.code === 'relay_not_installed')
      return graphqlError(404, `${err.message}; install the app there via /oauth/authorize`, 'RELAY_UNKNOWN_ORGANIZATION', 'forbidden')
    if (err.code === 'relay_oauth_failed' && err.details?.reason === 'invalid_grant')
      return graphqlError(403, `${err.message}; reinstall the app via /oauth/authorize`, 'RELAY_INSTALL_REFUSED', 'forbidden')
    log.error(`org ${orgId}: ${err.message}`)
    return graphqlError(err.code === 'relay_key_mismatch' ? 500 : 502, err.message, 'RELAY_TOKEN_UNAVAILABLE', 'network error')
  }
  const e = err as Error
  const why = e.name === 'TimeoutError' ? 'no reply in time' : e.message
  log.error(`org ${orgId}: Linear is unreachable: ${why}`)
  return graphqlError(502, `Linear is unreachable from the relay: ${why}`, 'RELAY_UPSTREAM_UNREACHABLE', 'network error')
}
