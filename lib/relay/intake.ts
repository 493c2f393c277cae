/**
 * Webhook intake: decide what one `POST /webhooks/linear` means, before anything is stored.
 * `planIntake` is pure but for the clock @linear/sdk's verify reads: it checks the signature
 * (LinearWebhookClient, hex HMAC-SHA256 of the raw body in constant time, 60 s window on the
 * signed `webhookTimestamp`), parses, and returns either a rejection (status + reason, nothing
 * enqueued) or what to do: enqueue an agent-session event under its dedupe keys, record an
 * app-level note, or ignore.
 */
import { LinearWebhookClient } from '@linear/sdk/webhooks'
import { z } from '../zod.ts'
import type { IncomingEvent, RelayNote } from './store.ts'

/** Bodies above this are refused with 413 before they are read in full. */
export const MAX_WEBHOOK_BYTES = 1024 * 1024

/** Why a webhook was refused (a metrics label, and the log's reason). */
export type RejectReason = 'too_large' | 'no_signature' | 'bad_signature' | 'stale' | 'malformed' | 'no_delivery_id'

export type IntakePlan =
  | { kind: 'reject'; status: 400 | 401 | 413; reason: RejectReason; message: string }
  | { kind: 'enqueue'; event: IncomingEvent }
  | { kind: 'note'; note: RelayNote; deliveryId: string }
  | { kind: 'ignore'; type: string; action: string; deliveryId: string }

// Linear adds fields over time: payloads are loose objects; only what we route on is required.
const AgentSessionEvent = z.looseObject({
  type: z.literal('AgentSessionEvent'),
  action: z.string().min(1),
  organizationId: z.string().min(1),
  agentSession: z.looseObject({ id: z.string().min(1) }),
  agentActivity: z.looseObject({ id: z.string().min(1) }).nullish(),
})
const Envelope = z.looseObject({
  type: z.string().min(1),
  action: z.string().optional(),
  organizationId: z.string().optional(),
})

/** The parsed agent-session webhook, as workers receive it in `payload`. */
export type AgentSessionEventPayload = z.infer<typeof AgentSessionEvent>

const clients = new Map<string, LinearWebhookClient>()
const clientFor = (secret: string) => clients.get(secret) ?? clients.set(secret, new LinearWebhookClient(secret)).get(secret)!

const reject = (status: 400 | 401 | 413, reason: RejectReason, message: string): IntakePlan => ({ kind: 'reject', status, reason, message })

/** What a webhook request means (headers lower-cased by the caller's Headers object). */
export function planIntake(input: { headers: Headers; rawBody: Buffer; secret: string; now: number }): IntakePlan {
  const { headers, rawBody, secret, now } = input
  if (rawBody.length > MAX_WEBHOOK_BYTES)
    return reject(413, 'too_large', `body is ${rawBody.length} bytes; the limit is ${MAX_WEBHOOK_BYTES}`)
  const signature = headers.get('linear-signature')
  if (!signature) return reject(401, 'no_signature', 'missing Linear-Signature header')
  try {
    clientFor(secret).verify(rawBody, signature)
  } catch (error) {
    if (error instanceof SyntaxError) return reject(400, 'malformed', 'body is not JSON')
    const message = error instanceof Error ? error.message : String(error)
    if (/timestamp/i.test(message)) return reject(401, 'stale', staleMessage(rawBody, now))
    return reject(401, 'bad_signature', 'Linear-Signature does not match the body (check LINEAR_WEBHOOK_SECRET)')
  }
  const deliveryId = headers.get('linear-delivery')?.trim()
  if (!deliveryId || deliveryId.length > 200) return reject(400, 'no_delivery_id', 'missing or oversized Linear-Delivery header')
  let body: unknown
  try {
    body = JSON.parse(rawBody.toString('utf8'))
  } catch {
    return reject(400, 'malformed', 'body is not JSON')
  }
  const envelope = Envelope.safeParse(body)
  if (!envelope.success) return reject(400, 'malformed', 'body is not a Linear webhook (no type)')
  const { type, action = '', organizationId } = envelope.data

  if (type === 'AgentSessionEvent') {
    const parsed = AgentSessionEvent.safeParse(body)
    if (!parsed.success) return reject(400, 'malformed', `AgentSessionEvent without ${firstPath(parsed.error)}`)
    const p = parsed.data
    const dedupeKey = meaningKey(p)
    if (!dedupeKey) return { kind: 'ignore', type, action, deliveryId }
    return {
      kind: 'enqueue',
      event: {
        deliveryId,
        dedupeKey,
        sessionId: p.agentSession.id,
        orgId: p.organizationId,
        action: p.action,
        payload: rawBody.toString('utf8'),
        receivedAt: now,
      },
    }
  }
  if (type === 'PermissionChange' || (type === 'OAuthApp' && action === 'revoked')) {
    const kind = type === 'PermissionChange' ? 'permission_change' : 'oauth_revoked'
    return { kind: 'note', deliveryId, note: { kind, orgId: organizationId ?? null, detail: `${type} ${action}`.trim(), at: now } }
  }
  return { kind: 'ignore', type, action, deliveryId }
}

/** Dedupe by meaning: a session is created once, an activity prompts once; other actions are not queued. */
function meaningKey(p: AgentSessionEventPayload): string | null {
  if (p.action === 'created') return `created:${p.agentSession.id}`
  if (p.action === 'prompted') return p.agentActivity ? `prompted:${p.agentActivity.id}` : null
  return null
}

function staleMessage(rawBody: Buffer, now: number): string {
  let ts: unknown
  try {
    ts = (JSON.parse(rawBody.toString('utf8')) as { webhookTimestamp?: unknown }).webhookTimestamp
  } catch {
    ts = undefined
  }
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return 'webhookTimestamp is missing or not a number'
  return `webhookTimestamp is ${Math.round((now - ts) / 1000)} s from now; the window is 60 s (a replay, or a clock off)`
}

function firstPath(error: z.ZodError): string {
  const issue = error.issues[0]
  return issue ? issue.path.join('.') || 'a valid shape' : 'a valid shape'
}
