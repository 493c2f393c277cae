/**
 * The relay store's invariants (lib/relay/store.ts), one suite run on every store: SQLite, and
 * PostgreSQL on a throwaway server (test/fakes/postgres.ts; each store a fresh database). Then
 * what only PostgreSQL promises: several instances (store handles) sharing one database.
 */
import { afterAll, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingEvent, RelayStore } from '../lib/relay/store.ts'
import { openPostgresStore } from '../lib/relay/store-postgres.ts'
import { openSqliteStore } from '../lib/relay/store-sqlite.ts'
import { createDatabase, postgresUnavailable } from './fakes/postgres.ts'

interface StoreFactory {
  name: string
  /** Why this store cannot be tested here (its suite is skipped with this reason), or null. */
  unavailable: string | null
  /** A fresh, empty store. */
  open(): Promise<RelayStore>
  /** A second handle on the same data (a restart, or another instance). */
  reopen(store: RelayStore): Promise<RelayStore>
}

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const sqlitePaths = new WeakMap<RelayStore, string>()
const sqlite: StoreFactory = {
  name: 'sqlite',
  unavailable: null,
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'relay-store-'))
    dirs.push(dir)
    const path = join(dir, 'queue.db')
    const store = openSqliteStore(path)
    sqlitePaths.set(store, path)
    return store
  },
  async reopen(store) {
    const path = sqlitePaths.get(store)!
    await store.close()
    const again = openSqliteStore(path)
    sqlitePaths.set(again, path)
    return again
  },
}

const postgresUrls = new WeakMap<RelayStore, string>()
const postgres: StoreFactory = {
  name: 'postgres',
  unavailable: postgresUnavailable(),
  async open() {
    const url = await createDatabase()
    const store = await openPostgresStore(url)
    postgresUrls.set(store, url)
    return store
  },
  async reopen(store) {
    const url = postgresUrls.get(store)!
    await store.close()
    const again = await openPostgresStore(url)
    postgresUrls.set(again, url)
    return again
  },
}

export const STORES: StoreFactory[] = [sqlite, postgres]

/** A suite title that says why it is skipped, so a skip never reads as a pass. */
function suiteTitle(title: string, unavailable: string | null): string {
  if (!unavailable) return title
  console.warn(`${title} SKIPPED: ${unavailable}`)
  return `${title} (SKIPPED: ${unavailable})`
}

let n = 0
function event(sessionId: string, action: 'created' | 'prompted', over: Partial<IncomingEvent> = {}): IncomingEvent {
  n++
  return {
    deliveryId: `delivery-${n}`,
    dedupeKey: action === 'created' ? `created:${sessionId}` : `prompted:activity-${n}`,
    sessionId,
    orgId: 'org-1',
    action,
    payload: JSON.stringify({ action, n, agentSession: { id: sessionId } }),
    receivedAt: 1_000 + n,
    ...over,
  }
}

const T0 = 1_700_000_000_000
const LEASE = 60_000
const lease = (store: RelayStore, worker: string, now = T0, max = 10) => store.lease({ worker, max, leaseMs: LEASE, maxAttempts: 3, now })

