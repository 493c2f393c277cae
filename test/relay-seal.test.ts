/**
 * Tokens at rest (lib/relay/seal.ts): AES-256-GCM with a versioned prefix, a wrong key reported
 * as "the key changed", RELAY_ENCRYPTION_KEY validated without echoing it, and the local key
 * file generated once (0600) even when several relays start at the same moment.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KEY_FILE_NAME, loadEncryptionKey, parseKey, sealer } from '../lib/relay/seal.ts'
import { failure, ROOT, tempDir } from './helpers.ts'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const dir = () => {
  const d = tempDir('relay-seal-')
  dirs.push(d)
  return d
}
const plain = 'fake-access-token-for-the-seal-test'

describe('seal and open', () => {
  test('a sealed token carries the v1 prefix, hides the token, differs every time and opens to the token', () => {
    const s = sealer(randomBytes(32))
    const a = s.seal(plain)
    const b = s.seal(plain)
    expect(a.startsWith(`v1.${s.keyId}.`)).toBe(true)
    expect(a).not.toBe(b)
    expect(a.includes(plain)).toBe(false)
    expect(s.open(a)).toBe(plain)
    expect(s.open(b)).toBe(plain)
  })

  test('opening with another key says the key changed (relay_key_mismatch), naming both key ids', () => {
    const sealed = sealer(randomBytes(32)).seal(plain)
    const other = sealer(randomBytes(32))
    const err = failure(() => other.open(sealed))
    expect(err.code).toBe('relay_key_mismatch')
    expect(err.message).toContain('the encryption key changed')
    expect(err.message).toContain(other.keyId)
    expect(err.fix).toContain('RELAY_ENCRYPTION_KEY')
  })

  test('an altered sealed value is refused, and a value without the version prefix is not taken for a token', () => {
    const s = sealer(randomBytes(32))
    const sealed = s.seal(plain)
    const last = sealed.at(-2) === 'A' ? 'B' : 'A'
    expect(failure(() => s.open(`${sealed.slice(0, -2)}${last}${sealed.at(-1)}`)).code).toBe('relay_key_mismatch')
    expect(failure(() => s.open(plain)).message).toContain('not a sealed value')
  })
})

describe('the key', () => {
  test('RELAY_ENCRYPTION_KEY is read as hex or base64 (standard or url-safe), the same key either way', () => {
    const key = randomBytes(32)
    for (const text of [key.toString('hex'), key.toString('base64'), key.toString('base64url'), ` ${key.toString('hex')}\n`]) {
      expect(loadEncryptionKey({ env: { RELAY_ENCRYPTION_KEY: text } }).key.equals(key)).toBe(true)
    }
  })

  test('a malformed RELAY_ENCRYPTION_KEY is a config error (exit 2) naming the variable and the format, never echoing the value', () => {
    for (const bad of ['too-short-but-secret-ish', randomBytes(16).toString('hex'), randomBytes(31).toString('base64'), 'z'.repeat(64)]) {
      const err = failure(() => loadEncryptionKey({ env: { RELAY_ENCRYPTION_KEY: bad }, storeDir: dir() }))
      expect(err.code).toBe('relay_config_invalid')
      expect(err.exitCode).toBe(2)
      expect(err.message).toContain('RELAY_ENCRYPTION_KEY')
      expect(err.message).toContain('64 hex characters or base64')
      expect(err.describe().includes(bad)).toBe(false)
    }
  })

  test('without RELAY_ENCRYPTION_KEY and without a local store, the error says to set it', () => {
    const err = failure(() => loadEncryptionKey({ env: {} }))
    expect(err.code).toBe('relay_config_invalid')
    expect(err.message).toContain('RELAY_ENCRYPTION_KEY is not set')
  })

  test('the local store gets encryption.key on first start (mode 0600) and keeps using it; a damaged file is named', () => {
    const d = dir()
    const first = loadEncryptionKey({ env: {}, storeDir: d })
    const path = join(d, KEY_FILE_NAME)
    expect(first.source).toBe(path)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(parseKey(readFileSync(path, 'utf8'), path).equals(first.key)).toBe(true)
    expect(loadEncryptionKey({ env: {}, storeDir: d }).key.equals(first.key)).toBe(true)
    // An env key wins over the file.
    const envKey = randomBytes(32)
    expect(loadEncryptionKey({ env: { RELAY_ENCRYPTION_KEY: envKey.toString('hex') }, storeDir: d }).key.equals(envKey)).toBe(true)
    writeFileSync(path, 'damaged\n')
    const err = failure(() => loadEncryptionKey({ env: {}, storeDir: d }))
    expect(err.message).toContain(path)
  })

  test('six relays starting at once on a fresh store directory all end up with the one same key', async () => {
    const d = dir()
    const script = `import { loadEncryptionKey, sealer } from ${JSON.stringify(join(ROOT, 'lib/relay/seal.ts'))}
console.log(sealer(loadEncryptionKey({ env: {}, storeDir: process.argv[2] }).key).keyId)`
    const file = join(d, 'load-key.ts')
    writeFileSync(file, script)
    const bun = join(ROOT, 'node_modules/.bin/bun')
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(bun, [file, join(d, 'store')], { stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        child.stdout.on('data', (c) => (out += c))
        child.on('error', reject)
        child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}`))))
      })
    const ids = await Promise.all(Array.from({ length: 6 }, run))
    expect(new Set(ids).size).toBe(1)
    expect(sealer(loadEncryptionKey({ env: {}, storeDir: join(d, 'store') }).key).keyId).toBe(ids[0]!)
  })
})
