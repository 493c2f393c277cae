/**
 * The relay's Linear app install and tokens against a fake Linear OAuth server (test/fakes/linear-oauth.ts):
 * the authorize redirect and its signed state, the callback and the sealed install, early
 * refresh, a lost refresh reply, a refused refresh, two instances refreshing at once (one request
 * to Linear), client_credentials re-minting on 401, revokes, and no token in any log line.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { FactoryError } from '../lib/errors.ts'
import { appSettings } from '../lib/relay/app-settings.ts'
import { linearApp } from '../lib/relay/linear-app.ts'
import { authorizeUrl, callbackResponse } from '../lib/relay/oauth.ts'
import { signState, stateKey } from '../lib/relay/oauth-state.ts'
import { openPostgresStore } from '../lib/relay/store-postgres.ts'
import { openSqliteStore } from '../lib/relay/store-sqlite.ts'
import type { RelayStore } from '../lib/relay/store.ts'
import { markRevoked } from '../lib/relay/tokens.ts'
import { failure } from './helpers.ts'
import { createDatabase, postgresUnavailable } from './fakes/postgres.ts'
import { CLIENT_ID, CLIENT_SECRET, HOUR, captureStderr, relayOAuthFixture, type RelayOAuthFixture } from './fakes/relay-oauth-fixture.ts'

const logs = captureStderr()
const issued = new Set<string>()
let f: RelayOAuthFixture

beforeEach(async () => {
  f = await relayOAuthFixture()
})
afterEach(async () => {
  for (const t of f.fake.issued) issued.add(t)
  await f.close()
})
afterAll(() => logs.stop())

async function rejection(p: Promise<unknown>): Promise<FactoryError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(FactoryError)
    return err as FactoryError
  }
  throw new Error('expected a rejection')
}

const graphql = (token: string, fakeUrl: string) =>
  fetch(`${fakeUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: token },
    body: JSON.stringify({ query: '{ issues { nodes { id } } }' }),
  })

describe('install', () => {
  test("the authorize redirect carries actor=app, the agent scopes, the relay's callback and a state the callback accepts", async () => {
    const url = new URL(authorizeUrl(f.settings, f.clock.now))
    expect(`${url.origin}${url.pathname}`).toBe(`${f.fake.url}/oauth/authorize`)
    expect(url.searchParams.get('actor')).toBe('app')
    expect(url.searchParams.get('scope')).toBe('read,write,app:assignable,app:mentionable')
    expect(url.searchParams.get('response_type')).toBe('code')
    expect(url.searchParams.get('redirect_uri')).toBe('http://127.0.0.1:9/relay/oauth/callback')
    expect(url.searchParams.get('state')).toBeTruthy()

    const page = await f.install()
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('Installed in Rose Labs')
    const install = await f.store.getInstall('org-rose')
    expect(install).toMatchObject({ orgName: 'Rose Labs', appUserId: 'app-user-1', kind: 'oauth', revokedAt: null })
    expect(f.fake.isValid(f.sealer.open(install!.accessTokenSealed))).toBe(true)
  })

  test("Linear's authorize URL is linear.app's unless LINEAR_OAUTH_URL is set; missing variables are reported all at once (exit 2)", () => {
    const s = appSettings({ LINEAR_CLIENT_ID: 'id', LINEAR_CLIENT_SECRET: 'secret', RELAY_PUBLIC_URL: 'https://relay.example.test' })
    expect(s.authorizeUrl).toBe('https://linear.app/oauth/authorize')
    expect(s.tokenUrl).toBe('https://api.linear.app/oauth/token')
    expect(s.apiUrl).toBe('https://api.linear.app/graphql')
    const err = failure(() => appSettings({ LINEAR_API_URL: 'not a url' }))
    expect(err.code).toBe('relay_config_invalid')
    expect(err.exitCode).toBe(2)
    for (const name of ['LINEAR_CLIENT_ID', 'LINEAR_CLIENT_SECRET', 'RELAY_PUBLIC_URL', 'LINEAR_API_URL'])
      expect(err.message).toContain(name)
    // A client_credentials relay has no browser install, so no redirect to build.
    expect(appSettings({ LINEAR_CLIENT_ID: 'id', LINEAR_CLIENT_SECRET: 'secret' }, { clientCredentials: true }).redirectUri).toBeNull()
  })

  test('a callback with an expired, forged or missing state is refused with 400 saying which, and nothing is installed', async () => {
    const consentFor = async (state: string) => {
      const url = new URL(authorizeUrl(f.settings, f.clock.now))
      url.searchParams.set('state', state)
      const back = (await fetch(url, { redirect: 'manual' })).headers.get('location')!
      return new URL(back)
    }
    const expiredAt = await consentFor(signState(stateKey(CLIENT_SECRET), f.clock.now - 11 * 60_000))
    const expired = await callbackResponse(new Request(expiredAt), { settings: f.settings, keeper: f.keeper, now: f.clock.now })
    expect(expired.status).toBe(400)
    expect(await expired.text()).toContain('expired')

    const forgedAt = await consentFor(signState(stateKey('another-app-secret'), f.clock.now))
    const forged = await callbackResponse(new Request(forgedAt), { settings: f.settings, keeper: f.keeper, now: f.clock.now })
    expect(forged.status).toBe(400)
    expect(await forged.text()).toContain('not signed by this relay')

    forgedAt.searchParams.delete('state')
    const missing = await callbackResponse(new Request(forgedAt), { settings: f.settings, keeper: f.keeper, now: f.clock.now })
    expect(missing.status).toBe(400)
    expect(await missing.text()).toContain('no state')

    expect(f.fake.counts.authorization_code).toBe(0)
    expect(await f.store.listInstalls()).toEqual([])
  })

  test('a state is good for 10 minutes: a callback 11 minutes after the redirect is refused', async () => {
    const back = (await fetch(authorizeUrl(f.settings, f.clock.now), { redirect: 'manual' })).headers.get('location')!
    f.clock.now += 11 * 60_000
    const res = await callbackResponse(new Request(back), { settings: f.settings, keeper: f.keeper, now: f.clock.now })
    expect(res.status).toBe(400)
    expect(await res.text()).toContain('expired')
  })

  test("the stored tokens are sealed: neither token appears in the store's files, and opening them gives the live pair", async () => {
    await f.install()
    const install = (await f.store.getInstall('org-rose'))!
    expect(install.accessTokenSealed.startsWith('v1.')).toBe(true)
    expect(install.refreshTokenSealed!.startsWith('v1.')).toBe(true)
    const access = f.sealer.open(install.accessTokenSealed)
    const refresh = f.sealer.open(install.refreshTokenSealed!)
    expect(f.fake.liveRefreshTokens()).toEqual([refresh])
    const files = readdirSync(f.dir).filter((n) => n.startsWith('queue.db'))
    expect(files).toContain('queue.db')
    for (const name of files) {
      const bytes = readFileSync(join(f.dir, name)).toString('latin1')
      expect(bytes.includes(access)).toBe(false)
      expect(bytes.includes(refresh)).toBe(false)
    }
  })

  test("replaying a callback (a code used twice) is refused with Linear's invalid_grant, showing no code or token", async () => {
    const back = (await fetch(authorizeUrl(f.settings, f.clock.now), { redirect: 'manual' })).headers.get('location')!
    expect((await callbackResponse(new Request(back), { settings: f.settings, keeper: f.keeper, now: f.clock.now })).status).toBe(200)
    const again = await callbackResponse(new Request(back), { settings: f.settings, keeper: f.keeper, now: f.clock.now })
    expect(again.status).toBe(400)
    const text = await again.text()
    expect(text).toContain('invalid_grant')
    for (const secret of [...f.fake.issued, CLIENT_SECRET]) expect(text.includes(secret)).toBe(false)
  })
})

describe('refresh', () => {
  test('accessToken hands out the stored token until ~20 h, then refreshes once, persisting the new pair before returning it', async () => {
    await f.install()
    const first = await f.keeper.accessToken('org-rose')
    f.clock.now += 19 * HOUR + 59 * 60_000
    expect(await f.keeper.accessToken('org-rose')).toBe(first)
    expect(f.fake.counts.refresh_token).toBe(0)

    f.clock.now += 2 * 60_000
    const second = await f.keeper.accessToken('org-rose')
    expect(second).not.toBe(first)
    expect(f.fake.counts.refresh_token).toBe(1)
    expect(f.fake.isValid(second)).toBe(true)
    const stored = (await f.store.getInstall('org-rose'))!
    expect(f.sealer.open(stored.accessTokenSealed)).toBe(second)
    expect(f.fake.liveRefreshTokens()).toEqual([f.sealer.open(stored.refreshTokenSealed!)])
    expect(stored.expiresAt).toBe(f.clock.now + 86_399_000)
    // Fresh again: no further refresh.
    expect(await f.keeper.accessToken('org-rose')).toBe(second)
    expect(f.fake.counts.refresh_token).toBe(1)
  })

  test('a refresh whose reply is lost is replayed with the same refresh token and ends with a valid, stored pair', async () => {
    await f.install()
    const oldRefresh = f.sealer.open((await f.store.getInstall('org-rose'))!.refreshTokenSealed!)
    f.fake.dropNextReply('refresh_token')
    f.clock.now += 21 * HOUR
    const token = await f.keeper.accessToken('org-rose')
    expect(f.fake.counts.refresh_token).toBe(2)
    expect(f.fake.isValid(token)).toBe(true)
    const stored = (await f.store.getInstall('org-rose'))!
    expect(f.sealer.open(stored.accessTokenSealed)).toBe(token)
    const newRefresh = f.sealer.open(stored.refreshTokenSealed!)
    expect(newRefresh).not.toBe(oldRefresh)
    expect(f.fake.liveRefreshTokens()).toEqual([newRefresh])
  })

  test('when every send of a refresh is lost, the still-valid token keeps serving and the next call replays the same refresh', async () => {
    await f.install()
    const before = await f.keeper.accessToken('org-rose')
    const once = f.keeperOn(f.store, { refreshAttempts: 1 })
    f.fake.dropNextReply('refresh_token')
    f.clock.now += 21 * HOUR
    expect(await once.accessToken('org-rose')).toBe(before)
    expect(f.fake.counts.refresh_token).toBe(1)
    // Linear rotated on the lost request; the stored pair is still the old one, and replaying it gets that rotation.
    f.clock.now += 20 * 60_000
    const after = await once.accessToken('org-rose')
    expect(f.fake.counts.refresh_token).toBe(2)
    expect(after).not.toBe(before)
    expect(f.fake.isValid(after)).toBe(true)
    expect(f.fake.liveRefreshTokens()).toEqual([f.sealer.open((await f.store.getInstall('org-rose'))!.refreshTokenSealed!)])
  })

  test('a refresh Linear refuses (invalid_grant) records a refresh_failed note and throws an error saying to reinstall', async () => {
    await f.install()
    const refresh = f.sealer.open((await f.store.getInstall('org-rose'))!.refreshTokenSealed!)
    f.clock.now += 21 * HOUR
    // Someone else used the refresh token, more than Linear's 30 min replay window ago.
    const body = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refresh,
      client_id: f.settings.clientId,
      client_secret: CLIENT_SECRET,
    })
    expect((await fetch(f.settings.tokenUrl, { method: 'POST', body })).status).toBe(200)
    f.clock.now += 31 * 60_000
    const err = await rejection(f.keeper.accessToken('org-rose'))
    expect(err.code).toBe('relay_oauth_failed')
    expect(err.message).toContain('invalid_grant')
    expect(err.fix).toContain('/oauth/authorize')
    const notes = await f.store.notes(10)
    expect(notes[0]).toMatchObject({ kind: 'refresh_failed', orgId: 'org-rose' })
  })

  test('a 401 on use refreshes once and retries once: the caller sees the retry succeed', async () => {
    await f.install()
    const token = await f.keeper.accessToken('org-rose')
    f.fake.revokeAccessToken(token)
    const res = await f.keeper.callWithToken('org-rose', (t) => graphql(t, f.fake.url))
    expect(res.status).toBe(200)
    expect(f.fake.counts.refresh_token).toBe(1)
    expect(f.fake.graphqlRequests.filter((r) => r.authorization === token)).toHaveLength(1)
  })
})

/** A store shared by two relay instances: `a` and `b` are two handles when the store can have them. */
interface InstanceStoreFactory {
  name: string
  open(path: string): Promise<{ a: RelayStore; b: RelayStore; close(): Promise<void> }>
}

