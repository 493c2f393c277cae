/**
 * The relay store for several relay instances on one PostgreSQL database (`relay --queue-url`),
 * through Bun's SQL client. Same tables and, where the dialects allow, the same queries as
 * store-sqlite.ts. Every change is one statement or one transaction at READ COMMITTED; an accept
 * resolves after its commit (synchronous_commit as configured, on by default). Wake-ups cross
 * instances with LISTEN/NOTIFY on one channel; the accepting instance wakes its own listeners
 * directly. Why the lease is safe with many instances is written above LEASE_SQL.
 */
import { SQL } from 'bun'
import { logger } from '../log.ts'
import { POSTGRES_MIGRATIONS } from './schema.ts'
import type { AcceptResult, IncomingEvent, Install, LeasedEvent, LeaseRequest, RelayNote, RelayStore, StoreStats } from './store.ts'
import { emptyCounts, toLeased, type EventRow } from './store-rows.ts'

/** The NOTIFY channel every instance listens on; the payload is the sender's instance id. */
export const RELAY_CHANNEL = 'relay_events'
/** pg_advisory_xact_lock key held while migrating ('relay' in ASCII; above the int4 range of the two-key locks). */
const MIGRATION_LOCK = 0x72656c6179
/** First key of the two-key advisory locks (second key: hashtext of the session or org id). */
const SESSION_LOCKS = 1
const INSTALL_LOCKS = 2
/** Deadlock and serialization failures: the transaction is retried (it changed nothing). */
const RETRYABLE = new Set(['40P01', '40001'])

/**
 * Why one session never has two events in flight and no event has two live leases, with many
 * instances at READ COMMITTED:
 * - An event is taken only through `FOR UPDATE SKIP LOCKED` plus `state = 'queued'`: a row another
 *   transaction is leasing is skipped, and one it already leased fails the state re-check
 *   PostgreSQL makes on the newest row version. So one lease per event.
 * - Only a session head is taken (`seq` = the least unacked seq). A transaction can see a later
 *   event as head only when its snapshot shows every earlier one acked, and acked is final (prune
 *   deletes only acked rows, requeue only un-parks). A concurrent transaction that sees the older
 *   head tries that head, not a later event, so two transactions racing an ack can never take two
 *   different events of one session: one takes the new head, the other skips it or sees it leased.
 * - That argument needs seq order = commit order within a session, which a sequence alone does
 *   not give (seq 10 can commit after seq 11). accept() therefore takes a per-session advisory
 *   xact lock before the row gets its seq, so a session's events commit in seq order. The extra
 *   "no leased event in the session" test below is the belt to those braces.
 * - Holds: a hold this transaction cannot see yet was committed after its snapshot by the lease
 *   of that session's head, so it finds that head locked or no longer queued and takes nothing of
 *   the session. A hold lapsed by the caller's `now` is taken over (holds are time-based: keep the
 *   instances' clocks in sync).
 * Expiry uses SKIP LOCKED too, so instances expiring the same leases never wait on each other; a
 * deadlock that remains possible (row locks on sessions) makes PostgreSQL abort one lease, which
 * changed nothing and is retried.
 */
const LEASE_SQL = `
  WITH picked AS (
    SELECT e.seq FROM events e
    WHERE e.state = 'queued'
      AND e.seq = (SELECT min(h.seq) FROM events h WHERE h.session_id = e.session_id AND h.state <> 'acked')
      AND NOT EXISTS (SELECT 1 FROM events l WHERE l.session_id = e.session_id AND l.state = 'leased')
      AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = e.session_id AND s.held_until >= $1 AND s.worker <> $2)
    ORDER BY e.seq LIMIT $3
    FOR UPDATE OF e SKIP LOCKED)
  UPDATE events e SET state = 'leased', worker = $2, lease_until = $4, attempts = e.attempts + 1
  FROM picked WHERE e.seq = picked.seq
  RETURNING e.seq, e.id, e.session_id, e.org_id, e.action, e.payload, e.lease_until, e.attempts, e.received_at`

