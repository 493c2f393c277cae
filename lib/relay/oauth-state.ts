/**
 * The OAuth `state`: `<base64url(JSON {n: nonce, e: expiry ms})>.<base64url(HMAC-SHA256)>`, so the
 * callback only accepts a redirect that started at this relay's /oauth/authorize less than
 * STATE_TTL_MS ago. The HMAC key is derived from the client secret (never the secret itself).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export const STATE_TTL_MS = 10 * 60_000

export type StateCheck = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'forged' | 'expired' }

/** The state-signing key derived from the app's client secret. */
export function stateKey(clientSecret: string): Buffer {
  return createHmac('sha256', clientSecret).update('rose-relay oauth state v1').digest()
}

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(payload).digest()

/** A fresh signed state valid until `now + STATE_TTL_MS`. */
export function signState(key: Buffer, now: number): string {
  const payload = Buffer.from(JSON.stringify({ n: randomBytes(16).toString('base64url'), e: now + STATE_TTL_MS })).toString('base64url')
  return `${payload}.${mac(key, payload).toString('base64url')}`
}

/** Whether `state` was signed with `key` and has not expired at `now`; the reason when not. */
export function verifyState(key: Buffer, state: string | null, now: number): StateCheck {
  if (!state) return { ok: false, reason: 'missing' }
  const [payload, sig, ...rest] = state.split('.')
  if (!payload || !sig || rest.length) return { ok: false, reason: 'malformed' }
  const given = Buffer.from(sig, 'base64url')
  const want = mac(key, payload)
  if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, reason: 'forged' }
  let expiry: unknown
  try {
    expiry = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { e?: unknown }).e
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  if (typeof expiry !== 'number' || expiry <= now) return { ok: false, reason: 'expired' }
  return { ok: true }
}
