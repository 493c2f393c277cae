/** Secrets resolve env first, then GCP Secret Manager, against a fake metadata server and Secret Manager on 127.0.0.1. */
import { afterAll, beforeEach, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineCommand } from 'citty'
import { contextFromArgs, runCli } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { clearGcpSecrets, crc32c, resolveSecrets } from '../lib/gcp-secrets.ts'
import { rejection } from './helpers.ts'
import { CLOUD_PLATFORM_SCOPE } from '../lib/gcp-token.ts'
import { type FakeSecret, startFakeGcp } from './fakes/gcp.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'gcp-secrets-'))
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })

/** What the fake Secret Manager holds in project `proj-one`: a value, or how it refuses. */
const secrets: Record<string, FakeSecret> = {
  LINEAR_API_KEY: 'lin-value-from-gcp-0123',
  LINEAR_WEBHOOK_SECRET: 'webhook-secret-from-gcp-4567',
  FACTORY_RELAY_WORKER_TOKEN: 'worker-token-from-gcp-89ab',
  FORBIDDEN_KEY: { refuse: 403 },
  DISABLED_KEY: { refuse: 'disabled' },
  DESTROYED_KEY: { refuse: 'destroyed' },
}
const gcp = startFakeGcp({ 'proj-one': secrets }, publicKey)
const { calls, jwtClaims } = gcp
const base = gcp.url
const gcpEnv = () => ({ ...gcp.env }) as NodeJS.ProcessEnv

beforeEach(() => {
  clearGcpSecrets()
  gcp.reset()
})
afterAll(() => {
  gcp.stop()
  rmSync(dir, { recursive: true, force: true })
})

test('CRC32C matches the Castagnoli check value Secret Manager uses', () => {
  expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283)
})

test('a variable set in the environment wins and Secret Manager is not asked', async () => {
  const env = { ...gcpEnv(), LINEAR_API_KEY: 'from-env-value' }
  expect(await resolveSecrets(['LINEAR_API_KEY'], env, 'proj-one')).toEqual({ LINEAR_API_KEY: 'env' })
  expect(env.LINEAR_API_KEY).toBe('from-env-value')
  expect(calls.access).toEqual([])
})

test('without a GCP project an unset secret is reported missing and nothing is fetched', async () => {
  const env = gcpEnv()
  expect(await resolveSecrets(['LINEAR_API_KEY'], env, undefined)).toEqual({ LINEAR_API_KEY: 'missing' })
  expect(env.LINEAR_API_KEY).toBeUndefined()
  expect(calls.metadata).toBe(0)
})

test('an unset secret comes from Secret Manager with the metadata token as Bearer, and both are cached', async () => {
  const env = gcpEnv()
  expect(await resolveSecrets(['LINEAR_API_KEY', 'LINEAR_WEBHOOK_SECRET'], env, 'proj-one')).toEqual({
    LINEAR_API_KEY: 'gcp',
    LINEAR_WEBHOOK_SECRET: 'gcp',
  })
  expect(env.LINEAR_API_KEY).toBe('lin-value-from-gcp-0123')
  expect(calls.access).toEqual([
    { path: '/v1/projects/proj-one/secrets/LINEAR_API_KEY/versions/latest:access', auth: 'Bearer meta-token-1' },
    { path: '/v1/projects/proj-one/secrets/LINEAR_WEBHOOK_SECRET/versions/latest:access', auth: 'Bearer meta-token-1' },
  ])
  expect(calls.metadata).toBe(1)
  const again = gcpEnv()
  await resolveSecrets(['LINEAR_API_KEY'], again, 'proj-one')
  expect(again.LINEAR_API_KEY).toBe('lin-value-from-gcp-0123')
  expect(calls.access.length).toBe(2)
  expect(process.env.LINEAR_API_KEY).not.toBe('lin-value-from-gcp-0123')
})

