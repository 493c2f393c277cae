/**
 * Killing an engine whose run died (kill -9, OOM): the engine leads its own process group, so it
 * outlives its run with parent 1, no stall or timeout watchdog, in a worktree the next run uses.
 * The run records the engine (pid, group, run tag, start time) with its lock (lock.ts); recovery
 * (reconcile.ts) and the next run (run.ts) call killOrphanEngine before another engine starts.
 * The driver also watches the run children it spawned (reapEngineOfDeadRun): a child gone with its
 * engine still recorded has that engine killed at once, not at the next tick.
 * Linux (/proc); elsewhere the group is signalled without the start-time check.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { reapTagged, taggedProcesses } from './engines/reap.ts'
import { type EngineProcess, inspectLock, LOCK_STALE_MS, type LockOwner } from './lock.ts'
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

/** Wall-clock ms at which a process started, from its recorded start time (clock ticks since boot); undefined off Linux. */
export function startedAtMs(startTime: number | undefined): number | undefined {
  if (startTime === undefined) return undefined
  try {
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1])
    // USER_HZ is 100 on every Linux the factory runs on (the kernel ABI fixes it for /proc).
    return Number.isFinite(btime) && btime > 0 ? btime * 1000 + startTime * 10 : undefined
  } catch {
    return undefined
  }
}

/**
 * The driver's watchdog over a run child it spawned, called when the child has exited. A child
 * that ended normally released its lock (and cleared its engine record first); one killed by a
 * signal (kill -9, OOM) or that exited past its cleanup leaves its lock naming it, with the
 * engine it ran: that engine lost its stall and timeout watchdog with the child, so it is killed
 * now (same checks as recovery: this host, the leader's start time), and the next tick's
 * recovery requeues the issue as for any dead run. Anything of it that survives the kill is
 * killed again at the agent's hard timeout from the engine's recorded start (sooner if overdue).
 * Returns the pids found alive.
 */
export function reapEngineOfDeadRun(
  lockPath: string,
  childPid: number | undefined,
  exitCode: number | null,
  identifier: string,
  /** The agent's limits.timeout_minutes: the hard timeout, counted from the engine's recorded start. */
  timeoutMinutes: number,
  log: { warn(msg: string): void; error(msg: string): void },
  now: () => number = Date.now,
): number[] {
  const { owner, stale } = inspectLock(lockPath, LOCK_STALE_MS)
  // Not our child's lock any more (released, or a newer run holds it), or no engine recorded.
  if (!owner?.engine || childPid === undefined || owner.pid !== childPid || stale !== 'dead_pid') return []
  const engine = owner.engine
  const how = exitCode === null ? 'killed by a signal' : `exit ${exitCode}`
  const found = killOrphanEngine(owner, 2000)
  if (found.length)
    log.warn(
      `${identifier}: its run (pid ${childPid}) died (${how}) with its engine running; killed the engine at once: ${found.join(' ')}`,
    )
  const left = engineProcesses(engine)
  if (left.group.length + left.tagged.length === 0) return found
  const deadline = (startedAtMs(engine.startTime) ?? now()) + timeoutMinutes * 60_000
  const timer = setTimeout(
    () => {
      const again = killOrphanEngine(owner, 2000)
      const still = engineProcesses(engine)
      const alive = [...still.group, ...still.tagged]
      log.error(
        `${identifier}: the engine of its dead run reached its hard timeout (${timeoutMinutes} min); killed ${again.join(' ') || 'nothing'}${alive.length ? `; still alive: ${alive.join(' ')}` : ''}`,
      )
    },
    Math.max(0, Math.min(deadline - now(), 2 ** 31 - 1)),
  )
  timer.unref?.()
  log.warn(
    `${identifier}: part of the engine of its dead run survived the kill (${[...left.group, ...left.tagged].join(' ')}); killed again at its hard timeout`,
  )
  return found
}
