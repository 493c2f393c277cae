/**
 * The relay's HTTP contract, in process (startRelay on 127.0.0.1, the real SQLite store, real
 * fetches): signed webhooks in, leased events out, and every bad request refused without harm.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay, type RunningRelay } from '../lib/relay/server.ts'
import { openSqliteStore } from '../lib/relay/store-sqlite.ts'
import type { RelayStore } from '../lib/relay/store.ts'
import { ack, delivery, poll, post, sessionEvent, sign, WEBHOOK_SECRET, WORKER_TOKEN } from './fakes/webhooks.ts'

const root = mkdtempSync(join(tmpdir(), 'relay-server-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let relay: RunningRelay
let store: RelayStore
let lines: string[]
let clockOffset = 0
let thoughts: { orgId: string; sessionId: string; at: number }[]

beforeEach(() => {
  store = openSqliteStore(join(mkdtempSync(join(root, 'q-')), 'queue.db'))
  lines = []
  clockOffset = 0
  thoughts = []
  relay = startRelay({
    store,
    port: 0,
    host: '127.0.0.1',
    webhookSecret: WEBHOOK_SECRET,
    workerTokens: ['old-token-being-rotated', WORKER_TOKEN],
    now: () => Date.now() + clockOffset,
    log: (line) => lines.push(line),
    linear: { firstThought: async (orgId, sessionId) => void thoughts.push({ orgId, sessionId, at: Date.now() }) },
  })
})
afterEach(async () => {
  await relay.stop()
})

const queued = async () => (await store.stats(Date.now())).counts

describe('POST /webhooks/linear', () => {
  test('a signed created is stored, answered 200, handed to a waiting worker, and gone once acked', async () => {
    const waiting = poll(relay.url, 'w1', 5)
    const res = await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 's1' })))
    expect(res.status).toBe(200)
    const events = await waiting
    expect(events.map((e) => [e.sessionId, e.action, e.attempts])).toEqual([['s1', 'created', 1]])
    expect(events[0]!.payload.promptContext).toContain('ENG-1')
    expect((await ack(relay.url, 'w1', [events[0]!.id])).acked).toEqual([events[0]!.id])
    expect(await queued()).toMatchObject({ queued: 0, leased: 0, acked: 1 })
    expect(await poll(relay.url, 'w1', 0)).toEqual([])
  })

  test('every bad request gets its own 4xx, nothing is enqueued, and the next good webhook still goes through', async () => {
    const good = sessionEvent({ action: 'created', sessionId: 's1' })
    const d = delivery(good)
    const init = (x: { raw: string; headers: Record<string, string> }): RequestInit => ({ headers: x.headers, body: x.raw })
    const cases: [string, RequestInit, number, string][] = [
      ['no signature', { headers: { ...d.headers, 'linear-signature': '' }, body: d.raw }, 401, 'no_signature'],
      [
        'forged signature',
        { headers: { ...d.headers, 'linear-signature': sign(d.raw, 'wrong-secret') }, body: d.raw },
        401,
        'bad_signature',
      ],
      ['body changed after signing', { headers: d.headers, body: d.raw.replace('s1', 's2') }, 401, 'bad_signature'],
      ['stale (replayed 2 min later)', init(delivery({ ...good, webhookTimestamp: Date.now() - 120_000 })), 401, 'stale'],
      ['not JSON, signed', init(delivery('{"type": "AgentSessionEvent", ')), 400, 'malformed'],
      ['no session id, signed', init(delivery({ ...good, agentSession: {} })), 400, 'malformed'],
      ['no Linear-Delivery', { headers: { ...d.headers, 'linear-delivery': '' }, body: d.raw }, 400, 'no_delivery_id'],
      ['2 MiB body', init(delivery({ ...good, padding: 'x'.repeat(2 * 1024 * 1024) })), 413, ''],
    ]
    for (const [name, init, status, code] of cases) {
      const res = await fetch(`${relay.url}/webhooks/linear`, { method: 'POST', ...init })
      expect([name, res.status]).toEqual([name, status])
      if (code) {
        const body = (await res.json()) as { error: { code: string; message: string } }
        expect([name, body.error.code]).toEqual([name, code])
      }
    }
    const stale = await post(relay.url, delivery({ ...good, webhookTimestamp: Date.now() - 120_000 }))
    expect(((await stale.json()) as { error: { message: string } }).error.message).toMatch(/120 s from now; the window is 60 s/)
    expect(await queued()).toMatchObject({ queued: 0 })
    expect((await post(relay.url, d)).status).toBe(200)
    expect(await queued()).toMatchObject({ queued: 1 })
  })

  test('1,000 generated hostile bodies and headers: all 4xx, none enqueued, no crash', async () => {
    const base = JSON.stringify(sessionEvent({ action: 'created', sessionId: 'fuzz' }))
    let seed = 42
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
    const statuses = new Map<number, number>()
    for (let i = 0; i < 1000; i++) {
      const kind = i % 5
      let raw: string | Uint8Array = base
      const headers: Record<string, string> = { 'content-type': 'application/json', 'linear-delivery': `fuzz-${i}` }
      if (kind === 0)
        raw = base.slice(0, rand(base.length)) // truncated, signed as the whole
      else if (kind === 1) {
        const bytes = new TextEncoder().encode(base)
        const at = rand(bytes.length)
        bytes[at] = bytes[at]! ^ (1 << rand(8))
        raw = bytes // one bit flipped after signing
      } else if (kind === 2) raw = crypto.getRandomValues(new Uint8Array(rand(4096) + 1))
      else if (kind === 3) {
        // Signed with the right secret but not an agent-session event we can route.
        const shapes = ['null', '[]', '"x"', '{}', '{"type":1}', `{"type":"AgentSessionEvent","webhookTimestamp":${Date.now()}}`, '1e999']
        raw = shapes[rand(shapes.length)]!
        headers['linear-signature'] = sign(raw)
        expect(raw).not.toBe(base)
      } else raw = base.replace('fuzz', `fuzz${rand(1e6)}`)
      headers['linear-signature'] ??= kind === 4 ? 'ab'.repeat(rand(40)) : sign(base)
      const res = await fetch(`${relay.url}/webhooks/linear`, { method: 'POST', headers, body: raw as BodyInit })
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      await res.arrayBuffer()
    }
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true)
    expect(await queued()).toMatchObject({ queued: 0, leased: 0, acked: 0 })
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200)
  })

  test('redeliveries make one event: same delivery id, or the same session under a new delivery id 1.1 s and 60 s later', async () => {
    const body = sessionEvent({ action: 'created', sessionId: 's1' })
    const first = delivery(body)
    expect((await post(relay.url, first)).status).toBe(200)
    const again = await post(relay.url, first)
    expect(again.status).toBe(200)
    expect(((await again.json()) as { duplicate: string }).duplicate).toBe('delivery')
    await Bun.sleep(1_100)
    const later = await post(relay.url, delivery({ ...body, webhookTimestamp: Date.now() }))
    expect(((await later.json()) as { duplicate: string }).duplicate).toBe('meaning')
    clockOffset = 60_000 // the relay's clock a minute on; Linear re-signs with a fresh timestamp
    expect(
      ((await (await post(relay.url, delivery({ ...body, webhookTimestamp: Date.now() }))).json()) as { duplicate: string }).duplicate,
    ).toBe('meaning')
    const prompt = sessionEvent({ action: 'prompted', sessionId: 's1', activityId: 'activity-1' })
    await post(relay.url, delivery(prompt))
    expect(((await (await post(relay.url, delivery(prompt))).json()) as { duplicate: string }).duplicate).toBe('meaning')
    expect(await queued()).toMatchObject({ queued: 2 })
    expect(relay.metrics.duplicates).toBe(4)
    expect(thoughts).toHaveLength(1)
  })

  test('other event types are answered 200 and ignored; an OAuth revoke is recorded for /status', async () => {
    const issue = delivery({ type: 'Issue', action: 'update', organizationId: 'org-test', webhookTimestamp: Date.now(), data: {} })
    expect((await post(relay.url, issue)).status).toBe(200)
    const revoke = delivery({ type: 'OAuthApp', action: 'revoked', organizationId: 'org-test', webhookTimestamp: Date.now() })
    expect((await post(relay.url, revoke)).status).toBe(200)
    const status = (await (await fetch(`${relay.url}/status`, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } })).json()) as any
    expect(status.notes.map((n: { kind: string }) => n.kind)).toEqual(['oauth_revoked'])
    expect(await queued()).toMatchObject({ queued: 0 })
    expect(lines.some((l) => l.includes('ignored webhook Issue update'))).toBe(true)
  })

  test('a created session gets its first thought at once, with no worker online', async () => {
    const sent = Date.now()
    await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 's9', orgId: 'org-9' })))
    await Bun.sleep(50)
    expect(thoughts.map((t) => [t.orgId, t.sessionId])).toEqual([['org-9', 's9']])
    expect(thoughts[0]!.at - sent).toBeLessThan(10_000)
  })
})

describe('GET /events', () => {
  test('a prompted waits until its created is acked, and goes to the worker holding the session', async () => {
    await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 's1' })))
    await post(relay.url, delivery(sessionEvent({ action: 'prompted', sessionId: 's1' })))
    const [created] = await poll(relay.url, 'w1', 0)
    expect(created?.action).toBe('created')
    expect(await poll(relay.url, 'w1', 1)).toEqual([])
    expect(await poll(relay.url, 'w2', 0)).toEqual([])
    await ack(relay.url, 'w1', [created!.id])
    expect(await poll(relay.url, 'w2', 0)).toEqual([])
    const [prompted] = await poll(relay.url, 'w1', 0)
    expect(prompted?.action).toBe('prompted')
  })

  test('a long poll with nothing to lease answers an empty list after its wait', async () => {
    const started = Date.now()
    expect(await poll(relay.url, 'w1', 1)).toEqual([])
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  test('heartbeat keeps a lease; another worker cannot ack it', async () => {
    await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: 's1' })))
    const [e] = await poll(relay.url, 'w1', 0)
    expect((await ack(relay.url, 'w1', [e!.id], 'heartbeat')).extended).toEqual([e!.id])
    expect(await ack(relay.url, 'w2', [e!.id])).toEqual({ acked: [], refused: [e!.id] })
  })

  test('worker routes need a current bearer token and a worker id; both rotated tokens work', async () => {
    const get = (headers: Record<string, string>) => fetch(`${relay.url}/events?wait=0`, { headers })
    expect((await get({ 'x-worker-id': 'w1' })).status).toBe(401)
    expect((await get({ authorization: 'Bearer nope', 'x-worker-id': 'w1' })).status).toBe(401)
    expect((await get({ authorization: `Bearer ${WORKER_TOKEN}` })).status).toBe(400)
    expect((await get({ authorization: `Bearer ${WORKER_TOKEN}`, 'x-worker-id': 'w1' })).status).toBe(200)
    expect((await get({ authorization: 'Bearer old-token-being-rotated', 'x-worker-id': 'w1' })).status).toBe(200)
    expect((await fetch(`${relay.url}/status`)).status).toBe(401)
  })
})

describe('operator views', () => {
  test('/healthz, /status and /metrics report the queue, and the request log names routes and deliveries but no token', async () => {
    const d = delivery(sessionEvent({ action: 'created', sessionId: 's1' }))
    await post(relay.url, d)
    await post(relay.url, d)
    await fetch(`${relay.url}/webhooks/linear`, { method: 'POST', headers: { ...d.headers, 'linear-signature': 'bad' }, body: d.raw })
    expect(await (await fetch(`${relay.url}/healthz`)).json()).toEqual({ ok: true, store: 'sqlite' })
    const status = (await (await fetch(`${relay.url}/status`, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } })).json()) as any
    expect(status.queue).toMatchObject({ queued: 1 })
    expect(status.oldestUnackedAt).toBeGreaterThan(0)
    const metrics = await (await fetch(`${relay.url}/metrics`)).text()
    expect(metrics).toContain('relay_webhooks_accepted_total 1')
    expect(metrics).toContain('relay_webhooks_duplicate_total 1')
    expect(metrics).toContain('relay_webhooks_rejected_total{reason="bad_signature"} 1')
    expect(metrics).toContain('relay_queue_events{state="queued"} 1')
    expect(
      lines.filter((l) => l.startsWith('POST /webhooks/linear 200')).every((l) => l.includes(`delivery=${d.headers['linear-delivery']}`)),
    ).toBe(true)
    expect(lines.join('\n')).not.toContain(WORKER_TOKEN)
    expect(lines.join('\n')).not.toContain(WEBHOOK_SECRET)
  })
})
