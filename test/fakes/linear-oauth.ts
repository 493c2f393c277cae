/**
 * A fake of Linear's OAuth server and GraphQL endpoint for the relay, faithful where the relay
 * depends on it (Bun.serve on 127.0.0.1, port 0):
 * - GET /oauth/authorize: checks client_id and redirect_uri and "consents" at once: 302 to the
 *   redirect_uri with a one-time code for `nextWorkspace` and the state it was given;
 * - POST /oauth/token (form-encoded, client id + secret in the body): `authorization_code` once per
 *   code (and only with the redirect_uri it was issued for); `refresh_token` rotation: every refresh
 *   returns a NEW pair and retires the old refresh token, but replaying a retired refresh token
 *   within 30 min returns the same new pair; `client_credentials`: a 30-day token, no refresh
 *   token. Refusals are Linear's JSON (`{error: "invalid_grant", error_description}`, HTTP 400);
 * - POST /graphql: the bearer (bare or `Bearer `) must be a currently valid access token (401
 *   otherwise); `viewer`/`organization` are answered, any other document is echoed; RATELIMITED
 *   (HTTP 400 with the reset headers) on demand.
 * Its clock is the test's (`now`), so tokens expire when the test says. It counts requests per
 * grant type and can drop the reply of the next request of a grant (processed, connection reset).
 */
export interface FakeWorkspace {
  orgId: string
  orgName: string
  appUserId: string
}

interface AccessToken {
  token: string
  org: FakeWorkspace
  expiresAt: number
  revoked: boolean
}
interface Pair {
  access_token: string
  refresh_token: string
  expires_in: number
  scope: string
  token_type: 'Bearer'
}
interface RefreshRecord {
  org: FakeWorkspace
  /** Set once used: the pair it was exchanged for, and when. */
  replacedBy: Pair | null
  retiredAt: number | null
}

export const REPLAY_WINDOW_MS = 30 * 60_000
type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials'

