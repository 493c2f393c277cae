/**
 * Linear agent-session webhooks as Linear sends them (headers, body fields, hex HMAC-SHA256 of
 * the raw body), for the relay tests and benches. The signature is checked by the relay with
 * @linear/sdk's own LinearWebhookClient, so a body signed here is one the real SDK accepts.
 */
import { createHmac, randomUUID } from 'node:crypto'

export const WEBHOOK_SECRET = 'test-webhook-signing-secret'
export const WORKER_TOKEN = 'relay-worker-token-for-tests'

/** Hex HMAC-SHA256 of `raw` with `secret`: Linear's `Linear-Signature`. */
export function sign(raw: string | Uint8Array, secret = WEBHOOK_SECRET): string {
  return createHmac('sha256', secret).update(raw).digest('hex')
}

export interface SessionEventInput {
  action: 'created' | 'prompted'
  sessionId: string
  orgId?: string
  activityId?: string
  body?: string
  signal?: string
  timestamp?: number
}

/** An AgentSessionEvent body (the fields of Linear's AgentSessionEventWebhookPayload the relay and workers read). */
export function sessionEvent(input: SessionEventInput): Record<string, unknown> {
  const orgId = input.orgId ?? 'org-test'
  const body: Record<string, unknown> = {
    type: 'AgentSessionEvent',
    action: input.action,
    createdAt: new Date().toISOString(),
    organizationId: orgId,
    oauthClientId: 'oauth-client-test',
    appUserId: 'app-user-test',
    webhookId: 'webhook-config-1',
    webhookTimestamp: input.timestamp ?? Date.now(),
    agentSession: { id: input.sessionId, issue: { id: `issue-${input.sessionId}`, identifier: 'ENG-1', title: 'Fix the thing' } },
  }
  if (input.action === 'created') body.promptContext = '<issue identifier="ENG-1"><title>Fix the thing</title></issue>'
  else
    body.agentActivity = {
      id: input.activityId ?? randomUUID(),
      content: { type: 'prompt', body: input.body ?? 'please also update the docs' },
      signal: input.signal ?? null,
    }
  return body
}

/** Headers + raw body of one delivery of `body` (a new Linear-Delivery unless given). */
export function delivery(
  body: Record<string, unknown> | string,
  opts: { deliveryId?: string; secret?: string } = {},
): { raw: string; headers: Record<string, string> } {
  const raw = typeof body === 'string' ? body : JSON.stringify(body)
  return {
    raw,
    headers: {
      'content-type': 'application/json',
      'linear-signature': sign(raw, opts.secret),
      'linear-delivery': opts.deliveryId ?? randomUUID(),
      'linear-event': 'AgentSessionEvent',
    },
  }
}

/** POST one delivery to the relay at `base`. */
export async function post(base: string, d: { raw: string | Uint8Array; headers: Record<string, string> }): Promise<Response> {
  return fetch(`${base}/webhooks/linear`, { method: 'POST', headers: d.headers, body: d.raw as BodyInit })
}

/** GET /events as `worker` (long-poll `wait` seconds). */
export async function poll(
  base: string,
  worker: string,
  wait = 0,
  max = 10,
): Promise<{ id: string; sessionId: string; action: string; attempts: number; payload: any }[]> {
  const res = await fetch(`${base}/events?wait=${wait}&max=${max}`, {
    headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'x-worker-id': worker },
  })
  if (res.status !== 200) throw new Error(`GET /events: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { events: any[] }).events
}

/** POST /events/ack (or heartbeat) as `worker`. */
export async function ack(base: string, worker: string, ids: string[], what: 'ack' | 'heartbeat' = 'ack'): Promise<any> {
  const res = await fetch(`${base}/events/${what}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'x-worker-id': worker, 'content-type': 'application/json' },
    body: JSON.stringify({ ids }),
  })
  return res.json()
}
