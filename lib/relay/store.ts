/**
 * The relay's queue store: one small interface, two implementations (store-sqlite.ts for the
 * embedded single-process relay, store-postgres.ts for several instances). Invariants every
 * implementation keeps (test/relay-store.test.ts runs the same suite on both):
 * - accept is durable when it resolves, and dedupes on the delivery id AND the meaning key
 *   (`created:<session>`, `prompted:<activity>`); a duplicate is never enqueued again.
 * - per-session order: only a session's oldest unacked event (queued, leased or parked) can be
 *   leased, so one event per session is in flight and a `prompted` never overtakes its `created`.
 * - session affinity: a worker that leased a session's event holds the session until its hold
 *   (extended by lease and heartbeat) lapses; nobody else leases that session's events meanwhile.
 * - one live lease per event: an expired lease is redelivered with attempts + 1; after
 *   `maxAttempts` deliveries the event is parked (a dead letter) until an admin requeues it.
 * - ack and heartbeat only count for the worker that holds the live lease.
 */

/** An event as the webhook intake hands it over (already verified and parsed). */
export interface IncomingEvent {
  /** Linear-Delivery header. */
  deliveryId: string
  /** Dedupe by meaning: `created:<agentSession.id>`, `prompted:<agentActivity.id>`. */
  dedupeKey: string
  sessionId: string
  orgId: string
  action: string
  /** The webhook's raw JSON body, stored as received. */
  payload: string
  receivedAt: number
}

export type AcceptResult = { status: 'accepted'; id: string } | { status: 'duplicate'; by: 'delivery' | 'meaning'; id: string }

/** One event in a worker's hands. */
export interface LeasedEvent {
  id: string
  sessionId: string
  orgId: string
  action: string
  payload: unknown
  /** ms since epoch. */
  leaseUntil: number
  /** Deliveries so far, this one included (1 on the first). */
  attempts: number
  receivedAt: number
}

export interface LeaseRequest {
  worker: string
  max: number
  leaseMs: number
  maxAttempts: number
  now: number
}

export interface EventCounts {
  queued: number
  leased: number
  acked: number
  parked: number
}

export interface DeadLetter {
  id: string
  sessionId: string
  action: string
  attempts: number
  worker: string | null
  receivedAt: number
}

export interface StoreStats {
  counts: EventCounts
  /** Sessions whose hold is live now, by worker. */
  sessionsHeld: Record<string, number>
  /** receivedAt of the oldest event not acked yet (queued, leased or parked), or null. */
  oldestUnackedAt: number | null
  deadLetters: DeadLetter[]
  /** Leases that ran out (each a redelivery or a parking), since the store was created. */
  leaseExpiries: number
}

/** A Linear app install in one workspace; token fields are sealed (seal.ts), never plain. */
export interface Install {
  orgId: string
  orgName: string
  /** The app user's id in this workspace (viewer { id } read with its token). */
  appUserId: string
  kind: 'oauth' | 'client_credentials'
  accessTokenSealed: string
  refreshTokenSealed: string | null
  /** ms since epoch. */
  expiresAt: number
  scope: string
  updatedAt: number
  /** Set when Linear told us the app lost access (OAuth revoke, PermissionChange). */
  revokedAt: number | null
}

/** Something an operator must see in /status: a revoke, a first thought that could not be posted. */
export interface RelayNote {
  kind: 'permission_change' | 'oauth_revoked' | 'thought_failed' | 'refresh_failed'
  orgId: string | null
  detail: string
  at: number
}

export interface RelayStore {
  readonly kind: 'sqlite' | 'postgres'
  /** Durably record an event unless its delivery id or meaning was seen (kept >= 7 days). */
  accept(event: IncomingEvent): Promise<AcceptResult>
  /** Lease up to `max` events for `worker` (expired leases redelivered or parked first). */
  lease(request: LeaseRequest): Promise<LeasedEvent[]>
  /** Extend the worker's live leases on `ids` (and its session holds); returns the ids extended. */
  heartbeat(input: { worker: string; ids: string[]; leaseMs: number; now: number }): Promise<string[]>
  /** Mark the worker's leased `ids` acked; returns the ids acked (others: not its lease any more). */
  ack(input: { worker: string; ids: string[]; now: number }): Promise<string[]>
  /** Put a parked event back in the queue with its attempts reset; false when it is not parked. */
  requeue(id: string): Promise<boolean>
  stats(now: number): Promise<StoreStats>
  /** Forget acked events (and so their dedupe keys) received before `before`; returns how many. */
  prune(before: number): Promise<number>
  /** Call `listener` when events may have become leasable (any instance); returns the unsubscribe. */
  onChange(listener: () => void): () => void
  getInstall(orgId: string): Promise<Install | null>
  putInstall(install: Install): Promise<void>
  listInstalls(): Promise<Install[]>
  /**
   * Run `fn` holding the install's refresh lock, serialized across every process sharing the
   * store (PostgreSQL: an advisory lock; SQLite: one process, an in-process mutex). `fn` re-reads
   * the install itself after taking the lock.
   */
  withInstallLock<T>(orgId: string, fn: () => Promise<T>): Promise<T>
  recordNote(note: RelayNote): Promise<void>
  /** Newest first. */
  notes(limit: number): Promise<RelayNote[]>
  /** Throws when the store cannot be reached (healthz). */
  ping(): Promise<void>
  close(): Promise<void>
}

/** How long dedupe keys (acked events) are kept: Linear's last retry comes ~6 h later. */
export const DEDUPE_KEEP_MS = 7 * 24 * 3600 * 1000