export async function startFakeLinearOAuth(opts: { clientId: string; clientSecret: string; now: () => number; workspace?: FakeWorkspace }) {
  let serial = 0
  const salt = Math.random().toString(36).slice(2, 8)
  const mint = (kind: string) => `fake-${kind}-${salt}-${++serial}`
  const codes = new Map<string, { org: FakeWorkspace; redirectUri: string; used: boolean }>()
  const access = new Map<string, AccessToken>()
  const refresh = new Map<string, RefreshRecord>()
  const counts: Record<GrantType | 'graphql' | 'authorize', number> = {
    authorization_code: 0,
    refresh_token: 0,
    client_credentials: 0,
    graphql: 0,
    authorize: 0,
  }
  const drops = new Set<GrantType>()
  let rateLimitedUntil = 0
  let redirectUriSeen: string | null = null
  const fake = {
    nextWorkspace: opts.workspace ?? { orgId: 'org-rose', orgName: 'Rose Labs', appUserId: 'app-user-1' },
    counts,
    /** Every token and code the fake handed out (for "never in a log" checks). */
    issued: new Set<string>(),
    /** The GraphQL requests it answered: authorization header and parsed body. */
    graphqlRequests: [] as { authorization: string | null; body: unknown }[],
    url: '',
    /** X-RateLimit-Requests-Remaining on successful GraphQL replies. */
    requestsRemaining: 4999,
    /** The next request of `grant` is processed, but its reply is lost (connection reset). */
    dropNextReply(grant: GrantType) {
      drops.add(grant)
    },
    /** Answer every GraphQL request RATELIMITED until `resetAt` (epoch ms, the test's clock). */
    rateLimitUntil(resetAt: number) {
      rateLimitedUntil = resetAt
    },
    /** Linear forgets an access token (revoked, or the client secret rotated). */
    revokeAccessToken(token: string) {
      const t = access.get(token)
      if (t) t.revoked = true
    },
    /** True when `token` would be accepted by /graphql now. */
    isValid(token: string): boolean {
      const t = access.get(token)
      return !!t && !t.revoked && t.expiresAt > opts.now()
    },
    /** The refresh tokens Linear still accepts (not retired). */
    liveRefreshTokens(): string[] {
      return [...refresh].filter(([, r]) => r.retiredAt === null).map(([t]) => t)
    },
    get redirectUriSeen() {
      return redirectUriSeen
    },
    stop: () => server.stop(true),
  }

  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => Response.json(body, { status, headers })
  const invalidGrant = (description: string) => json(400, { error: 'invalid_grant', error_description: description })

  function newAccess(org: FakeWorkspace, ttlMs: number): string {
    const token = mint('access')
    access.set(token, { token, org, expiresAt: opts.now() + ttlMs, revoked: false })
    fake.issued.add(token)
    return token
  }
  function newPair(org: FakeWorkspace): Pair {
    const refresh_token = mint('refresh')
    refresh.set(refresh_token, { org, replacedBy: null, retiredAt: null })
    fake.issued.add(refresh_token)
    return {
      access_token: newAccess(org, 86_399_000),
      refresh_token,
      expires_in: 86_399,
      scope: 'read,write,app:assignable,app:mentionable',
      token_type: 'Bearer',
    }
  }

  function token(form: URLSearchParams): Response {
    const grant = form.get('grant_type') as GrantType
    if (grant in counts) counts[grant]++
    if (form.get('client_id') !== opts.clientId || form.get('client_secret') !== opts.clientSecret)
      return json(401, { error: 'invalid_client', error_description: 'Client authentication failed' })
    if (grant === 'authorization_code') {
      const c = codes.get(form.get('code') ?? '')
      if (!c || c.used) return invalidGrant('The authorization code is invalid or was already used')
      if (c.redirectUri !== form.get('redirect_uri')) return invalidGrant('redirect_uri does not match')
      c.used = true
      return json(200, newPair(c.org))
    }
    if (grant === 'refresh_token') {
      const r = refresh.get(form.get('refresh_token') ?? '')
      if (!r) return invalidGrant('The refresh token is invalid')
      if (r.replacedBy) {
        // Linear's grace: the same refresh request within 30 min gets the same new pair again.
        if (opts.now() - (r.retiredAt ?? 0) <= REPLAY_WINDOW_MS) return json(200, r.replacedBy)
        return invalidGrant('The refresh token was already used')
      }
      r.replacedBy = newPair(r.org)
      r.retiredAt = opts.now()
      return json(200, r.replacedBy)
    }
    if (grant === 'client_credentials') {
      const org = fake.nextWorkspace
      return json(200, {
        access_token: newAccess(org, 30 * 86_400_000),
        expires_in: 30 * 86_400,
        scope: form.get('scope') ?? 'read',
        token_type: 'Bearer',
      })
    }
    return json(400, { error: 'unsupported_grant_type', error_description: `grant_type ${grant} is not supported` })
  }

  async function graphql(req: Request): Promise<Response> {
    counts.graphql++
    const authorization = req.headers.get('authorization')
    const body = (await req.json().catch(() => null)) as { query?: string; variables?: unknown } | null
    fake.graphqlRequests.push({ authorization, body })
    const now = opts.now()
    if (rateLimitedUntil > now) {
      const e = {
        message: 'Rate limit exceeded',
        extensions: {
          code: 'RATELIMITED',
          type: 'ratelimited',
          userError: true,
          userPresentableMessage: 'You have exceeded the rate limit of the Linear API. Please try again later.',
        },
      }
      return json(400, { errors: [e] }, { 'X-RateLimit-Requests-Remaining': '0', 'X-RateLimit-Requests-Reset': String(rateLimitedUntil) })
    }
    const bearer = (authorization ?? '').replace(/^Bearer\s+/i, '')
    const t = access.get(bearer)
    if (!t || t.revoked || t.expiresAt <= now) {
      const e = {
        message: 'Authentication required, not authenticated',
        extensions: { code: 'AUTHENTICATION_ERROR', type: 'authentication error', userError: true },
      }
      return json(401, { errors: [e] })
    }
    const headers = {
      'X-RateLimit-Requests-Remaining': String(fake.requestsRemaining),
      'X-RateLimit-Requests-Reset': String(now + 3600_000),
    }
    const query = body?.query ?? ''
    if (/\bviewer\b/.test(query) && /\borganization\b/.test(query))
      return json(200, { data: { viewer: { id: t.org.appUserId }, organization: { id: t.org.orgId, name: t.org.orgName } } }, headers)
    return json(200, { data: { echo: { query, variables: body?.variables ?? null, organizationId: t.org.orgId } } }, headers)
  }

  function authorize(url: URL): Response {
    counts.authorize++
    if (url.searchParams.get('client_id') !== opts.clientId) return new Response('unknown client_id', { status: 400 })
    const redirect = url.searchParams.get('redirect_uri') ?? ''
    redirectUriSeen = redirect
    const code = mint('code')
    fake.issued.add(code)
    codes.set(code, { org: fake.nextWorkspace, redirectUri: redirect, used: false })
    const back = new URL(redirect)
    back.searchParams.set('code', code)
    back.searchParams.set('state', url.searchParams.get('state') ?? '')
    return new Response(null, { status: 302, headers: { location: back.toString() } })
  }

  /** A reply that never arrives: the request was processed, the connection is reset. */
  // (A stream that errors before its first byte makes Bun reset the connection; `undefined` keeps it from printing a stack.)
  const lost = () => new Response(new ReadableStream({ start: (c) => c.error(undefined) }))

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url)
      if (req.method === 'GET' && url.pathname === '/oauth/authorize') return authorize(url)
      if (req.method === 'POST' && url.pathname === '/oauth/token') {
        const form = new URLSearchParams(await req.text())
        const res = token(form)
        const grant = form.get('grant_type') as GrantType
        if (drops.delete(grant)) return lost()
        return res
      }
      if (req.method === 'POST' && url.pathname === '/graphql') return graphql(req)
      return json(404, { error: 'not found' })
    },
  })
  fake.url = `http://127.0.0.1:${server.port}`
  return fake
}

export type FakeLinearOAuth = Awaited<ReturnType<typeof startFakeLinearOAuth>>
