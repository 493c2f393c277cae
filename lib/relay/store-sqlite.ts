/**
 * The embedded relay store (`relay --local-queue`): one process, one SQLite file in WAL mode with
 * synchronous=FULL, so a resolved accept() survives kill -9 and power loss. Every multi-statement
 * change runs in a `BEGIN IMMEDIATE` transaction. Concurrent accepts are committed together (one
 * transaction and one fsync per batch, each caller answered after the commit), which is what lets
 * one process take thousands of webhooks a second. Wake-ups are in-process.
 */
import { Database } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { SQLITE_MIGRATIONS } from './schema.ts'
import type { AcceptResult, IncomingEvent, Install, LeasedEvent, LeaseRequest, RelayNote, RelayStore, StoreStats } from './store.ts'
import { emptyCounts, toLeased, type EventRow } from './store-rows.ts'

interface Pending {
  event: IncomingEvent
  resolve: (result: AcceptResult) => void
  reject: (error: unknown) => void
}

/** Open (creating and migrating) the SQLite store at `path`. */
export function openSqliteStore(path: string): RelayStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { create: true, strict: true })
  db.run('PRAGMA journal_mode = WAL')
  db.run('PRAGMA synchronous = FULL')
  db.run('PRAGMA busy_timeout = 5000')
  migrate(db)

  const listeners = new Set<() => void>()
  const changed = () => {
    for (const listener of listeners) listener()
  }
  const locks = new Map<string, Promise<unknown>>()
  let pending: Pending[] = []
  let flushScheduled = false
  let closed = false

  const insert = db.prepare(
    `INSERT INTO events (id, delivery_id, dedupe_key, session_id, org_id, action, payload, received_at)
     VALUES ($id, $deliveryId, $dedupeKey, $sessionId, $orgId, $action, $payload, $receivedAt)
     ON CONFLICT DO NOTHING RETURNING id`,
  )
  const findDuplicate = db.prepare<{ id: string; delivery_id: string }, [string, string]>(
    'SELECT id, delivery_id FROM events WHERE delivery_id = ? OR dedupe_key = ? LIMIT 1',
  )

  function flush(): void {
    flushScheduled = false
    const batch = pending
    pending = []
    if (batch.length === 0) return
    const results: AcceptResult[] = []
    try {
      db.transaction(() => {
        for (const { event } of batch) {
          const row = insert.get({ ...event, id: crypto.randomUUID() }) as { id: string } | null
          if (row) results.push({ status: 'accepted', id: row.id })
          else {
            const dup = findDuplicate.get(event.deliveryId, event.dedupeKey)
            if (!dup) throw new Error(`event ${event.deliveryId} neither inserted nor found`)
            results.push({ status: 'duplicate', by: dup.delivery_id === event.deliveryId ? 'delivery' : 'meaning', id: dup.id })
          }
        }
      }).immediate()
    } catch (error) {
      for (const p of batch) p.reject(error)
      return
    }
    batch.forEach((p, i) => p.resolve(results[i]!))
    if (results.some((r) => r.status === 'accepted')) changed()
  }

  const store: RelayStore = {
    kind: 'sqlite',
    accept(event) {
      if (closed) return Promise.reject(new Error('relay store is closed'))
      return new Promise<AcceptResult>((resolve, reject) => {
        pending.push({ event, resolve, reject })
        if (!flushScheduled) {
          flushScheduled = true
          setImmediate(flush)
        }
      })
    },

    async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
      const { worker, max, leaseMs, maxAttempts, now } = request
      const until = now + leaseMs
      return db
        .transaction(() => {
          expireLeases(db, now, maxAttempts)
          // A polling worker is alive: its session holds live on.
          db.query('UPDATE sessions SET held_until = ? WHERE worker = ? AND held_until >= ?').run(until, worker, now)
          const ids = db
            .query<{ id: string }, [number, string, number]>(
              `SELECT e.id FROM events e
               WHERE e.state = 'queued'
                 AND e.seq = (SELECT min(h.seq) FROM events h WHERE h.session_id = e.session_id AND h.state <> 'acked')
                 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = e.session_id AND s.held_until >= ? AND s.worker <> ?)
               ORDER BY e.seq LIMIT ?`,
            )
            .all(now, worker, max)
            .map((r) => r.id)
          const leased: LeasedEvent[] = []
          const take = db.query<EventRow, [string, number, string]>(
            `UPDATE events SET state = 'leased', worker = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?
             RETURNING id, session_id, org_id, action, payload, lease_until, attempts, received_at`,
          )
          const hold = db.query(
            `INSERT INTO sessions (session_id, worker, held_until) VALUES (?, ?, ?)
             ON CONFLICT (session_id) DO UPDATE SET worker = excluded.worker, held_until = excluded.held_until`,
          )
          for (const id of ids) {
            const row = take.get(worker, until, id)
            if (!row) continue
            hold.run(row.session_id, worker, until)
            leased.push(toLeased(row))
          }
          return leased
        })
        .immediate()
    },

    async heartbeat({ worker, ids, leaseMs, now }) {
      if (ids.length === 0) return []
      const until = now + leaseMs
      return db
        .transaction(() => {
          const extended: string[] = []
          const extend = db.query<{ id: string; session_id: string }, [number, string, string]>(
            `UPDATE events SET lease_until = ? WHERE id = ? AND worker = ? AND state = 'leased' RETURNING id, session_id`,
          )
          const hold = db.query('UPDATE sessions SET held_until = ? WHERE session_id = ? AND worker = ?')
          for (const id of ids) {
            const row = extend.get(until, id, worker)
            if (!row) continue
            hold.run(until, row.session_id, worker)
            extended.push(row.id)
          }
          return extended
        })
        .immediate()
    },

    async ack({ worker, ids, now }) {
      if (ids.length === 0) return []
      const acked = db
        .transaction(() => {
          const mark = db.query<{ id: string }, [number, string, string]>(
            `UPDATE events SET state = 'acked', acked_at = ? WHERE id = ? AND worker = ? AND state = 'leased' RETURNING id`,
          )
          return ids.map((id) => mark.get(now, id, worker)?.id).filter((id): id is string => id !== undefined)
        })
        .immediate()
      if (acked.length > 0) changed()
      return acked
    },

    async requeue(id) {
      const row = db
        .query<{ id: string }, [string]>(
          `UPDATE events SET state = 'queued', attempts = 0, worker = NULL, lease_until = NULL WHERE id = ? AND state = 'parked' RETURNING id`,
        )
        .get(id)
      if (row) changed()
      return row !== null
    },

    async stats(now): Promise<StoreStats> {
      const counts = emptyCounts()
      for (const r of db.query<{ state: string; n: number }, []>('SELECT state, count(*) AS n FROM events GROUP BY state').all())
        if (r.state in counts) counts[r.state as keyof typeof counts] = r.n
      const sessionsHeld: Record<string, number> = {}
      for (const r of db
        .query<{ worker: string; n: number }, [number]>('SELECT worker, count(*) AS n FROM sessions WHERE held_until >= ? GROUP BY worker')
        .all(now))
        sessionsHeld[r.worker] = r.n
      const oldest = db.query<{ t: number | null }, []>(`SELECT min(received_at) AS t FROM events WHERE state <> 'acked'`).get()
      const deadLetters = db
        .query<{ id: string; session_id: string; action: string; attempts: number; worker: string | null; received_at: number }, []>(
          `SELECT id, session_id, action, attempts, worker, received_at FROM events WHERE state = 'parked' ORDER BY seq LIMIT 100`,
        )
        .all()
        .map((r) => ({
          id: r.id,
          sessionId: r.session_id,
          action: r.action,
          attempts: r.attempts,
          worker: r.worker,
          receivedAt: r.received_at,
        }))
      const expiries = db.query<{ value: number }, []>(`SELECT value FROM counters WHERE name = 'lease_expiries'`).get()
      return { counts, sessionsHeld, oldestUnackedAt: oldest?.t ?? null, deadLetters, leaseExpiries: expiries?.value ?? 0 }
    },

    async prune(before) {
      return db.transaction(() => {
        const n = db.query(`DELETE FROM events WHERE state = 'acked' AND received_at < ?`).run(before).changes
        db.query('DELETE FROM sessions WHERE held_until < ?').run(before)
        db.query('DELETE FROM notes WHERE id NOT IN (SELECT id FROM notes ORDER BY id DESC LIMIT 1000)').run()
        return n
      })()
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    async getInstall(orgId) {
      const row = db.query<{ data: string }, [string]>('SELECT data FROM installs WHERE org_id = ?').get(orgId)
      return row ? (JSON.parse(row.data) as Install) : null
    },
    async putInstall(install) {
      db.query(
        `INSERT INTO installs (org_id, data, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (org_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
      ).run(install.orgId, JSON.stringify(install), install.updatedAt)
    },
    async listInstalls() {
      return db
        .query<{ data: string }, []>('SELECT data FROM installs ORDER BY org_id')
        .all()
        .map((r) => JSON.parse(r.data) as Install)
    },
    withInstallLock(orgId, fn) {
      // One process owns a --local-queue file, so a per-org promise chain serializes refreshes;
      // holding a SQLite write transaction across Linear's reply would stall every webhook.
      const previous = locks.get(orgId) ?? Promise.resolve()
      const run = previous.then(fn, fn)
      const tail = run.catch(() => undefined)
      locks.set(orgId, tail)
      void tail.then(() => {
        if (locks.get(orgId) === tail) locks.delete(orgId)
      })
      return run
    },

    async recordNote(note: RelayNote) {
      db.query('INSERT INTO notes (kind, org_id, detail, at) VALUES (?, ?, ?, ?)').run(note.kind, note.orgId, note.detail, note.at)
    },
    async notes(limit) {
      return db
        .query<{ kind: RelayNote['kind']; org_id: string | null; detail: string; at: number }, [number]>(
          'SELECT kind, org_id, detail, at FROM notes ORDER BY id DESC LIMIT ?',
        )
        .all(limit)
        .map((r) => ({ kind: r.kind, orgId: r.org_id, detail: r.detail, at: r.at }))
    },

    async ping() {
      db.query('SELECT 1').get()
    },
    async close() {
      if (closed) return
      flush()
      closed = true
      listeners.clear()
      db.close()
    },
  }
  return store
}

function migrate(db: Database): void {
  db.run('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)')
  db.transaction(() => {
    const row = db.query<{ version: number }, []>('SELECT version FROM schema_version').get()
    const current = row?.version ?? 0
    if (current > SQLITE_MIGRATIONS.length)
      throw new Error(`relay store schema version ${current} is newer than this relay (${SQLITE_MIGRATIONS.length}): upgrade rose-factory`)
    for (let v = current; v < SQLITE_MIGRATIONS.length; v++) db.run(SQLITE_MIGRATIONS[v]!)
    if (!row) db.query('INSERT INTO schema_version (version) VALUES (?)').run(SQLITE_MIGRATIONS.length)
    else db.query('UPDATE schema_version SET version = ?').run(SQLITE_MIGRATIONS.length)
  }).immediate()
}

/** Redeliver (back to queued) or park every lease that ran out; counts them. */
function expireLeases(db: Database, now: number, maxAttempts: number): void {
  const expired = db
    .query(
      `UPDATE events SET state = CASE WHEN attempts >= ? THEN 'parked' ELSE 'queued' END, lease_until = NULL
       WHERE state = 'leased' AND lease_until < ?`,
    )
    .run(maxAttempts, now).changes
  if (expired > 0)
    db.query(
      `INSERT INTO counters (name, value) VALUES ('lease_expiries', ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`,
    ).run(expired)
}
