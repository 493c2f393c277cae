/**
 * The relay's HTTP service (Bun.serve): routes to the intake, the worker queue, the Linear side
 * (OAuth, pass-through, first thought) and the operator's views. Logs one line per request
 * (method, route, status, ms, delivery id), never a header or a token.
 */
import type { Server } from 'bun'
import { logger } from '../log.ts'
import { reportToSentry } from '../sentry.ts'
import { DEFAULT_POLICY, longPoll, MAX_WAIT_S, type QueuePolicy } from './events.ts'
import { MAX_WEBHOOK_BYTES, planIntake } from './intake.ts'
import { RelayMetrics } from './metrics.ts'
import { bearerOk } from './settings.ts'
import { DEDUPE_KEEP_MS, type RelayStore } from './store.ts'

/** What the relay does on Linear's side (oauth.ts, passthrough.ts, first-thought.ts); absent = not configured. */
export interface RelayLinear {
  authorize?(req: Request): Promise<Response>
  callback?(req: Request): Promise<Response>
  graphql?(req: Request, orgId: string | null): Promise<Response>
  /** Post the "queued for a worker" thought on a new session; throws when it could not. */
  firstThought?(orgId: string, sessionId: string): Promise<void>
  /** Installs as /status shows them (no tokens). */
  installs?(): Promise<unknown[]>
  /** Linear says the app was revoked in `orgId`: stop using its tokens (and record it). */
  revoked?(orgId: string, detail: string): Promise<void>
}

export interface RelayOptions {
  store: RelayStore
  port: number
  host: string
  webhookSecret: string
  workerTokens: string[]
  linear?: RelayLinear
  policy?: QueuePolicy
  now?: () => number
  /** Log lines go here (default: the relay's consola logger). */
  log?: (line: string) => void
}