/** SQLite is one process's file (its install lock is in-process): both "instances" share one handle. */
const sqliteInstances: InstanceStoreFactory = {
  name: 'sqlite',
  async open(path) {
    const store = openSqliteStore(path)
    return { a: store, b: store, close: () => store.close() }
  },
}

/** PostgreSQL: two real store handles (two instances) on one database; the lock is an advisory lock. */
const postgresInstances: InstanceStoreFactory = {
  name: 'postgresql',
  async open() {
    const url = await createDatabase()
    const a = await openPostgresStore(url)
    const b = await openPostgresStore(url)
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) }
  },
}

const pgMissing = postgresUnavailable()
if (pgMissing) console.warn(`relay-oauth: the PostgreSQL case is skipped: ${pgMissing}`)
export const INSTANCE_STORES: InstanceStoreFactory[] = pgMissing ? [sqliteInstances] : [sqliteInstances, postgresInstances]

for (const factory of INSTANCE_STORES) {
  test(`two instances asking for one org's expiring token at once send ONE refresh to Linear and both get the same valid token (${factory.name})`, async () => {
    await f.install()
    const shared = await factory.open(join(f.dir, `instances-${factory.name}.db`))
    try {
      await shared.a.putInstall((await f.store.getInstall('org-rose'))!)
      const one = f.keeperOn(shared.a)
      const two = f.keeperOn(shared.b)
      f.clock.now += 21 * HOUR
      const [x, y] = await Promise.all([one.accessToken('org-rose'), two.accessToken('org-rose')])
      expect(f.fake.counts.refresh_token).toBe(1)
      expect(x).toBe(y)
      expect(f.fake.isValid(x)).toBe(true)
      expect(f.sealer.open((await shared.b.getInstall('org-rose'))!.accessTokenSealed)).toBe(x)
    } finally {
      await shared.close()
    }
  })
}