/** Open (migrating under an advisory lock) the PostgreSQL store at `url`. */
export async function openPostgresStore(url: string): Promise<RelayStore> {
  const log = logger('relay')
  const sql = new SQL(url, { max: 10 })
  // Install locks wait on their own connections, so waiters can never starve the queries of `fn`.
  const lockSql = new SQL(url, { max: 4 })
  try {
    await migrate(sql)
  } catch (error) {
    await Promise.all([sql.close(), lockSql.close()])
    throw error
  }

  const instance = crypto.randomUUID()
  const listeners = new Set<() => void>()
  const changed = () => {
    for (const listener of listeners) listener()
  }
  // A reconnect of the LISTEN connection may have missed notifications: wake up then too.
  const subscription = await sql.listen(RELAY_CHANNEL, (payload) => payload !== instance && changed(), changed)
  const orgChains = new Map<string, Promise<unknown>>()
  let closed = false

  // One NOTIFY in flight per instance; changes meanwhile are coalesced into one more after it.
  // It need not be durable (a lost wake-up costs one long-poll period), so it skips the fsync.
  let notifying: Promise<void> | null = null
  let notifyAgain = false
  function wake(): void {
    changed()
    if (notifying) {
      notifyAgain = true
      return
    }
    notifying = (async () => {
      do {
        notifyAgain = false
        await sql.begin(async (tx) => {
          await tx`SET LOCAL synchronous_commit = off`
          await tx`SELECT pg_notify(${RELAY_CHANNEL}, ${instance})`
        })
      } while (notifyAgain && !closed)
    })()
      .catch((error) => log.warn(`relay store: NOTIFY failed (other instances wake at their next poll): ${(error as Error).message}`))
      .finally(() => (notifying = null))
  }

  async function retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (error) {
        if (attempt >= 5 || !RETRYABLE.has((error as { errno?: string }).errno ?? '')) throw error
      }
    }
  }

  const store: RelayStore = {
    kind: 'postgres',
    async accept(event: IncomingEvent): Promise<AcceptResult> {
      if (closed) throw new Error('relay store is closed')
      // The advisory lock (held to commit) is taken before nextval: a session's events commit in seq order.
      const inserted = await sql`
        INSERT INTO events (id, delivery_id, dedupe_key, session_id, org_id, action, payload, received_at)
        SELECT ${crypto.randomUUID()}, ${event.deliveryId}, ${event.dedupeKey}, ${event.sessionId}, ${event.orgId},
               ${event.action}, ${event.payload}, ${event.receivedAt}
        FROM (SELECT pg_advisory_xact_lock(${SESSION_LOCKS}, hashtext(${event.sessionId}))) AS session_order
        ON CONFLICT DO NOTHING RETURNING id`
      if (inserted.length > 0) {
        wake()
        return { status: 'accepted', id: inserted[0].id }
      }
      const [dup] = await sql`
        SELECT id, delivery_id FROM events WHERE delivery_id = ${event.deliveryId} OR dedupe_key = ${event.dedupeKey}
        ORDER BY (delivery_id = ${event.deliveryId}) DESC LIMIT 1`
      if (!dup) throw new Error(`event ${event.deliveryId} neither inserted nor found`)
      return { status: 'duplicate', by: dup.delivery_id === event.deliveryId ? 'delivery' : 'meaning', id: dup.id }
    },

    async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
      const { worker, max, leaseMs, maxAttempts, now } = request
      const until = now + leaseMs
      const rows = await retrying(() =>
        sql.begin(async (tx) => {
          await expireLeases(tx, now, maxAttempts)
          // A polling worker is alive: its session holds live on.
          await tx`UPDATE sessions SET held_until = ${until} WHERE worker = ${worker} AND held_until >= ${now}`
          const taken: (EventRow & { seq: string })[] = await tx.unsafe(LEASE_SQL, [now, worker, max, until])
          const sessions = [...new Set(taken.map((r) => r.session_id))].sort()
          if (sessions.length > 0)
            await tx`
              INSERT INTO sessions (session_id, worker, held_until)
              SELECT s, ${worker}, ${until} FROM unnest(${sql.array(sessions, 'TEXT')}::text[]) AS s
              ON CONFLICT (session_id) DO UPDATE SET worker = excluded.worker, held_until = excluded.held_until`
          return taken
        }),
      )
      return rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map(toLeased)
    },

    async heartbeat({ worker, ids, leaseMs, now }) {
      if (ids.length === 0) return []
      const until = now + leaseMs
      const rows: { id: string }[] = await sql`
        WITH extended AS (
          UPDATE events SET lease_until = ${until}
          WHERE id = ANY(${sql.array(ids, 'TEXT')}::text[]) AND worker = ${worker} AND state = 'leased'
          RETURNING id, session_id),
        held AS (
          UPDATE sessions s SET held_until = ${until} FROM extended x WHERE s.session_id = x.session_id AND s.worker = ${worker})
        SELECT id FROM extended`
      return inOrder(ids, rows)
    },

    async ack({ worker, ids, now }) {
      if (ids.length === 0) return []
      const rows: { id: string }[] = await sql`
        UPDATE events SET state = 'acked', acked_at = ${now}
        WHERE id = ANY(${sql.array(ids, 'TEXT')}::text[]) AND worker = ${worker} AND state = 'leased' RETURNING id`
      if (rows.length > 0) wake()
      return inOrder(ids, rows)
    },

    async requeue(id) {
      const rows = await sql`
        UPDATE events SET state = 'queued', attempts = 0, worker = NULL, lease_until = NULL WHERE id = ${id} AND state = 'parked' RETURNING id`
      if (rows.length > 0) wake()
      return rows.length > 0
    },

    async stats(now): Promise<StoreStats> {
      const counts = emptyCounts()
      for (const r of await sql`SELECT state, count(*) AS n FROM events GROUP BY state`)
        if (r.state in counts) counts[r.state as keyof typeof counts] = Number(r.n)
      const sessionsHeld: Record<string, number> = {}
      for (const r of await sql`SELECT worker, count(*) AS n FROM sessions WHERE held_until >= ${now} GROUP BY worker`)
        sessionsHeld[r.worker] = Number(r.n)
      const [oldest] = await sql`SELECT min(received_at) AS t FROM events WHERE state <> 'acked'`
      const parked = await sql`
        SELECT id, session_id, action, attempts, worker, received_at FROM events WHERE state = 'parked' ORDER BY seq LIMIT 100`
      const deadLetters = parked.map((r: Record<string, string | number | null>) => ({
        id: String(r.id),
        sessionId: String(r.session_id),
        action: String(r.action),
        attempts: Number(r.attempts),
        worker: r.worker === null ? null : String(r.worker),
        receivedAt: Number(r.received_at),
      }))
      const [expiries] = await sql`SELECT value FROM counters WHERE name = 'lease_expiries'`
      return {
        counts,
        sessionsHeld,
        oldestUnackedAt: oldest?.t == null ? null : Number(oldest.t),
        deadLetters,
        leaseExpiries: Number(expiries?.value ?? 0),
      }
    },

    async prune(before) {
      return sql.begin(async (tx) => {
        const deleted = await tx`DELETE FROM events WHERE state = 'acked' AND received_at < ${before}`
        await tx`DELETE FROM sessions WHERE held_until < ${before}`
        await tx`DELETE FROM notes WHERE id NOT IN (SELECT id FROM notes ORDER BY id DESC LIMIT 1000)`
        return deleted.count as number
      })
    },

    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    async getInstall(orgId) {
      const [row] = await sql`SELECT data FROM installs WHERE org_id = ${orgId}`
      return row ? (JSON.parse(row.data) as Install) : null
    },
    async putInstall(install) {
      await sql`
        INSERT INTO installs (org_id, data, updated_at) VALUES (${install.orgId}, ${JSON.stringify(install)}, ${install.updatedAt})
        ON CONFLICT (org_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`
    },
    async listInstalls() {
      const rows = await sql`SELECT data FROM installs ORDER BY org_id`
      return rows.map((r: { data: string }) => JSON.parse(r.data) as Install)
    },
    withInstallLock(orgId, fn) {
      // In this process, one caller per org at a time (so waiters hold no extra connections);
      // across instances, a session-level advisory lock on a reserved connection.
      const previous = orgChains.get(orgId) ?? Promise.resolve()
      const locked = async () => {
        const conn = await lockSql.reserve()
        try {
          await conn`SELECT pg_advisory_lock(${INSTALL_LOCKS}, hashtext(${orgId}))`
          try {
            return await fn()
          } finally {
            await conn`SELECT pg_advisory_unlock(${INSTALL_LOCKS}, hashtext(${orgId}))`
          }
        } finally {
          await conn.release()
        }
      }
      const run = previous.then(locked, locked)
      const tail = run.catch(() => undefined)
      orgChains.set(orgId, tail)
      void tail.then(() => {
        if (orgChains.get(orgId) === tail) orgChains.delete(orgId)
      })
      return run
    },

    async recordNote(note: RelayNote) {
      await sql`INSERT INTO notes (kind, org_id, detail, at) VALUES (${note.kind}, ${note.orgId}, ${note.detail}, ${note.at})`
    },
    async notes(limit) {
      const rows = await sql`SELECT kind, org_id, detail, at FROM notes ORDER BY id DESC LIMIT ${limit}`
      return rows.map((r: { kind: RelayNote['kind']; org_id: string | null; detail: string; at: string }) => ({
        kind: r.kind,
        orgId: r.org_id,
        detail: r.detail,
        at: Number(r.at),
      }))
    },

    async ping() {
      await sql`SELECT 1`
    },
    async close() {
      if (closed) return
      closed = true
      listeners.clear()
      await notifying
      await subscription.unlisten().catch(() => undefined)
      await Promise.all([sql.close({ timeout: 5 }), lockSql.close({ timeout: 5 })])
    },
  }
  return store
}

