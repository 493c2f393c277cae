/**
 * The worker's client of the relay (lib/relay-client.ts) against a real relay process on SQLite:
 * leased events read and acked, prompts and stops read from Linear's payload, and each failure a
 * worker meets (wrong token, relay down, relay failing, a stranger answering) as the code it acts on.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readAgentEvent } from '../lib/agent-event.ts'
import { isRetryable } from '../lib/errors.ts'
import { relayClient } from '../lib/relay-client.ts'
import { spawnRelay, type RelayProcess } from './fakes/relay-process.ts'
import { delivery, post, sessionEvent, WORKER_TOKEN } from './fakes/webhooks.ts'
import { rejection } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'relay-client-'))
let relay: RelayProcess

beforeAll(async () => {
  relay = await spawnRelay(['--local-queue', join(dir, 'queue.db')], { FACTORY_HOME: dir })
})
afterAll(async () => {
  await relay?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const worker = (id = 'worker-a') => relayClient({ url: relay.url, token: WORKER_TOKEN, workerId: id })

/** A port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

test('a created event is leased with its fields checked, read as the session and issue Linear sent, and gone once acked', async () => {
  const client = worker()
  expect(await client.poll({ waitSeconds: 0 })).toEqual([])
  const waiting = client.poll({ waitSeconds: 5 })
  expect((await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 'sess-created', orgId: 'org-9' })))).status).toBe(200)
  const events = await waiting
  expect(events.map((e) => [e.sessionId, e.orgId, e.action, e.attempts])).toEqual([['sess-created', 'org-9', 'created', 1]])
  expect(events[0]!.leaseUntil).toBeGreaterThan(events[0]!.receivedAt)
  const view = readAgentEvent(events[0]!)
  expect(view).toMatchObject({
    kind: 'created',
    sessionId: 'sess-created',
    orgId: 'org-9',
    issue: { id: 'issue-sess-created', identifier: 'ENG-1', title: 'Fix the thing' },
  })
  expect(view.kind === 'created' && view.promptContext).toContain('<title>Fix the thing</title>')

  const beat = await client.heartbeat([events[0]!.id])
  expect(beat.extended).toEqual([events[0]!.id])
  expect(await worker('worker-b').heartbeat([events[0]!.id])).toMatchObject({ extended: [], refused: [events[0]!.id] })
  expect(await client.ack([events[0]!.id])).toEqual({ acked: [events[0]!.id], refused: [] })
  expect(await client.ack([events[0]!.id])).toEqual({ acked: [], refused: [events[0]!.id] })
  expect(await client.poll({ waitSeconds: 0 })).toEqual([])
})

test('a reply is read from content.body, a bare body is the fallback, and a stop signal says stop', async () => {
  const client = worker()
  const sessionId = 'sess-prompted'
  await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId })))
  const [created] = await client.poll({ waitSeconds: 5 })
  await client.ack([created!.id])

  await post(relay.url, delivery(sessionEvent({ action: 'prompted', sessionId, activityId: 'act-1', body: 'please also update the docs' })))
  const [reply] = await client.poll({ waitSeconds: 5 })
  expect(readAgentEvent(reply!)).toMatchObject({ kind: 'prompted', activityId: 'act-1', body: 'please also update the docs', stop: false })
  await client.ack([reply!.id])

  // Linear's docs put the text in agentActivity.body: read it when content has none.
  const bare = sessionEvent({ action: 'prompted', sessionId, activityId: 'act-2' })
  ;(bare.agentActivity as Record<string, unknown>).content = { type: 'prompt' }
  ;(bare.agentActivity as Record<string, unknown>).body = 'the text where the docs put it'
  await post(relay.url, delivery(bare))
  const [second] = await client.poll({ waitSeconds: 5 })
  expect(readAgentEvent(second!)).toMatchObject({ kind: 'prompted', body: 'the text where the docs put it' })
  await client.ack([second!.id])

  await post(relay.url, delivery(sessionEvent({ action: 'prompted', sessionId, activityId: 'act-3', body: 'stop', signal: 'stop' })))
  const [stop] = await client.poll({ waitSeconds: 5 })
  expect(readAgentEvent(stop!)).toMatchObject({ kind: 'prompted', stop: true, signal: 'stop' })
  await client.ack([stop!.id])
})

test('a payload a worker cannot run is read as invalid with the reason, not thrown', () => {
  const base = { sessionId: 's', action: 'created', payload: { type: 'AgentSessionEvent', action: 'created', agentSession: { id: 's' } } }
  expect(readAgentEvent(base)).toEqual({ kind: 'invalid', sessionId: 's', reason: expect.stringContaining('organizationId') })
  expect(readAgentEvent({ ...base, action: 'deleted' })).toMatchObject({ kind: 'invalid', reason: 'unknown action "deleted"' })
})

test('the queue counts are read without leasing anything (what a dry run shows)', async () => {
  const client = worker()
  await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 'sess-status' })))
  const status = await client.status()
  expect(status.store).toBe('sqlite')
  expect(status.queue.queued).toBe(1)
  const [event] = await client.poll({ waitSeconds: 5 })
  expect(event!.attempts).toBe(1)
  await client.ack([event!.id])
})

test('a long poll stopped by its signal (Ctrl-C) resolves with no events instead of failing', async () => {
  const stop = new AbortController()
  const waiting = worker().poll({ waitSeconds: 30, signal: stop.signal })
  await Bun.sleep(100)
  stop.abort()
  expect(await waiting).toEqual([])
})

test('a wrong worker token is relay_auth, not retried, its fix naming FACTORY_RELAY_WORKER_TOKEN, the token in no message', async () => {
  const bad = relayClient({ url: relay.url, token: 'not-the-relay-token', workerId: 'w' })
  const e = await rejection(bad.poll({ waitSeconds: 0 }))
  expect(e.code).toBe('relay_auth')
  expect(isRetryable(e.code)).toBe(false)
  expect(e.fix).toContain('FACTORY_RELAY_WORKER_TOKEN')
  expect(e.message).toContain(relay.url)
  expect(e.describe()).not.toContain('not-the-relay-token')
  expect((await rejection(bad.ack(['x']))).code).toBe('relay_auth')
})

test('a relay that is down is relay_unreachable naming its URL, and retryable', async () => {
  const url = `http://127.0.0.1:${await closedPort()}`
  const e = await rejection(relayClient({ url, token: WORKER_TOKEN, workerId: 'w' }).poll({ waitSeconds: 0 }))
  expect(e.code).toBe('relay_unreachable')
  expect(isRetryable(e.code)).toBe(true)
  expect(e.message).toContain(url)
})

test('a failing relay (5xx) is retryable; a stranger answering in another shape is relay_refused', async () => {
  let reply = new Response('{"error":{"code":"internal","message":"database is locked"}}', { status: 503 })
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => reply.clone() })
  try {
    const client = relayClient({ url: `http://127.0.0.1:${server.port}/`, token: WORKER_TOKEN, workerId: 'w' })
    const down = await rejection(client.poll({ waitSeconds: 0 }))
    expect(down.code).toBe('relay_unreachable')
    expect(down.message).toContain('HTTP 503: database is locked')
    reply = Response.json({ events: [{ id: 'e1' }] })
    const odd = await rejection(client.poll({ waitSeconds: 0 }))
    expect(odd.code).toBe('relay_refused')
    expect(odd.message).toContain('events.0.sessionId')
    reply = new Response('<html>hello</html>', { status: 200 })
    expect((await rejection(client.ack(['e1']))).code).toBe('relay_refused')
  } finally {
    await server.stop(true)
  }
})
