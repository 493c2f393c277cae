/** The relay's commands as a user runs them: config errors with exit 2, and requeueing dead letters. */
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openSqliteStore } from '../lib/relay/store-sqlite.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'relay-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const run = (script: string, args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync([`${root}/node_modules/.bin/bun`, `${root}/scripts/${script}.ts`, ...args], {
    env: { PATH: process.env.PATH!, HOME: dir, FACTORY_HOME: dir, NO_COLOR: '1', ...env },
  })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}

test('the relay without its secrets exits 2 and names every missing variable', () => {
  const r = run('relay', ['--port', '0'])
  expect(r.code).toBe(2)
  expect(r.err).toContain('LINEAR_WEBHOOK_SECRET and FACTORY_RELAY_WORKER_TOKEN')
})

test('a bad port or two stores at once exit 2 with the fix', () => {
  const env = { LINEAR_WEBHOOK_SECRET: 'x', FACTORY_RELAY_WORKER_TOKEN: 'y' }
  const port = run('relay', ['--port', 'eighty'], env)
  expect(port.code).toBe(2)
  expect(port.err).toContain('--port eighty is not a port number')
  const both = run('relay', ['--port', '0', '--local-queue', join(dir, 'q.db'), '--queue-url', 'postgres://u:secret-pw@127.0.0.1/db'], env)
  expect(both.code).toBe(2)
  expect(both.err).toContain('--local-queue and --queue-url')
  const notPg = run('relay', ['--port', '0', '--queue-url', 'mysql://u:secret-pw@127.0.0.1/db'], env)
  expect(notPg.code).toBe(2)
  expect(notPg.err).toContain('mysql://u:***@127.0.0.1/db')
  expect(notPg.err).not.toContain('secret-pw')
})

test('relay-requeue puts a parked event back in the queue, and says so when an id is not parked', async () => {
  const path = join(dir, 'parked.db')
  const store = openSqliteStore(path)
  await store.accept({
    deliveryId: 'd1',
    dedupeKey: 'created:s1',
    sessionId: 's1',
    orgId: 'o1',
    action: 'created',
    payload: '{}',
    receivedAt: 1,
  })
  for (let i = 0; i < 2; i++) await store.lease({ worker: 'w', max: 1, leaseMs: 10, maxAttempts: 2, now: 1_000 * (i + 1) })
  await store.lease({ worker: 'w', max: 1, leaseMs: 10, maxAttempts: 2, now: 10_000 })
  const [parked] = (await store.stats(10_000)).deadLetters
  expect(parked).toBeDefined()
  await store.close()

  const r = run('relay-requeue', ['--all', '--local-queue', path, '--json'])
  expect([r.code, r.err]).toEqual([0, ''])
  expect(JSON.parse(r.out)).toEqual({ requeued: [parked!.id] })
  const again = run('relay-requeue', ['--id', parked!.id, '--local-queue', path])
  expect(again.code).toBe(2)
  expect(again.err).toContain('is not parked')
  expect(run('relay-requeue', ['--local-queue', path]).code).toBe(2)
  const reopened = openSqliteStore(path)
  expect((await reopened.stats(0)).counts).toMatchObject({ queued: 1, parked: 0 })
  await reopened.close()
})