test('with GOOGLE_APPLICATION_CREDENTIALS a signed RS256 JWT is exchanged at the key token_uri', async () => {
  const keyFile = join(dir, 'sa.json')
  const key = {
    type: 'service_account',
    client_email: 'factory@proj-one.iam.gserviceaccount.com',
    private_key_id: 'kid-1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    token_uri: `${base}/oauth2/token`,
  }
  writeFileSync(keyFile, JSON.stringify(key))
  const env: NodeJS.ProcessEnv = { ...gcpEnv(), GOOGLE_APPLICATION_CREDENTIALS: keyFile }
  await resolveSecrets(['LINEAR_API_KEY'], env, 'proj-one')
  expect(env.LINEAR_API_KEY).toBe('lin-value-from-gcp-0123')
  expect([calls.token, calls.metadata]).toEqual([1, 0])
  expect(calls.access[0]!.auth).toBe('Bearer sa-token')
  const claims = jwtClaims.at(-1)!
  expect(claims).toMatchObject({ iss: key.client_email, scope: CLOUD_PLATFORM_SCOPE, aud: key.token_uri })
  expect((claims.exp as number) - (claims.iat as number)).toBe(3600)
})

test('a missing secret, a 403 and a disabled version each name the env var, the secret, the project and the fix', async () => {
  const missing = await rejection(resolveSecrets(['NOPE_KEY'], gcpEnv(), 'proj-one'))
  expect(missing.code).toBe('secret_unavailable')
  expect(missing.message).toContain('NOPE_KEY is not in the environment')
  expect(missing.message).toContain('project proj-one, secret NOPE_KEY')
  expect(missing.message).toContain('404 NOT_FOUND')
  expect(missing.fix).toContain('gcloud secrets create NOPE_KEY --project proj-one')

  const denied = await rejection(resolveSecrets(['FORBIDDEN_KEY'], gcpEnv(), 'proj-one'))
  expect(denied.message).toContain('project proj-one, secret FORBIDDEN_KEY')
  expect(denied.message).toContain('refused access (HTTP 403 PERMISSION_DENIED')
  expect(denied.fix).toContain('roles/secretmanager.secretAccessor on secret FORBIDDEN_KEY in project proj-one')

  const disabled = await rejection(resolveSecrets(['DISABLED_KEY'], gcpEnv(), 'proj-one'))
  expect(disabled.message).toContain('project proj-one, secret DISABLED_KEY')
  expect(disabled.message).toContain('its latest version is disabled')
  expect(disabled.fix).toContain('gcloud secrets versions enable')
})

test('a disabled newest version names that version and how to enable it; a destroyed one says to add a new version', async () => {
  const disabled = await rejection(resolveSecrets(['DISABLED_KEY'], gcpEnv(), 'proj-one'))
  expect(disabled.message).toContain('its latest version is disabled; version 2 is the newest, and latest never falls back to an older one')
  expect(disabled.message).toContain(
    'HTTP 400 FAILED_PRECONDITION: Secret Version [projects/123456/secrets/DISABLED_KEY/versions/2] is in DISABLED state.',
  )
  expect(disabled.fix).toContain('gcloud secrets versions enable 2 --secret DISABLED_KEY --project proj-one')
  expect(disabled.fix).toContain('gcloud secrets versions add DISABLED_KEY --project proj-one --data-file=-')

  const destroyed = await rejection(resolveSecrets(['DESTROYED_KEY'], gcpEnv(), 'proj-one'))
  expect(destroyed.message).toContain('project proj-one, secret DESTROYED_KEY')
  expect(destroyed.message).toContain('its latest version is destroyed')
  expect(destroyed.fix).toBe(
    'export DESTROYED_KEY, or add a new version (a destroyed one cannot come back): gcloud secrets versions add DESTROYED_KEY --project proj-one --data-file=-',
  )
})

test('an optional secret absent from Secret Manager is missing, not an error; with onError a failure is reported', async () => {
  const env = gcpEnv()
  expect(await resolveSecrets(['NOPE_KEY'], env, 'proj-one', { optional: ['NOPE_KEY'] })).toEqual({ NOPE_KEY: 'missing' })
  const seen: string[] = []
  expect(await resolveSecrets(['DISABLED_KEY'], env, 'proj-one', { onError: (e, n) => seen.push(`${n}: ${e.code}`) })).toEqual({
    DISABLED_KEY: 'missing',
  })
  expect(seen).toEqual(['DISABLED_KEY: secret_unavailable'])
})

