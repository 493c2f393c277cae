/**
 * Tokens at rest: AES-256-GCM with a 32-byte key. A sealed value is
 * `v1.<key id>.<base64url(iv | ciphertext | tag)>`: the version says how to open it, the key id (a
 * fingerprint of the key, not the key) lets a wrong key be reported as "the key changed" instead
 * of as corruption. The key comes from RELAY_ENCRYPTION_KEY, or for the local store from
 * `<store dir>/encryption.key`, generated on first start (0600, written atomically).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { chmodSync, linkSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { FactoryError } from '../errors.ts'
import { writeDurableSync } from '../write-durable.ts'

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
export const KEY_FILE_NAME = 'encryption.key'

export interface Sealer {
  /** Fingerprint of the key (8 hex characters), safe to log. */
  readonly keyId: string
  seal(plain: string): string
  /** Throws relay_key_mismatch when the value was sealed with another key or altered. */
  open(sealed: string): string
}

const EXPECTED = '32 bytes, as 64 hex characters or base64 (44 characters), e.g. from `openssl rand -base64 32`'

/** Decode a key written as hex or base64 (standard or url-safe); `source` names where it came from. */
export function parseKey(text: string, source: string): Buffer {
  const t = text.trim()
  let key: Buffer | undefined
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, 'hex')
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(t)) key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
  // The value itself is never echoed: it is the secret.
  if (!key || key.length !== 32)
    throw new FactoryError(
      'relay_config_invalid',
      `${source} is not a valid encryption key (got ${t.length} characters); expected ${EXPECTED}`,
      {
        fix: `set ${source} to ${EXPECTED}`,
      },
    )
  return key
}

function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('rose-relay key id\0').update(key).digest('hex').slice(0, 8)
}

/** A sealer for `key` (32 bytes). */
export function sealer(key: Buffer): Sealer {
  if (key.length !== 32) throw new FactoryError('relay_config_invalid', `encryption key must be 32 bytes, got ${key.length}`)
  const keyId = keyIdOf(key)
  const aad = Buffer.from(`${VERSION}.${keyId}`)
  return {
    keyId,
    seal(plain) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      cipher.setAAD(aad)
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return `${VERSION}.${keyId}.${Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url')}`
    },
    open(sealed) {
      const [version, id, body, ...rest] = sealed.split('.')
      if (version !== VERSION || !id || body === undefined || rest.length)
        throw new FactoryError('relay_key_mismatch', `a stored token is not a sealed value this relay understands (prefix "${version}")`)
      if (id !== keyId)
        throw new FactoryError(
          'relay_key_mismatch',
          `the encryption key changed: the stored tokens were sealed with key ${id}, this relay has key ${keyId}`,
        )
      const raw = Buffer.from(body, 'base64url')
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES))
        decipher.setAAD(aad)
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES))
        return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8')
      } catch (err) {
        throw new FactoryError(
          'relay_key_mismatch',
          `a stored token sealed with key ${id} does not open: the key changed or the value was altered`,
          {
            cause: err,
          },
        )
      }
    },
  }
}

/**
 * The relay's key: RELAY_ENCRYPTION_KEY when set; else, with a local store directory, the key in
 * `<dir>/encryption.key` (generated on first start); else a config error (a shared store needs
 * the same key on every instance, so it must come from the environment).
 */
export function loadEncryptionKey(opts: { env?: NodeJS.ProcessEnv; storeDir?: string }): { key: Buffer; source: string } {
  const env = opts.env ?? process.env
  const fromEnv = env.RELAY_ENCRYPTION_KEY
  if (fromEnv !== undefined && fromEnv !== '') return { key: parseKey(fromEnv, 'RELAY_ENCRYPTION_KEY'), source: 'RELAY_ENCRYPTION_KEY' }
  if (!opts.storeDir)
    throw new FactoryError(
      'relay_config_invalid',
      'RELAY_ENCRYPTION_KEY is not set (a shared queue needs the same key on every instance)',
      {
        fix: `set RELAY_ENCRYPTION_KEY to ${EXPECTED}`,
      },
    )
  const path = join(opts.storeDir, KEY_FILE_NAME)
  return { key: readOrCreateKeyFile(path), source: path }
}

function readKeyFile(path: string): Buffer {
  return parseKey(readFileSync(path, 'utf8'), path)
}

/** Read the key file, or create it: written whole to a temp file, then linked into place (so two first starts agree on one key). */
function readOrCreateKeyFile(path: string): Buffer {
  try {
    return readKeyFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  writeDurableSync(tmp, `${randomBytes(32).toString('base64')}\n`, 0o600)
  chmodSync(tmp, 0o600)
  try {
    // link(2) never replaces: if another process created the file first, its key wins.
    linkSync(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    unlinkSync(tmp)
  }
  return readKeyFile(path)
}
