/**
 * File locks with an owner record (pid, host, heartbeat). Creation is atomic (O_EXCL). A lock is
 * stale when its owner is a dead pid on this host or its heartbeat is older than `staleMs`;
 * breaking a stale lock is itself serialized by a second O_EXCL file, so two processes that both
 * see a stale lock cannot both take it (invariant 5: one live owner per issue).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { pidAlive } from './proc.ts'

export interface LockOwner {
  pid: number
  host: string
  startedAt: string
  heartbeat: string
  /** Free-form: what the owner is doing (step, run number). */
  note?: string
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
    // A lock torn by a crash mid-write: its writer is gone, since writes are create-then-fill in one call.
    return { owner: null, stale: 'unreadable' }
  }
  if (owner.host === hostname() && !pidAlive(owner.pid)) return { owner, stale: 'dead_pid' }
  if (now - Date.parse(owner.heartbeat) > staleMs) return { owner, stale: 'old_heartbeat' }
  return { owner, stale: null }
}

function writeExclusive(path: string, body: string): boolean {
  let fd: number
  try {
    fd = openSync(path, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  try {
    writeSync(fd, body)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return true
}

export interface Lock {
  path: string
  owner: LockOwner
  /** Refresh the heartbeat (owner only). */
  beat(note?: string): void
  /** Remove the lock if it is still ours. */
  release(): void
}

/** Try once to take the lock at `path`; null when a live owner holds it. */
export function tryLock(path: string, opts: { staleMs: number; note?: string; pid?: number }): Lock | null {
  mkdirSync(dirname(path), { recursive: true })
  const now = new Date().toISOString()
  const owner: LockOwner = { pid: opts.pid ?? process.pid, host: hostname(), startedAt: now, heartbeat: now, note: opts.note }
  if (!writeExclusive(path, JSON.stringify(owner))) {
    const status = inspectLock(path, opts.staleMs)
    if (!status.stale && status.owner) return null
    if (!breakStale(path, opts.staleMs)) return null
    if (!writeExclusive(path, JSON.stringify(owner))) return null
  }
  return makeLock(path, owner)
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

function makeLock(path: string, owner: LockOwner): Lock {
  return {
    path,
    owner,
    beat(note) {
      const current = inspectLock(path, Number.POSITIVE_INFINITY)
      if (current.owner?.pid !== owner.pid || current.owner.host !== owner.host) return
      owner.heartbeat = new Date().toISOString()
      if (note !== undefined) owner.note = note
      const tmp = `${path}.${process.pid}.tmp`
      // A temp file left by a crash of this same pid is ours to replace.
      if (!writeExclusive(tmp, JSON.stringify(owner))) {
        unlinkSync(tmp)
        writeExclusive(tmp, JSON.stringify(owner))
      }
      renameSync(tmp, path)
    },
    release() {
      const current = inspectLock(path, Number.POSITIVE_INFINITY)
      if (current.owner && (current.owner.pid !== owner.pid || current.owner.host !== owner.host)) return
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
