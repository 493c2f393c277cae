/**
 * The sandbox's webhook sender: one configured target `{url, secret}`, deliveries signed as
 * Linear signs them (webhook-sign.ts), every attempt and its response status recorded.
 *
 * Like Linear: a retry keeps the delivery's `Linear-Delivery` id and re-stamps (so re-signs)
 * `webhookTimestamp`, since receivers reject a timestamp older than 60 s; a non-2xx answer, a
 * refused connection or no answer within `timeoutMs` (Linear: 5 s) is a failure, retried after
 * each of `retryDelaysMs` in turn (Linear: ~1 min, 1 h, 6 h; default here: no retries, tests pass
 * small delays). `redeliver` repeats a delivery under its id; `duplicate` sends its payload again
 * under a new id (Linear's duplicate deliveries).
 */
import { randomUUID } from 'node:crypto'
import { SandboxError } from './types.ts'
import { stampedBody, webhookHeaders } from './webhook-sign.ts'

export interface WebhookConfig {
  url: string
  secret: string
  /** Delay before each automatic retry of a failed delivery (default none). */
  retryDelaysMs?: number[]
  /** An attempt without an answer after this long has failed (default 5000). */
  timeoutMs?: number
}

export interface DeliveryAttempt {
  at: string
  /** The HTTP status, or null when there was no answer (`error` says why). */
  status: number | null
  error: string | null
  ms: number
}

export interface DeliveryRecord {
  /** The `Linear-Delivery` header: one per delivery, kept by its retries. */
  id: string
  webhookId: string
  event: string
  action: string
  agentSessionId: string | null
  agentActivityId: string | null
  /** The delivery this one duplicates (a new id for the same payload). */
  duplicateOf: string | null
  url: string
  state: 'delivered' | 'retrying' | 'failed'
  attempts: DeliveryAttempt[]
  /** The raw body and `Linear-Signature` of the last attempt. */
  body: string
  signature: string
  payload: Record<string, unknown>
}

export interface WebhookDeps {
  fetch?: typeof fetch
  /** Wall-clock ms for `webhookTimestamp` (receivers compare it with their own clock). */
  clock?: () => number
}

const MAX_KEPT = 1000

export class WebhookSender {
  private config: (Required<WebhookConfig> & { webhookId: string }) | null = null
  readonly deliveries: DeliveryRecord[] = []
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()
  private readonly fetch: typeof fetch
  private readonly clock: () => number

  constructor(deps: WebhookDeps = {}) {
    this.fetch = deps.fetch ?? globalThis.fetch
    this.clock = deps.clock ?? Date.now
  }

  /** Set (or with null clear) the target; a new target gets a new webhook id. */
  configure(config: WebhookConfig | null): void {
    if (!config) {
      this.config = null
      return
    }
    if (!/^https?:\/\/\S+$/.test(config.url)) throw new SandboxError('invalid_input', `"url": ${config.url} is not an http(s) URL`, 'url')
    if (!config.secret) throw new SandboxError('invalid_input', '"secret" is required (the signing secret)', 'secret')
    const delays = config.retryDelaysMs ?? []
    if (delays.some((d) => !Number.isFinite(d) || d < 0))
      throw new SandboxError('invalid_input', '"retryDelaysMs" must be a list of non-negative numbers', 'retryDelaysMs')
    this.config = {
      url: config.url,
      secret: config.secret,
      retryDelaysMs: delays,
      timeoutMs: config.timeoutMs ?? 5000,
      webhookId: randomUUID(),
    }
  }

  /** The target without its secret (null when none is set). */
  current() {
    const c = this.config
    return c ? { url: c.url, webhookId: c.webhookId, retryDelaysMs: c.retryDelaysMs, timeoutMs: c.timeoutMs, secret: '***' } : null
  }

  webhookId(): string | null {
    return this.config?.webhookId ?? null
  }

  find(id: string): DeliveryRecord {
    const d = this.deliveries.find((x) => x.id === id)
    if (!d) throw new SandboxError('invalid_input', `"id": no delivery ${id} (GET /_sandbox/deliveries lists them)`, 'id')
    return d
  }

  /** Deliver a new event; resolves after the first attempt (retries, if any, follow in the background). */
  async send(
    event: string,
    payload: Record<string, unknown>,
    ids: { agentSessionId?: string | null; agentActivityId?: string | null; duplicateOf?: string | null } = {},
  ): Promise<DeliveryRecord | null> {
    const c = this.config
    if (!c) return null
    const delivery: DeliveryRecord = {
      id: randomUUID(),
      webhookId: c.webhookId,
      event,
      action: String(payload.action ?? ''),
      agentSessionId: ids.agentSessionId ?? null,
      agentActivityId: ids.agentActivityId ?? null,
      duplicateOf: ids.duplicateOf ?? null,
      url: c.url,
      state: 'retrying',
      attempts: [],
      body: '',
      signature: '',
      payload,
    }
    this.deliveries.push(delivery)
    if (this.deliveries.length > MAX_KEPT) this.deliveries.splice(0, this.deliveries.length - MAX_KEPT)
    await this.attempt(delivery, true)
    return delivery
  }

  /** Send delivery `id` once more under the same Linear-Delivery id (a Linear retry, on demand). */
  async redeliver(id: string): Promise<DeliveryRecord> {
    const delivery = this.find(id)
    await this.attempt(delivery, false)
    return delivery
  }

  /** Send the payload of delivery `id` (default: the last) again under a new Linear-Delivery id. */
  async duplicate(id?: string): Promise<DeliveryRecord | null> {
    const original = id ? this.find(id) : this.deliveries[this.deliveries.length - 1]
    if (!original) throw new SandboxError('invalid_input', 'no delivery to duplicate yet', 'id')
    return this.send(original.event, original.payload, { ...original, duplicateOf: original.id })
  }

  /** Cancel pending retries (on stop). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  private async attempt(d: DeliveryRecord, automatic: boolean): Promise<void> {
    const c = this.config
    if (!c) {
      d.attempts.push({ at: new Date(this.clock()).toISOString(), status: null, error: 'no webhook configured', ms: 0 })
      d.state = 'failed'
      return
    }
    const started = this.clock()
    d.body = stampedBody(d.payload, started)
    const headers = webhookHeaders(d.body, c.secret, d.event, d.id)
    d.signature = headers['Linear-Signature']!
    let status: number | null = null
    let error: string | null = null
    try {
      const res = await this.fetch(d.url, {
        method: 'POST',
        headers,
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(c.timeoutMs),
      })
      await res.arrayBuffer().catch(() => undefined)
      status = res.status
      if (status < 200 || status > 299) error = `HTTP ${status}`
    } catch (err) {
      error =
        err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${c.timeoutMs} ms` : String((err as Error)?.message ?? err)
    }
    d.attempts.push({ at: new Date(started).toISOString(), status, error, ms: this.clock() - started })
    if (!error) {
      d.state = 'delivered'
      return
    }
    const retryIndex = d.attempts.length - 1
    if (automatic && retryIndex < c.retryDelaysMs.length) {
      d.state = 'retrying'
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        void this.attempt(d, true)
      }, c.retryDelaysMs[retryIndex])
      this.timers.add(timer)
    } else d.state = 'failed'
  }
}
