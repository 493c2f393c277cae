/**
 * File locks with an owner record (pid, host, heartbeat). Creation is atomic (O_EXCL). A lock is
 * stale when its owner is a dead pid on this host or its heartbeat is older than `staleMs`;
 * breaking a stale lock is itself serialized by a second O_EXCL file, so two processes that both
 * see a stale lock cannot both take it (invariant "one-live-owner").
 */
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { FactoryError } from './errors.ts'
import { safeJoin } from './paths.ts'
import { pidAlive } from './signal.ts'
import { writeDurableSync } from './write-durable.ts'

export interface LockOwner {
  pid: number
  host: string
  startedAt: string
  heartbeat: string
  /** Free-form: what the owner is doing (step, run number). */
  note?: string
  /** The engine the owner runs, while it runs: whoever finds the owner dead kills it (orphans.ts). */
  engine?: EngineProcess
}

/** An engine process as recorded with its run's lock. */
export interface EngineProcess {
  pid: number
  /** Its process group (the engine leads its own group: pgid = pid). */
  pgid: number
  /** The run tag its descendants carry in their env (engines/reap.ts): catches those that left the group. */
  tag?: string
  /** The leader's start time (/proc/<pid>/stat field 22), so a reused pid is never taken for the engine. */
  startTime?: number
}

export interface LockStatus {
  owner: LockOwner | null
  /** Why the lock counts as abandoned (null = live or absent). */
  stale: null | 'dead_pid' | 'old_heartbeat' | 'unreadable'
}

/** Read a lock file's owner and whether it is stale. */
export function inspectLock(path: string, staleMs: number, now = Date.now()): LockStatus {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return { owner: null, stale: null }
  }
  let owner: LockOwner
  try {
    owner = JSON.parse(text) as LockOwner
    if (typeof owner.pid !== 'number') throw new Error('no pid')
  } catch {
    // Locks appear complete (written to a temp file, then linked): an unreadable one is damage, not a writer mid-way.
    return { owner: null, stale: 'unreadable' }
  }
  if (owner.host === hostname() && !pidAlive(owner.pid)) return { owner, stale: 'dead_pid' }
  const beat = Date.parse(owner.heartbeat)
  if (!Number.isFinite(beat)) return { owner, stale: 'unreadable' }
  if (now - beat > staleMs) return { owner, stale: 'old_heartbeat' }
  return { owner, stale: null }
}

let tmpSeq = 0

/**
 * Create `path` with `body` only if it does not exist, atomically AND complete: the body goes to
 * a private temp file first, then link(2) publishes it (EEXIST when someone else holds it). A
 * reader can never see an empty lock, so "unreadable" never means "being written".
 */
