/**
 * agent_session mode under faults, with the worker's LOOP (`start` without --once, stopped with
 * SIGTERM at the end) so a run is live when the fault comes: replies and a stop during a run, a
 * duplicated `created`, kill -9 of the worker and of the relay mid-run. All real processes on
 * 127.0.0.1 (test/fakes/agent-session-setup.ts); the console engine is slowed with
 * ROSE_CONSOLE_DELAY_MS so a run stays live long enough.
 */
import { afterAll, afterEach, beforeEach, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { relayLinear } from '../lib/relay/linear-app.ts'
import { openStore } from '../lib/relay/open-store.ts'
import { startRelay } from '../lib/relay/server.ts'
import { sandboxDuplicate, sandboxPrompt } from '../lib/sandbox/client.ts'
import { pidAlive } from '../lib/signal.ts'
import { APP_TOKEN, GH_TOKEN, removeSetups, setup, type Setup, type WorkerLoop } from './fakes/agent-session-setup.ts'
import { spawnRelay } from './fakes/relay-process.ts'
import { WEBHOOK_SECRET, WORKER_TOKEN } from './fakes/webhooks.ts'
import { gitSync } from './helpers.ts'

afterAll(removeSetups)
let s: Setup
let loops: WorkerLoop[] = []
beforeEach(async () => {
  s = await setup()
  loops = []
})
afterEach(async () => {
  for (const l of loops) await l.kill9()
  await s.stop()
})

const loop = (env: Record<string, string> = {}) => {
  const l = s.loop(env)
  loops.push(l)
  return l
}

/** Wait (polling) until `cond` holds; fails naming `what` and the worker's output after `ms`. */
type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>
async function until<T>(what: string, cond: () => T | Promise<T>, ms = 60_000, l?: WorkerLoop): Promise<Truthy<T>> {
  const end = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v as Truthy<T>
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${l?.output() ?? ''}`)
    await Bun.sleep(50)
  }
}

const activities = async (id: string) => (await s.session(id)).activities
const ofType = async (id: string, type: string) => (await activities(id)).filter((a) => a.content.type === type)
const running = () => s.record()?.phase === 'running' && s.lockOwner()
const prompt = (session: string, body: string) => sandboxPrompt(s.sandbox.baseUrl, { session, body, user: 'riley@rose.test' })

test('two replies during a live run give exactly one more run after it, with both replies, and two final responses in all', async () => {
  const sessionId = await s.delegate()
  const l = loop({ ROSE_CONSOLE_DELAY_MS: '4000' })
  await until('run #1 live', running, 60_000, l)
  await prompt(sessionId, 'first reply: also log the check')
  await prompt(sessionId, 'second reply: and document it')
  // Both are taken by the intake while run #1 still runs: they wait for the next run.
  const held = await until('both replies recorded during run #1', () => {
    const r = s.record()
    return r?.pendingPrompts?.length === 2 && r
  })
  expect(held.runs).toHaveLength(1)
  expect(held.phase).toBe('running')
  await until('two final responses', async () => (await ofType(sessionId, 'response')).length === 2, 60_000, l)
  await until('the record done with nothing pending', () => s.record()?.phase === 'done' && !s.record()?.pendingPrompts)
  expect(await l.stop()).toBe(0)
  const r = s.record()!
  expect(r.runs.map((x) => x.n)).toEqual([1, 2])
  expect(r.runs[1]!.prompts).toEqual(['first reply: also log the check', 'second reply: and document it'])
  expect(await ofType(sessionId, 'response')).toHaveLength(2)
  expect(s.gh.prs).toHaveLength(1)
  const notes = gitSync(['show', `${s.gh.prs[0]!.head}:FACTORY_NOTES.md`], s.origin)
  expect(notes).toContain('first reply: also log the check')
  expect(notes).toContain('second reply: and document it')
}, 120_000)

test('a stop during a run ends the engine within 5 s, answers once that it stopped, is not retried or escalated, and a later reply starts it again', async () => {
  const sessionId = await s.delegate()
  // Without the stop the engine would work 12 s more: the 5 s below can only hold if the stop ended it.
  const l = loop({ ROSE_CONSOLE_DELAY_MS: '12000' })
  const owner = await until('run #1 live', running, 60_000, l)
  // The console engine runs inside the run child; a spawned engine would be in the lock as `engine`.
  const enginePid = owner.engine?.pid ?? owner.pid
  expect(pidAlive(enginePid)).toBe(true)
  // The run child's environ holds no token: they came on fd 3.
  const childEnv = readFileSync(`/proc/${owner.pid}/environ`, 'utf8')
  const driverEnv = readFileSync(`/proc/${l.pid}/environ`, 'utf8')
  for (const secret of [WORKER_TOKEN, GH_TOKEN, APP_TOKEN]) {
    expect(childEnv.includes(secret)).toBe(false)
    expect(driverEnv.includes(secret)).toBe(false)
  }
  const t0 = performance.now()
  await sandboxPrompt(s.sandbox.baseUrl, { session: sessionId, signal: 'stop', user: 'riley@rose.test' })
  await until('the engine gone', () => !pidAlive(enginePid), 30_000, l)
  const goneMs = performance.now() - t0
  console.log(`engine gone ${Math.round(goneMs)} ms after the stop`)
  expect(goneMs).toBeLessThan(5000)
  const stopped = await until('the stop answered', async () => {
    const rs = await ofType(sessionId, 'response')
    return rs.length > 0 && rs
  })
  expect(stopped).toHaveLength(1)
  expect(stopped[0]!.content.body).toContain('Stopped as asked')
  // A few intake rounds later: still one run, released, nothing retried, nothing escalated.
  await Bun.sleep(3000)
  const r = s.record()!
  expect(r.phase).toBe('released')
  expect(r.runs).toHaveLength(1)
  expect(s.lockOwner()).toBeNull()
  expect(await ofType(sessionId, 'response')).toHaveLength(1)
  expect(await ofType(sessionId, 'elicitation')).toHaveLength(0)
  expect(await ofType(sessionId, 'error')).toHaveLength(0)
  expect(s.gh.prs).toHaveLength(0)
  // A later reply starts it again: run #2, a PR, a second response.
  await prompt(sessionId, 'go on after all')
  await until('the reply answered', async () => (await ofType(sessionId, 'response')).length === 2, 60_000, l)
  await until('the record done', () => s.record()?.phase === 'done')
  expect(await l.stop()).toBe(0)
  expect(s.record()!.runs.map((x) => x.n)).toEqual([1, 2])
  expect(s.record()!.runs[1]!.prompts).toEqual(['go on after all'])
  expect(s.gh.prs).toHaveLength(1)
}, 120_000)

test('the same created delivered twice and a reply queued behind it: one run, in order, one final response', async () => {
  const sessionId = await s.delegate()
  await until('the created delivered', async () => (await ofType(sessionId, 'thought')).length > 0)
  // Linear's duplicate (a new delivery id, the same event), then a reply, all before any worker has acked the created.
  const dup = await sandboxDuplicate(s.sandbox.baseUrl)
  expect(dup.delivery.duplicateOf).toBeTruthy()
  // The relay answered it and did not queue it again (a worker-side guard: the two tests at the end).
  const metrics = await (await fetch(`${s.relay.url}/metrics`, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } })).text()
  expect(metrics).toMatch(/relay_webhooks_duplicate_total 1\b/)
  await prompt(sessionId, 'and answer HEAD too')
  const l = loop()
  await until('one final response', async () => (await ofType(sessionId, 'response')).length === 1, 60_000, l)
  await until('the record done', () => s.record()?.phase === 'done')
  // A few more intake rounds: nothing else comes.
  await Bun.sleep(3000)
  expect(await l.stop()).toBe(0)
  const r = s.record()!
  expect(r.runs).toHaveLength(1)
  // In order: the created opened the record, the reply then joined the queued run's prompt.
  expect(r.runs[0]!.prompts).toEqual(['and answer HEAD too'])
  expect(await ofType(sessionId, 'response')).toHaveLength(1)
  expect(s.gh.prs).toHaveLength(1)
  expect(gitSync(['show', `${s.gh.prs[0]!.head}:FACTORY_NOTES.md`], s.origin)).toContain('and answer HEAD too')
}, 120_000)

test('kill -9 of the worker mid-run, then a new start: the session completes once, one PR, one final response, In Review', async () => {
  const sessionId = await s.delegate()
  const first = loop({ ROSE_CONSOLE_DELAY_MS: '8000' })
  const owner = await until('run #1 live', running, 60_000, first)
  // The driver's group and the run child's (it leads its own).
  await first.kill9()
  try {
    process.kill(-owner.pid, 'SIGKILL')
  } catch {}
  await until('the run child gone', () => !pidAlive(owner.pid))
  expect(await ofType(sessionId, 'response')).toHaveLength(0)
  const second = loop()
  await until('one final response', async () => (await ofType(sessionId, 'response')).length === 1, 60_000, second)
  await until('the record done', () => s.record()?.phase === 'done')
  await Bun.sleep(2000)
  expect(await second.stop()).toBe(0)
  expect(await ofType(sessionId, 'response')).toHaveLength(1)
  expect(await ofType(sessionId, 'error')).toHaveLength(0)
  expect(s.gh.prs).toHaveLength(1)
  expect(s.issueState()).toBe('In Review')
  expect((await s.session(sessionId)).status).toBe('complete')
}, 120_000)

test('kill -9 of the relay mid-run, started again on the same queue and port: the run completes, one final response, one PR', async () => {
  const sessionId = await s.delegate()
  const l = loop({ ROSE_CONSOLE_DELAY_MS: '2000' })
  await until('run #1 live', running, 60_000, l)
  const port = Number(new URL(s.relay.url).port)
  await s.relay.stop('SIGKILL')
  // Down until the run's own posts through the relay have failed (its progress), not just the driver's long poll.
  await until('a progress post refused by the dead relay', () => l.output().includes('a progress update was not posted'), 60_000, l)
  expect(await ofType(sessionId, 'response')).toHaveLength(0)
  s.relay = await spawnRelay(s.relayArgs, s.relayEnv, { port })
  await until('one final response', async () => (await ofType(sessionId, 'response')).length === 1, 60_000, l)
  await until('the record done', () => s.record()?.phase === 'done')
  await Bun.sleep(2000)
  expect(await l.stop()).toBe(0)
  expect(await ofType(sessionId, 'response')).toHaveLength(1)
  expect(s.record()!.runs).toHaveLength(1)
  expect(s.gh.prs).toHaveLength(1)
  expect(s.issueState()).toBe('In Review')
}, 120_000)

/**
 * The relay in this process on the set-up's queue file and port, with a 40 s lease and the
 * `nth` ack lost (the relay answers 500 and the event stays leased): as when the worker dies, or
 * the relay restarts, between recording an event and acking it.
 */
async function relayLosingAck(
  nth: number,
): Promise<{ stats: () => Promise<{ oldestUnackedAt: number | null }>; stop: () => Promise<void> }> {
  const port = Number(new URL(s.relay.url).port)
  await s.relay.stop()
  const path = s.relayArgs[s.relayArgs.indexOf('--local-queue') + 1]!
  const real = await openStore({ kind: 'sqlite', path })
  let acks = 0
  const store = new Proxy(real, {
    get(target, key, receiver) {
      if (key !== 'ack') return Reflect.get(target, key, receiver)
      return async (input: { worker: string; ids: string[]; now: number }) => {
        if (++acks === nth) throw new Error('the ack was lost')
        return target.ack(input)
      }
    },
  })
  const env = { ...s.relayEnv, LINEAR_WEBHOOK_SECRET: WEBHOOK_SECRET }
  const linear = await relayLinear({ store, env, storeDir: dirname(path), clientCredentials: true })
  const relay = startRelay({
    store,
    port,
    host: '127.0.0.1',
    webhookSecret: WEBHOOK_SECRET,
    workerTokens: [WORKER_TOKEN],
    linear,
    // Longer than the worker's 30 s backoff after the failed ack plus the run: the run is done when it ends.
    policy: { leaseMs: 40_000, maxAttempts: 5 },
    log: () => {},
  })
  return { stats: () => real.stats(Date.now()), stop: () => relay.stop() }
}

test('a created handed out again after its run finished (its first ack was lost) does not run the session twice', async () => {
  const relay = await relayLosingAck(1)
  try {
    const sessionId = await s.delegate()
    const l = loop()
    await until('one final response', async () => (await ofType(sessionId, 'response')).length === 1, 60_000, l)
    // The lease ran out, the relay handed the created out again, the worker took it and acked it.
    await until('every event acked', async () => (await relay.stats()).oldestUnackedAt === null, 60_000, l)
    await until('the worker idle', () => s.lockOwner() === null)
    const r = s.record()!
    expect(r.phase).toBe('done')
    expect(r.runs).toHaveLength(1)
    expect(l.output()).toContain('not queued')
    expect(await l.stop()).toBe(0)
    expect(await ofType(sessionId, 'response')).toHaveLength(1)
    expect(s.gh.prs).toHaveLength(1)
  } finally {
    await relay.stop()
  }
}, 120_000)

test('a reply handed out again after the run that took it (its ack was lost) does not run the session again', async () => {
  const relay = await relayLosingAck(2)
  try {
    const sessionId = await s.delegate()
    const l = loop()
    await until('the first final response', async () => (await ofType(sessionId, 'response')).length === 1, 60_000, l)
    await prompt(sessionId, 'one more thing')
    await until('the reply answered', async () => (await ofType(sessionId, 'response')).length === 2, 60_000, l)
    await until('every event acked', async () => (await relay.stats()).oldestUnackedAt === null, 60_000, l)
    await until('the worker idle', () => s.lockOwner() === null)
    const r = s.record()!
    expect(r.phase).toBe('done')
    expect(r.runs.map((x) => x.prompts)).toEqual([undefined, ['one more thing']])
    expect(l.output()).toContain('not taken')
    expect(await l.stop()).toBe(0)
    expect(await ofType(sessionId, 'response')).toHaveLength(2)
  } finally {
    await relay.stop()
  }
}, 120_000)
