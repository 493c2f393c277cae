/**
 * One driver per agent per FACTORY_HOME: `start` holds `locks/driver-<agent>.lock` (pid, host,
 * heartbeat, as lib/lock.ts) for every agent it runs, so a second `start` on the same home is
 * refused with the first one's pid unless their agent sets are disjoint. A lock whose owner died
 * on this host, or whose heartbeat stopped on another host, is taken over.
 */
import { FactoryError } from './errors.ts'
import { HEARTBEAT_MS, inspectLock, type Lock, LOCK_STALE_MS, type LockOwner, tryLock } from './lock.ts'
import { ensureHome, safeJoin } from './paths.ts'

/** The driver lock of `agent` under `locksDir` ($FACTORY_HOME/locks). */
export function driverLockPath(locksDir: string, agent: string): string {
  return safeJoin(locksDir, `driver-${agent}.lock`)
}

/** The refusal naming the live driver and how to stop it. */
function driverRunning(agent: string, home: string, owner: LockOwner | null): FactoryError {
  const who = owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.startedAt}` : 'a process whose lock cannot be read'
  return new FactoryError('lock_held', `another start (${who}) already runs agent ${agent} on FACTORY_HOME ${home}`, {
    fix: owner
      ? `stop it first (kill -TERM ${owner.pid}, or Ctrl-C in its terminal), or start this one with other agents (--agent NAME)`
      : `remove ${driverLockPath(`${home}/locks`, agent)} if no start runs`,
    details: { pid: owner?.pid },
  })
}

/**
 * Take the driver lock of every agent in `agents` (all or none: on a refusal the ones taken are
 * released) and keep their heartbeat until release(). Throws lock_held naming the live driver.
 */
export function acquireDriverLocks(home: string, agents: readonly string[], heartbeatMs = HEARTBEAT_MS): { release(): void } {
  const locksDir = safeJoin(ensureHome(home), 'locks')
  const taken: Lock[] = []
  for (const agent of agents) {
    const path = driverLockPath(locksDir, agent)
    const lock = tryLock(path, { staleMs: LOCK_STALE_MS, note: `start: ${agents.join(', ')}` })
    if (!lock) {
      for (const l of taken) l.release()
      throw driverRunning(agent, home, inspectLock(path, LOCK_STALE_MS).owner)
    }
    taken.push(lock)
  }
  // A beat that cannot be written (full disk) is skipped: the lock stays ours while this pid lives.
  const timer = setInterval(() => {
    for (const l of taken) {
      try {
        l.beat()
      } catch {}
    }
  }, heartbeatMs)
  timer.unref?.()
  return {
    release() {
      clearInterval(timer)
      for (const l of taken) l.release()
    },
  }
}