test('a relay started with only GCP_PROJECT gets its secrets from Secret Manager and never prints them', async () => {
  const relay = Bun.spawn([`${root}/node_modules/.bin/bun`, `${root}/scripts/relay.ts`, '--port', '0'], {
    env: { PATH: process.env.PATH!, HOME: dir, FACTORY_HOME: dir, NO_COLOR: '1', GCP_PROJECT: 'proj-one', ...gcpEnv() } as Record<
      string,
      string
    >,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let logs = ''
  const decoder = new TextDecoder()
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) logs += decoder.decode(chunk)
  }
  const done = Promise.all([read(relay.stdout), read(relay.stderr)])
  while (!/listening on (http:\/\/\S+)/.test(logs) && relay.exitCode === null) await Bun.sleep(20)
  const url = logs.match(/listening on (http:\/\/\S+)/)?.[1]
  expect(url).toBeDefined()
  const wrong = await fetch(`${url}/events?wait=0`, { headers: { authorization: 'Bearer not-the-token' } })
  expect(wrong.status).toBe(401)
  const right = await fetch(`${url}/events?wait=0&worker=w1`, {
    headers: { authorization: `Bearer ${secrets.FACTORY_RELAY_WORKER_TOKEN}` },
  })
  expect(right.status).toBe(200)
  relay.kill('SIGTERM')
  await relay.exited
  await done
  expect(calls.access.map((c) => c.path.split('/')[5])).toEqual([
    'LINEAR_WEBHOOK_SECRET',
    'FACTORY_RELAY_WORKER_TOKEN',
    'LINEAR_CLIENT_SECRET',
    'RELAY_ENCRYPTION_KEY',
  ])
  for (const value of Object.values(secrets)) if (typeof value === 'string') expect(logs).not.toContain(value)
  expect(logs).not.toContain('meta-token')
})

test("an agent's token_env unset in the environment comes from the config's gcp_project and is redacted like any token", async () => {
  const config = join(dir, 'agents.yaml')
  writeFileSync(
    config,
    'secrets: { gcp_project: proj-one }\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: LINEAR_API_KEY }\n    repo: { url: /srv/none.git }\n',
  )
  let seen: string | undefined
  const leaky = defineCommand({
    meta: { name: 'leaky' },
    args: { config: { type: 'string' }, agent: { type: 'string' } },
    async run({ args, data }) {
      const ctx = await contextFromArgs(args, 'leaky', data)
      seen = ctx.env.LINEAR_API_KEY
      throw new FactoryError('git_failed', `push with ${ctx.env.LINEAR_API_KEY} refused`)
    },
  })
  let stderr = ''
  const env = { PATH: process.env.PATH ?? '', HOME: dir, FACTORY_HOME: join(dir, 'home'), ...gcpEnv() }
  const io = { env, out: () => {}, err: (t: string) => void (stderr += t) }
  const code = (await runCli(leaky, ['--config', config], io)).code
  expect(stderr).toContain('push with *** refused')
  expect(code).toBe(1)
  expect(seen).toBe('lin-value-from-gcp-0123')
  expect(stderr).toContain('push with *** refused')
  expect(process.env.LINEAR_API_KEY).not.toBe('lin-value-from-gcp-0123')
})

test('an unknown key under secrets: is a config error naming it', async () => {
  const config = join(dir, 'bad.yaml')
  writeFileSync(
    config,
    'secrets: { gcp_projet: proj-one }\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: X_KEY }\n    repo: { url: /srv/none.git }\n',
  )
  const { loadConfig } = await import('../lib/config.ts')
  let err: unknown
  try {
    loadConfig(config, { X_KEY: 'x' })
  } catch (e) {
    err = e
  }
  expect((err as FactoryError).code).toBe('config_invalid')
  expect((err as FactoryError).message).toContain('gcp_projet')
})
