/**
 * Killing an engine whose run died (kill -9, OOM): the engine leads its own process group, so it
 * outlives its run with parent 1, no stall or timeout watchdog, in a worktree the next run uses.
 * The run records the engine (pid, group, run tag, start time) with its lock (lock.ts); recovery
 * (reconcile.ts) and the next run (run.ts) call killOrphanEngine before another engine starts.
 * Linux (/proc); elsewhere the group is signalled without the start-time check.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { reapTagged, taggedProcesses } from './engines/reap.ts'
import type { EngineProcess, LockOwner } from './lock.ts'
import { signalGroup } from './signal.ts'

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22); null when gone or unreadable. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after "pid (comm) ": state is field 3, starttime field 22.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const t = Number(rest[19])
    return Number.isFinite(t) ? t : null
  } catch {
    return null
  }
}

/** Live (not zombie) members of process group `pgid`, read from /proc; empty off Linux. */
export function groupMembers(pgid: number): number[] {
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  const out: number[] = []
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (state !== 'Z' && Number(pgrp) === pgid) out.push(Number(name))
    } catch {} // gone meanwhile
  }
  return out
}

/** The recorded engine's processes still alive: its group (unless its pid now names another process) and its tagged strays. */
export function engineProcesses(engine: EngineProcess): { group: number[]; tagged: number[] } {
  const start = processStartTime(engine.pid)
  // The leader's pid now belongs to a process started later: the recorded group ended (a pid
  // that names a live group is never handed out again), and this group is someone else's.
  const reused = start !== null && engine.startTime !== undefined && start !== engine.startTime
  return { group: reused ? [] : groupMembers(engine.pgid), tagged: engine.tag ? taggedProcesses(engine.tag) : [] }
}

const sleepBuf = new Int32Array(new SharedArrayBuffer(4))

/**
 * SIGKILL what is left of the engine recorded by a dead owner (on this host), and wait up to
 * `waitMs` for it to be gone. Returns the pids it found alive (empty: nothing was running).
 */
export function killOrphanEngine(owner: LockOwner | null | undefined, waitMs = 5000): number[] {
  const engine = owner?.engine
  if (!engine || owner.host !== hostname()) return []
  const first = engineProcesses(engine)
  const found = [...new Set([...first.group, ...first.tagged])]
  const deadline = Date.now() + waitMs
  for (let left = first; left.group.length + left.tagged.length > 0 && Date.now() < deadline; left = engineProcesses(engine)) {
    if (left.group.length) signalGroup(engine.pgid, 'SIGKILL')
    if (left.tagged.length && engine.tag) reapTagged(engine.tag)
    Atomics.wait(sleepBuf, 0, 0, 20)
  }
  return found
}
