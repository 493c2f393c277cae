/**
 * SHA-256 of a text without importing node:crypto on Bun: there node:crypto brings in Node's
 * stream classes, ~12 ms of an idle `start --once`, while Bun.CryptoHasher is native. Under Node
 * (the tsx fallback) node:crypto is loaded on first use.
 */

/** The SHA-256 digest of `data` (UTF-8). */
export function sha256(data: string): Buffer {
  if (typeof Bun !== 'undefined') return new Bun.CryptoHasher('sha256').update(data).digest()
  return process.getBuiltinModule('node:crypto').createHash('sha256').update(data).digest()
}

/** The SHA-256 digest of `data` as lowercase hex. */
export function sha256Hex(data: string): string {
  return sha256(data).toString('hex')
}