for (const factory of STORES) {
  describe.skipIf(factory.unavailable !== null)(suiteTitle(`relay store (${factory.name})`, factory.unavailable), () => {
    let store: RelayStore
    beforeEach(async () => {
      store = await factory.open()
    })

    test('an accepted event is leased once, with its payload and a first attempt', async () => {
      const e = event('s1', 'created')
      const accepted = await store.accept(e)
      expect(accepted.status).toBe('accepted')
      const got = await lease(store, 'w1')
      expect(got).toHaveLength(1)
      expect(got[0]).toMatchObject({ sessionId: 's1', action: 'created', attempts: 1, leaseUntil: T0 + LEASE })
      expect((got[0]!.payload as { n: number }).n).toBe(JSON.parse(e.payload).n)
      expect(await lease(store, 'w2')).toEqual([])
      await store.close()
    })

    test('a redelivery with the same delivery id, or the same session created again, is a duplicate and not queued twice', async () => {
      const e = event('s1', 'created')
      const first = await store.accept(e)
      expect(await store.accept(e)).toEqual({ status: 'duplicate', by: 'delivery', id: first.id })
      expect(await store.accept({ ...e, deliveryId: 'another-delivery' })).toEqual({ status: 'duplicate', by: 'meaning', id: first.id })
      expect((await store.stats(T0)).counts.queued).toBe(1)
      await store.close()
    })

    test('concurrent accepts of one delivery make one event', async () => {
      const e = event('s1', 'created')
      const results = await Promise.all(Array.from({ length: 20 }, () => store.accept({ ...e })))
      expect(results.filter((r) => r.status === 'accepted')).toHaveLength(1)
      expect((await store.stats(T0)).counts.queued).toBe(1)
      await store.close()
    })

    test('a prompted is not delivered before its session created is acked, and one event per session is in flight', async () => {
      await store.accept(event('s1', 'created'))
      await store.accept(event('s1', 'prompted'))
      await store.accept(event('s2', 'created'))
      const first = await lease(store, 'w1')
      expect(first.map((e) => [e.sessionId, e.action])).toEqual([
        ['s1', 'created'],
        ['s2', 'created'],
      ])
      expect(await lease(store, 'w1')).toEqual([])
      expect(await store.ack({ worker: 'w1', ids: [first[0]!.id], now: T0 })).toEqual([first[0]!.id])
      const next = await lease(store, 'w1')
      expect(next.map((e) => [e.sessionId, e.action])).toEqual([['s1', 'prompted']])
      await store.close()
    })

    test("a session's later events go to the worker that holds it until its hold lapses", async () => {
      await store.accept(event('s1', 'created'))
      const [created] = await lease(store, 'w1')
      await store.ack({ worker: 'w1', ids: [created!.id], now: T0 })
      await store.accept(event('s1', 'prompted'))
      expect(await lease(store, 'w2', T0 + 1_000)).toEqual([])
      const mine = await lease(store, 'w1', T0 + 2_000)
      expect(mine.map((e) => e.action)).toEqual(['prompted'])
      await store.ack({ worker: 'w1', ids: [mine[0]!.id], now: T0 + 2_000 })
      await store.accept(event('s1', 'prompted'))
      // w1 stops polling and heartbeating: its hold (lease length) lapses and w2 takes the session over.
      const later = T0 + 2_000 + LEASE + 1
      const taken = await lease(store, 'w2', later)
      expect(taken.map((e) => [e.sessionId, e.action])).toEqual([['s1', 'prompted']])
      expect((await store.stats(later)).sessionsHeld).toEqual({ w2: 1 })
      await store.close()
    })

    test('an unacked event is redelivered after its lease with its attempt count, then parked after the last attempt', async () => {
      await store.accept(event('s1', 'created'))
      let now = T0
      for (const attempt of [1, 2, 3]) {
        const got = await lease(store, 'w1', now)
        expect(got.map((e) => e.attempts)).toEqual([attempt])
        now += LEASE + 1
      }
      expect(await lease(store, 'w1', now)).toEqual([])
      const stats = await store.stats(now)
      expect(stats.counts.parked).toBe(1)
      expect(stats.deadLetters.map((d) => [d.sessionId, d.action, d.attempts])).toEqual([['s1', 'created', 3]])
      expect(stats.leaseExpiries).toBe(3)
      expect(stats.oldestUnackedAt).not.toBeNull()
      expect(await store.requeue(stats.deadLetters[0]!.id)).toBe(true)
      expect(await store.requeue(stats.deadLetters[0]!.id)).toBe(false)
      expect((await lease(store, 'w1', now)).map((e) => e.attempts)).toEqual([1])
      await store.close()
    })

    test('a parked event keeps the later events of its session waiting (order is never broken)', async () => {
      await store.accept(event('s1', 'created'))
      await store.accept(event('s1', 'prompted'))
      let now = T0
      for (let i = 0; i < 3; i++) {
        await lease(store, 'w1', now)
        now += LEASE + 1
      }
      expect(await lease(store, 'w1', now)).toEqual([])
      expect((await store.stats(now)).counts).toMatchObject({ queued: 1, parked: 1 })
      await store.close()
    })

    test('only the worker holding the lease can ack or extend it; a lost lease cannot be acked', async () => {
      await store.accept(event('s1', 'created'))
      const [e] = await lease(store, 'w1')
      expect(await store.ack({ worker: 'w2', ids: [e!.id], now: T0 })).toEqual([])
      expect(await store.heartbeat({ worker: 'w2', ids: [e!.id], leaseMs: LEASE, now: T0 })).toEqual([])
      expect(await store.heartbeat({ worker: 'w1', ids: [e!.id], leaseMs: LEASE, now: T0 + 50_000 })).toEqual([e!.id])
      // Extended: still w1's at T0 + 100 s (the first lease would have run out at T0 + 60 s).
      expect(await lease(store, 'w2', T0 + 100_000)).toEqual([])
      const late = T0 + 50_000 + LEASE + 1
      const [again] = await lease(store, 'w2', late)
      expect(again?.attempts).toBe(2)
      expect(await store.ack({ worker: 'w1', ids: [e!.id], now: late })).toEqual([])
      expect(await store.ack({ worker: 'w2', ids: [e!.id], now: late })).toEqual([e!.id])
      expect((await store.stats(late)).counts).toMatchObject({ acked: 1, leased: 0, queued: 0 })
      await store.close()
    })

    test('accepted events and their dedupe keys survive a restart; acked ones are forgotten only by prune', async () => {
      const a = event('s1', 'created', { receivedAt: 10 })
      const b = event('s2', 'created', { receivedAt: 20 })
      await store.accept(a)
      await store.accept(b)
      store = await factory.reopen(store)
      const got = await lease(store, 'w1')
      expect(got).toHaveLength(2)
      await store.ack({ worker: 'w1', ids: got.map((e) => e.id), now: T0 })
      expect((await store.accept(a)).status).toBe('duplicate')
      expect(await store.prune(15)).toBe(1)
      expect((await store.accept(a)).status).toBe('accepted')
      expect((await store.accept(b)).status).toBe('duplicate')
      await store.close()
    })

    test('installs and notes round-trip, and install locks run one at a time per org', async () => {
      const install = {
        orgId: 'org-1',
        orgName: 'Acme',
        appUserId: 'app-user-1',
        kind: 'oauth' as const,
        accessTokenSealed: 'v1:sealed-a',
        refreshTokenSealed: 'v1:sealed-r',
        expiresAt: T0 + 86_400_000,
        scope: 'read,write',
        updatedAt: T0,
        revokedAt: null,
      }
      await store.putInstall(install)
      await store.putInstall({ ...install, accessTokenSealed: 'v1:sealed-b' })
      expect(await store.getInstall('org-1')).toEqual({ ...install, accessTokenSealed: 'v1:sealed-b' })
      expect(await store.getInstall('org-2')).toBeNull()
      expect((await store.listInstalls()).map((i) => i.orgId)).toEqual(['org-1'])
      const order: string[] = []
      const slow = (name: string) => async () => {
        order.push(`${name}:in`)
        await Bun.sleep(20)
        order.push(`${name}:out`)
        return name
      }
      const results = await Promise.all([store.withInstallLock('org-1', slow('a')), store.withInstallLock('org-1', slow('b'))])
      expect(results).toEqual(['a', 'b'])
      expect(order).toEqual(['a:in', 'a:out', 'b:in', 'b:out'])
      await store.recordNote({ kind: 'oauth_revoked', orgId: 'org-1', detail: 'revoked by an admin', at: T0 })
      await store.recordNote({ kind: 'thought_failed', orgId: null, detail: 'Linear 500', at: T0 + 1 })
      expect((await store.notes(10)).map((x) => x.kind)).toEqual(['thought_failed', 'oauth_revoked'])
      await store.close()
    })

    test('a change listener hears new events and acks', async () => {
      let heard = 0
      const off = store.onChange(() => heard++)
      await store.accept(event('s1', 'created'))
      expect(heard).toBeGreaterThanOrEqual(1)
      const before = heard
      const [e] = await lease(store, 'w1')
      await store.ack({ worker: 'w1', ids: [e!.id], now: T0 })
      await Bun.sleep(50)
      expect(heard).toBeGreaterThan(before)
      off()
      await store.close()
    })
  })
}