function writeExclusive(path: string, body: string): boolean {
  const tmp = `${path}.${process.pid}.${++tmpSeq}.new`
  // Every byte or nothing: a full disk throws here, with the temp file removed (write-durable.ts).
  writeDurableSync(tmp, body)
  try {
    linkSync(tmp, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    try {
      unlinkSync(tmp)
    } catch {}
  }
}

export interface Lock {
  path: string
  owner: LockOwner
  /** Refresh the heartbeat (owner only). */
  beat(note?: string): void
  /** Remove the lock if it is still ours. */
  release(): void
  /** Record the engine this owner runs (undefined: none any more) in the lock file (owner only). */
  recordEngine(engine: EngineProcess | undefined): void
  /** The dead owner whose stale lock this one replaced (its engine may still run: kill it first). */
  replaced?: LockOwner
}

/** Try once to take the lock at `path`; null when a live owner holds it. */
export function tryLock(path: string, opts: { staleMs: number; note?: string; pid?: number }): Lock | null {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const now = new Date().toISOString()
  const owner: LockOwner = { pid: opts.pid ?? process.pid, host: hostname(), startedAt: now, heartbeat: now, note: opts.note }
  let replaced: LockOwner | undefined
  if (!writeExclusive(path, JSON.stringify(owner))) {
    const status = inspectLock(path, opts.staleMs)
    if (!status.stale && status.owner) return null
    if (!breakStale(path, opts.staleMs)) return null
    if (!writeExclusive(path, JSON.stringify(owner))) return null
    replaced = status.owner ?? undefined
  }
  return { ...makeLock(path, owner), replaced }
}

function breakStale(path: string, staleMs: number): boolean {
  const breaker = `${path}.break`
  if (!writeExclusive(breaker, String(process.pid))) {
    // Another process is breaking it; a breaker left by a crash is itself cleared when old.
    const b = inspectBreaker(breaker)
    if (!b) return false
  }
  try {
    const status = inspectLock(path, staleMs)
    if (status.owner && !status.stale) return false
    // Gone already: nothing to break (and unlinking now could remove a lock just taken).
    if (!status.owner && !status.stale) return true
    try {
      unlinkSync(path)
    } catch {}
    return true
  } finally {
    try {
      unlinkSync(breaker)
    } catch {}
  }
}

function inspectBreaker(breaker: string): boolean {
  try {
    const pid = Number(readFileSync(breaker, 'utf8'))
    if (pid && pidAlive(pid)) return false
    unlinkSync(breaker)
    return writeExclusive(breaker, String(process.pid))
  } catch {
    return false
  }
}

/** Same owner: pid, host and the moment it took the lock (a re-taken lock is a new owner). */
function isOurs(current: LockOwner | null, owner: LockOwner): boolean {
  return !!current && current.pid === owner.pid && current.host === owner.host && current.startedAt === owner.startedAt
}

function makeLock(path: string, owner: LockOwner): Lock {
  const rewrite = (change: () => void) => {
    if (!isOurs(inspectLock(path, Number.POSITIVE_INFINITY).owner, owner)) return
    owner.heartbeat = new Date().toISOString()
    change()
    const tmp = `${path}.${process.pid}.beat`
    // A failed write (full disk) throws with the temp file removed: the lock keeps its last beat.
    writeDurableSync(tmp, JSON.stringify(owner))
    renameSync(tmp, path)
  }
  return {
    path,
    owner,
    beat(note) {
      rewrite(() => {
        if (note !== undefined) owner.note = note
      })
    },
    recordEngine(engine) {
      rewrite(() => {
        if (engine) owner.engine = engine
        else delete owner.engine
      })
    },
    release() {
      const current = inspectLock(path, Number.POSITIVE_INFINITY).owner
      if (current && !isOurs(current, owner)) return
      try {
        unlinkSync(path)
      } catch {}
    },
  }
}

const sleepBuf = new Int32Array(new SharedArrayBuffer(4))

/** Take the lock, waiting up to `waitMs` (synchronous: used for short critical sections like state.json). */
export function lockSync(path: string, opts: { staleMs: number; waitMs: number }): Lock | null {
  const deadline = Date.now() + opts.waitMs
  let delay = 2
  for (;;) {
    const lock = tryLock(path, { staleMs: opts.staleMs })
    if (lock) return lock
    if (Date.now() >= deadline) return null
    Atomics.wait(sleepBuf, 0, 0, delay)
    delay = Math.min(delay * 2, 50)
  }
}

/**
 * The lock note of a run stopping on the operator's signal. It outlives the process: a run
 * killed while stopping (second Ctrl-C, the driver's or systemd's SIGKILL) is resumed by the
 * next start as a stop, not counted as a crash (reconcile.ts).
 */
export const STOPPING_NOTE = 'stopping'

/** A lock whose heartbeat is older than this (on another host) is abandoned. */
export const LOCK_STALE_MS = 90_000
/** How often a live owner refreshes its heartbeat. */
export const HEARTBEAT_MS = 15_000

/** The heartbeat interval: HEARTBEAT_MS, or ROSE_HEARTBEAT_MS when set (tests watch it beat in seconds). */
export function heartbeatMs(env: NodeJS.ProcessEnv): number {
  const ms = Number(env.ROSE_HEARTBEAT_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : HEARTBEAT_MS
}

/** Path of an issue's ownership lock, proven to stay under `locksDir` (FACTORY_HOME/locks). */
export function issueLockPath(locksDir: string, agent: string, identifier: string): string {
  return `${safeJoin(locksDir, agent, identifier)}.lock`
}

/** The lock_held failure naming the live owner (the real steps and their dry runs say the same). */
export function lockHeld(identifier: string, owner: LockOwner | null | undefined): FactoryError {
  return new FactoryError(
    'lock_held',
    `${identifier} is being worked on by pid ${owner?.pid} on ${owner?.host} (since ${owner?.startedAt})`,
    {
      fix: 'wait for that run to finish; if that process is gone on another host, its lock expires after 90 s without heartbeat',
    },
  )
}

/**
 * Take an issue's ownership lock (invariant "one-live-owner") or fail with lock_held naming the
 * live owner. The heartbeat runs until stop().
 */
export function acquireIssueLock(path: string, identifier: string, note: string, heartbeatMs = HEARTBEAT_MS): Lock & { stop(): void } {
  const lock = tryLock(path, { staleMs: LOCK_STALE_MS, note })
  if (!lock) throw lockHeld(identifier, inspectLock(path, LOCK_STALE_MS).owner)
  // A beat that cannot be written (full disk) is skipped, not thrown out of the timer (that would kill the run).
  const timer = setInterval(() => {
    try {
      lock.beat()
    } catch {}
  }, heartbeatMs)
  timer.unref?.()
  return {
    ...lock,
    stop() {
      clearInterval(timer)
      lock.release()
    },
  }
}