/** The ids of `rows`, in the order the caller asked for them. */
function inOrder(ids: string[], rows: { id: string }[]): string[] {
  const got = new Set(rows.map((r) => r.id))
  return ids.filter((id) => got.has(id))
}

/** Apply the missing migrations; instances starting together take turns on the advisory lock. */
async function migrate(sql: SQL): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`
    await tx`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`
    const [row] = await tx`SELECT version FROM schema_version`
    const current = row ? Number(row.version) : 0
    if (current > POSTGRES_MIGRATIONS.length)
      throw new Error(
        `relay store schema version ${current} is newer than this relay (${POSTGRES_MIGRATIONS.length}): upgrade rose-factory`,
      )
    for (let v = current; v < POSTGRES_MIGRATIONS.length; v++) await tx.unsafe(POSTGRES_MIGRATIONS[v]!)
    if (!row) await tx`INSERT INTO schema_version (version) VALUES (${POSTGRES_MIGRATIONS.length})`
    else await tx`UPDATE schema_version SET version = ${POSTGRES_MIGRATIONS.length}`
  })
}

/** Redeliver (back to queued) or park every lease that ran out; counts them. */
async function expireLeases(tx: SQL, now: number, maxAttempts: number): Promise<void> {
  const expired = await tx`
    UPDATE events e SET state = CASE WHEN e.attempts >= ${maxAttempts} THEN 'parked' ELSE 'queued' END, lease_until = NULL
    FROM (SELECT seq FROM events WHERE state = 'leased' AND lease_until < ${now} ORDER BY seq FOR UPDATE SKIP LOCKED) x
    WHERE e.seq = x.seq`
  if (expired.count > 0)
    await tx`
      INSERT INTO counters (name, value) VALUES ('lease_expiries', ${expired.count})
      ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value`
}
