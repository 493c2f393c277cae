/** Row shapes and conversions shared by the SQLite and PostgreSQL stores. */
import type { EventCounts, LeasedEvent } from './store.ts'

/** An events row as both stores select it (BIGINT columns may come back as strings or bigints). */
export interface EventRow {
  id: string
  session_id: string
  org_id: string
  action: string
  payload: string
  lease_until: number | string | bigint
  attempts: number | string
  received_at: number | string | bigint
}

/** Every event state at zero. */
export function emptyCounts(): EventCounts {
  return { queued: 0, leased: 0, acked: 0, parked: 0 }
}

/** A stored payload back as JSON (stored as received; an unparsable one is handed over as text). */
export function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** An events row as a worker receives it. */
export function toLeased(row: EventRow): LeasedEvent {
  return {
    id: row.id,
    sessionId: row.session_id,
    orgId: row.org_id,
    action: row.action,
    payload: parsePayload(row.payload),
    leaseUntil: Number(row.lease_until),
    attempts: Number(row.attempts),
    receivedAt: Number(row.received_at),
  }
}