describe('client_credentials and revokes', () => {
  test('a client_credentials token is stored without a refresh token; a 401 re-mints it once and the retry succeeds', async () => {
    const install = await f.keeper.mintClientCredentials()
    expect(install).toMatchObject({ kind: 'client_credentials', refreshTokenSealed: null, orgId: 'org-rose' })
    expect(install.expiresAt).toBe(f.clock.now + 30 * 24 * HOUR)
    const token = await f.keeper.accessToken('org-rose')
    f.fake.revokeAccessToken(token)
    const res = await f.keeper.callWithToken('org-rose', (t) => graphql(t, f.fake.url))
    expect(res.status).toBe(200)
    expect(f.fake.counts.client_credentials).toBe(2)
    expect(f.fake.counts.refresh_token).toBe(0)
    const again = await f.keeper.accessToken('org-rose')
    expect(again).not.toBe(token)
    expect(f.fake.isValid(again)).toBe(true)
  })

  test('a revoked install hands out no token, says to reinstall, and leaves a note; reinstalling clears it', async () => {
    await f.install()
    await markRevoked(f.store, 'org-rose', 'OAuth app revoked by an admin', { now: f.clock.now })
    const err = await rejection(f.keeper.accessToken('org-rose'))
    expect(err.code).toBe('relay_not_installed')
    expect(err.fix).toContain('/oauth/authorize')
    expect((await f.store.notes(1))[0]).toMatchObject({ kind: 'oauth_revoked', orgId: 'org-rose', detail: 'OAuth app revoked by an admin' })
    expect((await f.install()).status).toBe(200)
    expect(f.fake.isValid(await f.keeper.accessToken('org-rose'))).toBe(true)
  })

  test('an org that never installed the app is named in the error', async () => {
    const err = await rejection(f.keeper.accessToken('org-nobody'))
    expect(err.code).toBe('relay_not_installed')
    expect(err.message).toContain('org-nobody')
  })
})

