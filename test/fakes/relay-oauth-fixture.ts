/**
 * The relay's Linear side wired against the fake Linear OAuth server: a test clock shared by
 * both, a real SQLite store in a temp dir (its encryption.key generated beside it), the app
 * settings, a token keeper, and `install()` walking the browser's path (relay authorize ->
 * Linear's consent -> relay callback). Also captures everything written to stderr, so a test can
 * check that no token the fake handed out ever reached a log line.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { appSettings, type LinearAppSettings } from '../../lib/relay/app-settings.ts'
import { authorizeResponse, callbackResponse } from '../../lib/relay/oauth.ts'
import { loadEncryptionKey, sealer, type Sealer } from '../../lib/relay/seal.ts'
import { openSqliteStore } from '../../lib/relay/store-sqlite.ts'
import type { RelayStore } from '../../lib/relay/store.ts'
import { tokenKeeper, type TokenDeps, type TokenKeeper } from '../../lib/relay/tokens.ts'
import { stdioHooks } from '../../lib/stdio.ts'
import { tempDir } from '../helpers.ts'
import { startFakeLinearOAuth, type FakeLinearOAuth } from './linear-oauth.ts'

export const CLIENT_ID = 'rose-relay-test-client'
export const CLIENT_SECRET = 'rose-relay-test-client-secret-value'
export const PUBLIC_URL = 'http://127.0.0.1:9/relay'
export const HOUR = 3600_000

export interface RelayOAuthFixture {
  clock: { now: number }
  fake: FakeLinearOAuth
  dir: string
  storePath: string
  store: RelayStore
  sealer: Sealer
  settings: LinearAppSettings
  keeper: TokenKeeper
  /** Another keeper (another relay "instance") over `store`. */
  keeperOn(store: RelayStore, deps?: Partial<TokenDeps>): TokenKeeper
  /** Install the app the way a browser does; returns the callback's response. */
  install(): Promise<Response>
  close(): Promise<void>
}

/** Start the fake and the relay's Linear side over a fresh SQLite store. */
export async function relayOAuthFixture(): Promise<RelayOAuthFixture> {
  const clock = { now: Date.UTC(2026, 11, 1, 9, 0, 0) }
  const now = () => clock.now
  const fake = await startFakeLinearOAuth({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, now })
  const dir = tempDir('relay-oauth-')
  const storePath = join(dir, 'queue.db')
  const store = openSqliteStore(storePath)
  const seal = sealer(loadEncryptionKey({ env: {}, storeDir: dir }).key)
  const settings = appSettings({
    LINEAR_CLIENT_ID: CLIENT_ID,
    LINEAR_CLIENT_SECRET: CLIENT_SECRET,
    RELAY_PUBLIC_URL: PUBLIC_URL,
    LINEAR_OAUTH_URL: fake.url,
    LINEAR_API_URL: `${fake.url}/graphql`,
  })
  const keeperOn = (s: RelayStore, deps: Partial<TokenDeps> = {}) =>
    tokenKeeper({ store: s, settings, sealer: seal, deps: { now, sleep: async () => {}, ...deps } })
  const keeper = keeperOn(store)
  return {
    clock,
    fake,
    dir,
    storePath,
    store,
    sealer: seal,
    settings,
    keeper,
    keeperOn,
    async install() {
      const toLinear = authorizeResponse(settings, clock.now).headers.get('location')!
      const consent = await fetch(toLinear, { redirect: 'manual' })
      const back = consent.headers.get('location')!
      // The browser lands on the relay's public URL; the handler only reads the query.
      return callbackResponse(new Request(back), { settings, keeper, now: clock.now })
    },
    async close() {
      fake.stop()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Everything written to stderr from now until `stop()` (still written through). */
export function captureStderr(): { text: () => string; stop: () => void } {
  const original = process.stderr.write.bind(process.stderr)
  let captured = ''
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    return (original as (...a: unknown[]) => boolean)(chunk, ...rest)
  }) as typeof process.stderr.write
  // The logger writes on fd 2 itself (lib/stdio.ts): captured at its seam too, and written through.
  stdioHooks[2] = (text) => {
    captured += text
    original(text)
  }
  return {
    text: () => captured,
    stop: () => {
      process.stderr.write = original
      delete stdioHooks[2]
    },
  }
}
