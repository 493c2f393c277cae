/**
 * Linear's webhook signing rules (as @linear/sdk's LinearWebhookClient checks them): the
 * `Linear-Signature` header is the hex HMAC-SHA256 of the raw body with the webhook's secret, and
 * freshness comes from the signed body's `webhookTimestamp` (ms), not from a header. Relay tests
 * use these to forge deliveries.
 */
import { createHmac, randomUUID } from 'node:crypto'

/** Hex HMAC-SHA256 of the raw body: the `Linear-Signature` header value. */
export function signWebhook(body: string | Uint8Array, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex')
}

/** The headers Linear sends with one delivery of `body` (a new `deliveryId` unless given). */
export function webhookHeaders(body: string, secret: string, event: string, deliveryId: string = randomUUID()): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'Linear-Delivery': deliveryId,
    'Linear-Event': event,
    'Linear-Signature': signWebhook(body, secret),
    'User-Agent': 'Linear-Webhook',
  }
}

/** A payload stamped with `webhookTimestamp` and serialized: the exact bytes to sign and send. */
export function stampedBody(payload: Record<string, unknown>, now: number): string {
  return JSON.stringify({ ...payload, webhookTimestamp: now })
}