/** Resolves when `heard()` is true; rejects after `ms` (a missing wake-up fails, it does not hang). */
async function until(heard: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!heard()) {
    if (Date.now() > deadline) throw new Error(`not heard within ${ms} ms`)
    await Bun.sleep(5)
  }
}

describe.skipIf(postgres.unavailable !== null)(suiteTitle('relay store on PostgreSQL, several instances', postgres.unavailable), () => {
  const open: RelayStore[] = []
  const instances = async (count: number, url?: string) => {
    const db = url ?? (await createDatabase())
    const stores = await Promise.all(Array.from({ length: count }, () => openPostgresStore(db)))
    open.push(...stores)
    return stores
  }
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()))
  })

  test('instances starting at once on an empty database migrate it once, and a newer schema is refused with the fix', async () => {
    const url = await createDatabase()
    const [a, b, c] = await instances(3, url)
    await a!.accept(event('s1', 'created'))
    expect((await c!.stats(T0)).counts.queued).toBe(1)
    expect((await b!.accept(event('s1', 'created'))).status).toBe('duplicate')
    const { SQL } = await import('bun')
    const admin = new SQL(url, { max: 1 })
    await admin`UPDATE schema_version SET version = 99`
    await admin.close()
    await expect(openPostgresStore(url)).rejects.toThrow(/schema version 99 is newer than this relay \(\d+\): upgrade rose-factory/)
  })

  /**
   * `workers` workers (alternating over `stores`) lease (max 3) and ack until `total` events are acked
   * (or 60 s pass: the assertions then show what is missing). A second delivery of a session while
   * one of its events is leased and its ack not even sent is recorded as a violation.
   */
  async function drain(stores: RelayStore[], total: number, workers: number) {
    const inFlight = new Map<string, string>()
    const violations: string[] = []
    const delivered = new Map<string, number[]>()
    const deliveries = new Map<string, number>()
    const deadline = Date.now() + 60_000
    let acked = 0
    const worker = async (w: number) => {
      const store = stores[w % stores.length]!
      const name = `worker-${w}`
      while (acked < total && Date.now() < deadline) {
        const got = await store.lease({ worker: name, max: 3, leaseMs: LEASE, maxAttempts: 3, now: T0 })
        if (got.length === 0) {
          await Bun.sleep(2)
          continue
        }
        for (const e of got) {
          const holder = inFlight.get(e.sessionId)
          if (holder) violations.push(`${e.sessionId}: ${e.id} to ${name} while ${holder} in flight`)
          inFlight.set(e.sessionId, `${e.id} (${name})`)
          delivered.set(e.sessionId, [...(delivered.get(e.sessionId) ?? []), (e.payload as { k: number }).k])
          deliveries.set(e.id, (deliveries.get(e.id) ?? 0) + 1)
        }
        await Bun.sleep(Math.random() * 3)
        for (const e of got) inFlight.delete(e.sessionId)
        const ids = await store.ack({ worker: name, ids: got.map((e) => e.id), now: T0 })
        expect(ids).toEqual(got.map((e) => e.id))
        acked += ids.length
      }
    }
    await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)))
    return { violations, delivered, deliveries }
  }

  test('10 workers on 2 instances over 100 sessions x 5 events: each event delivered once, in session order, never two of a session at once', async () => {
    const [a, b] = await instances(2)
    const SESSIONS = 100
    const PER = 5
    // Each session's events accepted in order, alternating instances; sessions accepted concurrently, while workers poll.
    const accepting = Promise.all(
      Array.from({ length: SESSIONS }, async (_, s) => {
        for (let k = 0; k < PER; k++) {
          const e = event(`race-${s}`, k === 0 ? 'created' : 'prompted', { payload: JSON.stringify({ k }) })
          expect((await (k % 2 ? b! : a!).accept(e)).status).toBe('accepted')
        }
      }),
    )
    const [, { violations, delivered, deliveries }] = await Promise.all([accepting, drain([a!, b!], SESSIONS * PER, 10)])
    expect(violations).toEqual([])
    expect(deliveries.size).toBe(SESSIONS * PER)
    expect([...deliveries.values()].every((n) => n === 1)).toBe(true)
    for (const [session, ks] of delivered) expect({ session, ks }).toEqual({ session, ks: [0, 1, 2, 3, 4] })
    expect((await a!.stats(T0)).counts).toMatchObject({ acked: SESSIONS * PER, queued: 0, leased: 0, parked: 0 })
  })

  test("one session's events accepted at the same moment on two instances are still delivered one at a time", async () => {
    const [a, b] = await instances(2)
    const SESSIONS = 200
    // Both events of a session race through two instances (their commit order is the store's to fix).
    const accepting = Promise.all(
      Array.from({ length: SESSIONS }, (_, s) =>
        Promise.all([0, 1].map((k) => (k ? b! : a!).accept(event(`both-${s}`, 'prompted', { payload: JSON.stringify({ k }) })))),
      ),
    )
    const [, { violations, deliveries }] = await Promise.all([accepting, drain([a!, b!], SESSIONS * 2, 10)])
    expect(violations).toEqual([])
    expect(deliveries.size).toBe(SESSIONS * 2)
    expect([...deliveries.values()].every((n) => n === 1)).toBe(true)
  })

  test('install locks taken through two instances for one org run one at a time', async () => {
    const [a, b] = await instances(2)
    const order: string[] = []
    const slow = (name: string) => async () => {
      order.push(`${name}:in`)
      await Bun.sleep(50)
      order.push(`${name}:out`)
      return name
    }
    const results = await Promise.all([a!.withInstallLock('org-1', slow('a')), b!.withInstallLock('org-1', slow('b'))])
    expect(results).toEqual(['a', 'b'])
    const first = order[0]!.split(':')[0]
    const second = first === 'a' ? 'b' : 'a'
    expect(order).toEqual([`${first}:in`, `${first}:out`, `${second}:in`, `${second}:out`])
    // Another org is not held up by a held lock.
    let release = () => {}
    const entered = new Promise<void>((inside) => {
      void a!.withInstallLock('org-1', () => {
        inside()
        return new Promise<void>((ok) => (release = ok))
      })
    })
    await entered
    expect(await b!.withInstallLock('org-2', async () => 'free')).toBe('free')
    release()
  })

  test("an accept on one instance wakes the other instance's change listeners", async () => {
    const [a, b] = await instances(2)
    let heard = 0
    const off = b!.onChange(() => heard++)
    await a!.accept(event('s1', 'created'))
    await until(() => heard > 0)
    const before = heard
    const [e] = await lease(b!, 'w1')
    await a!.ack({ worker: 'w1', ids: [e!.id], now: T0 })
    await until(() => heard > before)
    off()
  })
})
