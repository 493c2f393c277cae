/**
 * A worker's client of the relay (docs/relay.md "Routes"): long-poll `GET /events` for leased
 * events, heartbeat and ack them, and read the queue's counts (`GET /status`, what `--dry-run`
 * shows: it leases nothing). Every answer is checked with zod; failures are FactoryErrors:
 * `relay_auth` (the worker token was refused: not retried), `relay_unreachable` (no answer, a
 * timeout or a 5xx: poll again with backoff), `relay_refused` (any other refusal). The token is
 * sent as a bearer header and never appears in a message.
 */
import { z } from './zod.ts'
import { FactoryError } from './errors.ts'

/** One leased event, as `GET /events` returns it. */
export const relayEventSchema = z.object({
  id: z.string().min(1),
  sessionId: z.string().min(1),
  orgId: z.string().min(1),
  action: z.string(),
  payload: z.unknown(),
  leaseUntil: z.number(),
  attempts: z.number().int().min(1),
  receivedAt: z.number(),
})
export type RelayEvent = z.infer<typeof relayEventSchema>

const eventsSchema = z.object({ events: z.array(relayEventSchema) })
const ackSchema = z.object({ acked: z.array(z.string()), refused: z.array(z.string()) })
const heartbeatSchema = z.object({ extended: z.array(z.string()), refused: z.array(z.string()), leaseUntil: z.number() })
const statusSchema = z.looseObject({
  store: z.string(),
  queue: z.record(z.string(), z.number()),
  sessionsHeld: z.unknown().optional(),
  oldestUnackedAt: z.number().nullish(),
  deadLetters: z.array(z.unknown()).optional(),
})
export type RelayStatus = z.infer<typeof statusSchema>

/** Seconds a long poll may wait at most (the relay caps `wait` at 55). */
export const MAX_POLL_WAIT_S = 55
/** A request's timeout beyond the long poll's own wait. */
const SLACK_MS = 10_000

export interface RelayClientDeps {
  fetch: (url: string, init: RequestInit) => Promise<Response>
}

export interface RelayClient {
  /** Lease up to `max` events, waiting up to `waitSeconds` for some; [] when none came or `signal` aborted. */
  poll(opts?: { waitSeconds?: number; max?: number; signal?: AbortSignal }): Promise<RelayEvent[]>
  /** Extend this worker's leases (and session holds) by the relay's lease length; `refused` are no longer ours. */
  heartbeat(ids: string[]): Promise<{ extended: string[]; refused: string[]; leaseUntil: number }>
  /** Done with these events; `refused` lists those that are no longer this worker's (their lease ran out). */
  ack(ids: string[]): Promise<{ acked: string[]; refused: string[] }>
  /** The relay's queue by state (and dead letters): what a dry run shows, without leasing anything. */
  status(): Promise<RelayStatus>
}

/** The client of the relay at `url` for worker `workerId` (its X-Worker-Id: session holds are per worker id). */
export function relayClient(opts: { url: string; token: string; workerId: string; deps?: Partial<RelayClientDeps> }): RelayClient {
  const base = opts.url.replace(/\/+$/, '')
  const deps: RelayClientDeps = { fetch: (url, init) => fetch(url, init), ...opts.deps }
  const headers = { authorization: `Bearer ${opts.token}`, 'x-worker-id': opts.workerId }

  async function call<T>(
    what: string,
    path: string,
    schema: z.ZodType<T>,
    init: { method: 'GET' | 'POST'; body?: unknown; timeoutMs: number; signal?: AbortSignal },
  ): Promise<T> {
    const url = `${base}${path}`
    const timeout = AbortSignal.timeout(init.timeoutMs)
    let res: Response
    let text: string
    try {
      res = await deps.fetch(url, {
        method: init.method,
        headers: init.body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout,
      })
      text = await res.text()
    } catch (err) {
      if (init.signal?.aborted) throw err
      const why = timeout.aborted ? `no answer within ${Math.round(init.timeoutMs / 1000)} s` : errorText(err)
      throw new FactoryError('relay_unreachable', `the relay at ${base} is unreachable (${what}): ${why}`, { cause: err })
    }
    const message = () => {
      try {
        const m = (JSON.parse(text) as { error?: { message?: string } }).error?.message
        return m ? `: ${m}` : ''
      } catch {
        return ''
      }
    }
    if (res.status === 401)
      throw new FactoryError('relay_auth', `the relay at ${base} refused the worker token (${what}, HTTP 401${message()})`)
    if (res.status >= 500)
      throw new FactoryError('relay_unreachable', `the relay at ${base} failed (${what}, HTTP ${res.status}${message()})`)
    if (!res.ok) throw new FactoryError('relay_refused', `the relay at ${base} refused ${what} (HTTP ${res.status}${message()})`)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new FactoryError('relay_refused', `the relay at ${base} answered ${what} with something that is not JSON (HTTP ${res.status})`)
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new FactoryError(
        'relay_refused',
        `the relay at ${base} answered ${what} in an unexpected shape: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? ''}`.trim(),
      )
    }
    return parsed.data
  }

  const idsCall = <T>(what: 'ack' | 'heartbeat', schema: z.ZodType<T>, ids: string[]) =>
    call(what, `/events/${what}`, schema, { method: 'POST', body: { ids }, timeoutMs: 15_000 })

  return {
    async poll(pollOpts = {}) {
      const wait = Math.min(Math.max(Math.floor(pollOpts.waitSeconds ?? 25), 0), MAX_POLL_WAIT_S)
      const max = Math.min(Math.max(Math.floor(pollOpts.max ?? 10), 1), 100)
      if (pollOpts.signal?.aborted) return []
      try {
        const reply = await call('GET /events', `/events?wait=${wait}&max=${max}`, eventsSchema, {
          method: 'GET',
          timeoutMs: wait * 1000 + SLACK_MS,
          signal: pollOpts.signal,
        })
        return reply.events
      } catch (err) {
        // Stopping (Ctrl-C) while a poll waits is not a failure; anything it leased comes back after its lease.
        if (pollOpts.signal?.aborted) return []
        throw err
      }
    },
    async heartbeat(ids) {
      if (ids.length === 0) return { extended: [], refused: [], leaseUntil: 0 }
      return idsCall('heartbeat', heartbeatSchema, ids)
    },
    async ack(ids) {
      if (ids.length === 0) return { acked: [], refused: [] }
      return idsCall('ack', ackSchema, ids)
    },
    status() {
      return call('GET /status', '/status', statusSchema, { method: 'GET', timeoutMs: 15_000 })
    },
  }
}

function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string }
  if (e?.code === 'ECONNREFUSED' || /ECONNREFUSED|Unable to connect|connection refused/i.test(e?.message ?? '')) return 'connection refused'
  return e?.message ?? String(err)
}