export interface RunningRelay {
  url: string
  port: number
  metrics: RelayMetrics
  /** Finish the first thoughts in flight, stop listening, close the store. */
  stop(): Promise<void>
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
const error = (status: number, code: string, message: string) => json({ error: { code, message } }, status)

/** Start the relay on `host:port` (port 0 picks a free one). */
export function startRelay(options: RelayOptions): RunningRelay {
  const { store, linear = {}, policy = DEFAULT_POLICY, now = Date.now } = options
  const metrics = new RelayMetrics()
  const log = options.log ?? ((line: string) => logger('relay').info(line))
  const inflight = new Set<Promise<void>>()
  const lastErrors: { at: number; message: string }[] = []
  const remember = (message: string) => {
    lastErrors.unshift({ at: now(), message })
    lastErrors.length = Math.min(lastErrors.length, 20)
  }

  const worker = (req: Request): string | Response => {
    if (!bearerOk(req.headers.get('authorization'), options.workerTokens))
      return error(401, 'unauthorized', 'a worker bearer token is required')
    const id = req.headers.get('x-worker-id') ?? new URL(req.url).searchParams.get('worker')
    if (!id || !/^[\w.:@-]{1,128}$/.test(id))
      return error(400, 'no_worker_id', 'send X-Worker-Id (letters, digits, . : @ _ -, at most 128)')
    return id
  }

  async function webhook(req: Request): Promise<{ res: Response; delivery?: string }> {
    const started = performance.now()
    const declared = Number(req.headers.get('content-length') ?? '0')
    const raw = declared > MAX_WEBHOOK_BYTES ? null : await readLimited(req, MAX_WEBHOOK_BYTES)
    const plan = raw
      ? planIntake({ headers: req.headers, rawBody: raw, secret: options.webhookSecret, now: now() })
      : ({ kind: 'reject', status: 413, reason: 'too_large', message: `body over ${MAX_WEBHOOK_BYTES} bytes` } as const)
    let res: Response
    let delivery: string | undefined
    if (plan.kind === 'reject') {
      metrics.reject(plan.reason)
      res = error(plan.status, plan.reason, plan.message)
    } else if (plan.kind === 'enqueue') {
      delivery = plan.event.deliveryId
      const result = await store.accept(plan.event)
      if (result.status === 'duplicate') metrics.duplicates++
      else {
        metrics.accepted++
        if (plan.event.action === 'created' && linear.firstThought) firstThought(plan.event.orgId, plan.event.sessionId)
      }
      res = json({ ok: true, id: result.id, duplicate: result.status === 'duplicate' ? result.by : undefined })
    } else if (plan.kind === 'note') {
      delivery = plan.deliveryId
      const { note } = plan
      if (note.kind === 'oauth_revoked' && note.orgId && linear.revoked) await linear.revoked(note.orgId, note.detail)
      else await store.recordNote(note)
      res = json({ ok: true, recorded: plan.note.kind })
    } else {
      delivery = plan.deliveryId
      metrics.ignored++
      log(`ignored webhook ${plan.type} ${plan.action} (only AgentSessionEvent is queued)`)
      res = json({ ok: true, ignored: plan.type })
    }
    metrics.webhookSeconds.observe((performance.now() - started) / 1000)
    return { res, delivery }
  }

  function firstThought(orgId: string, sessionId: string): void {
    const p = linear.firstThought!(orgId, sessionId).then(
      () => void metrics.thoughtsPosted++,
      async (e: unknown) => {
        metrics.thoughtsFailed++
        const detail = `first thought for session ${sessionId} not posted: ${e instanceof Error ? e.message : String(e)}`
        remember(detail)
        log(detail)
        await store.recordNote({ kind: 'thought_failed', orgId, detail, at: now() }).catch(() => undefined)
      },
    )
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  }

  async function ids(req: Request): Promise<string[] | Response> {
    const body = (await req.json().catch(() => null)) as { ids?: unknown } | null
    if (!body || !Array.isArray(body.ids) || body.ids.length > 1000 || !body.ids.every((x) => typeof x === 'string'))
      return error(400, 'bad_body', 'send {"ids": ["<event id>", ...]} (at most 1000)')
    return body.ids as string[]
  }

  async function route(req: Request, url: URL): Promise<{ res: Response; delivery?: string }> {
    const key = `${req.method} ${url.pathname}`
    switch (key) {
      case 'POST /webhooks/linear':
        return webhook(req)
      case 'GET /events': {
        const w = worker(req)
        if (typeof w !== 'string') return { res: w }
        const wait = Math.min(Math.max(Number(url.searchParams.get('wait') ?? '25') || 0, 0), MAX_WAIT_S)
        const max = Math.min(Math.max(Number(url.searchParams.get('max') ?? '10') || 1, 1), 100)
        const events = await longPoll(store, { worker: w, max, waitMs: wait * 1000, signal: req.signal }, policy, metrics, now)
        return { res: json({ events }) }
      }
      case 'POST /events/heartbeat':
      case 'POST /events/ack': {
        const w = worker(req)
        if (typeof w !== 'string') return { res: w }
        const list = await ids(req)
        if (!Array.isArray(list)) return { res: list }
        if (url.pathname.endsWith('ack')) {
          const acked = await store.ack({ worker: w, ids: list, now: now() })
          metrics.acked += acked.length
          return { res: json({ acked, refused: list.filter((id) => !acked.includes(id)) }) }
        }
        const extended = await store.heartbeat({ worker: w, ids: list, leaseMs: policy.leaseMs, now: now() })
        return { res: json({ extended, refused: list.filter((id) => !extended.includes(id)), leaseUntil: now() + policy.leaseMs }) }
      }
      case 'POST /linear/graphql': {
        if (!bearerOk(req.headers.get('authorization'), options.workerTokens))
          return { res: error(401, 'unauthorized', 'a worker bearer token is required') }
        if (!linear.graphql)
          return { res: error(503, 'not_configured', 'the Linear app is not configured on this relay (LINEAR_CLIENT_ID)') }
        return { res: await linear.graphql(req, req.headers.get('x-linear-organization')) }
      }
      case 'GET /oauth/authorize':
      case 'GET /oauth/callback': {
        const handler = url.pathname.endsWith('authorize') ? linear.authorize : linear.callback
        if (!handler)
          return { res: error(503, 'not_configured', 'OAuth is not configured on this relay (LINEAR_CLIENT_ID, LINEAR_CLIENT_SECRET)') }
        return { res: await handler(req) }
      }
      case 'GET /healthz':
        try {
          await store.ping()
          return { res: json({ ok: true, store: store.kind }) }
        } catch (e) {
          return { res: json({ ok: false, store: store.kind, error: e instanceof Error ? e.message : String(e) }, 503) }
        }
      case 'GET /status': {
        if (!bearerOk(req.headers.get('authorization'), options.workerTokens))
          return { res: error(401, 'unauthorized', 'a worker bearer token is required') }
        const stats = await store.stats(now())
        return {
          res: json({
            store: store.kind,
            queue: stats.counts,
            sessionsHeld: stats.sessionsHeld,
            oldestUnackedAt: stats.oldestUnackedAt,
            deadLetters: stats.deadLetters,
            leaseExpiries: stats.leaseExpiries,
            installs: linear.installs ? await linear.installs() : [],
            notes: await store.notes(50),
            lastErrors,
          }),
        }
      }
      case 'GET /metrics': {
        const stats = await store.stats(now())
        const text = metrics.render({
          queue: { ...stats.counts },
          leaseExpiries: stats.leaseExpiries,
          deadLetters: stats.deadLetters.length,
        })
        return { res: new Response(text, { headers: { 'content-type': 'text/plain; version=0.0.4' } }) }
      }
      default:
        return { res: error(404, 'not_found', `no route ${req.method} ${url.pathname}`) }
    }
  }

  const server: Server<undefined> = Bun.serve({
    port: options.port,
    hostname: options.host,
    // Long polls hold a request up to MAX_WAIT_S; Bun's default idle timeout is 10 s.
    idleTimeout: MAX_WAIT_S + 10,
    maxRequestBodySize: MAX_WEBHOOK_BYTES + 1,
    async fetch(req) {
      const started = performance.now()
      const url = new URL(req.url)
      let out: { res: Response; delivery?: string }
      try {
        out = await route(req, url)
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e)
        remember(`${req.method} ${url.pathname}: ${message}`)
        void reportToSentry(e, { tags: { route: `${req.method} ${url.pathname}` } })
        out = { res: error(500, 'internal', message) }
      }
      const ms = (performance.now() - started).toFixed(1)
      log(`${req.method} ${url.pathname} ${out.res.status} ${ms}ms${out.delivery ? ` delivery=${out.delivery}` : ''}`)
      return out.res
    },
    error(e) {
      return error(500, 'internal', e.message)
    },
  })

  const prune = setInterval(
    () => void store.prune(now() - DEDUPE_KEEP_MS).catch((e: unknown) => remember(`prune: ${String(e)}`)),
    3_600_000,
  )
  prune.unref()

  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${server.port}`,
    port: server.port ?? options.port,
    metrics,
    async stop() {
      clearInterval(prune)
      await server.stop(true)
      await Promise.allSettled([...inflight])
      await store.close()
    },
  }
}

/** The request body, or null once it passes `limit` bytes (read no further). */
async function readLimited(req: Request, limit: number): Promise<Buffer | null> {
  if (!req.body) return Buffer.alloc(0)
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length
    if (size > limit) return null
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}