test("the relay's Linear side built from the environment lists installs for /status without any token, and mints client_credentials only once", async () => {
  const env = {
    LINEAR_CLIENT_ID: CLIENT_ID,
    LINEAR_CLIENT_SECRET: CLIENT_SECRET,
    LINEAR_OAUTH_URL: f.fake.url,
    LINEAR_API_URL: `${f.fake.url}/graphql`,
  }
  const app = linearApp({ store: f.store, env, storeDir: f.dir, clientCredentials: true, now: () => f.clock.now })
  expect((await app.authorize(new Request('http://127.0.0.1:9/oauth/authorize'))).status).toBe(404)
  await app.ensureClientCredentials()
  await app.ensureClientCredentials()
  expect(f.fake.counts.client_credentials).toBe(1)
  const view = await app.installs()
  expect(view).toHaveLength(1)
  expect(view[0]).toMatchObject({ orgId: 'org-rose', kind: 'client_credentials', revokedAt: null, rateLimit: null })
  const text = JSON.stringify(view)
  expect(text.includes('v1.')).toBe(false)
  for (const t of f.fake.issued) expect(text.includes(t)).toBe(false)
})

test('no token, code or client secret appeared in any log line of these tests', () => {
  const text = logs.text()
  expect(text).toContain('renewed the oauth token')
  const leaked = [...issued, CLIENT_SECRET].filter((s) => text.includes(s))
  expect(leaked).toEqual([])
})
