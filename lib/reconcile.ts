/**
 * What the driver does every tick besides dispatching: release issues that are no longer the
 * agent's (a running engine stops within seconds: the run watches for it), resume runs whose
 * owner died (once, then escalate: invariant "one-live-owner"), and remove worktrees of closed
 * issues after a grace period. planX functions decide (pure); the rest carries them out, every
 * phase change as an event through updateRecords.
 */
import { rmSync } from 'node:fs'
import { basename, join } from 'node:path'
import { pruneLogs } from './log-retention.ts'
import { teardownRuntime } from './runtime/index.ts'
import { sanitizeKey } from './paths.ts'
import type { AgentContext } from './context.ts'
import { asFactoryError } from './errors.ts'
import { inspectLock, LOCK_STALE_MS, type LockStatus, STOPPING_NOTE } from './lock.ts'
import { killOrphanEngine } from './orphans.ts'
import { inPhase, isActive, isInFlight } from './phases.ts'
import { type IssueRecord, pruneRecords, readState, updateRecord, updateRecords } from './state.ts'
import { lockPathFor } from './steps/claim.ts'
import type { WatchedIssue } from './tracker/types.ts'
import { isClosed, isOurs } from './workflow.ts'

export type ReconcilePlan = { action: 'release'; reason: string; closed: boolean } | { action: 'none' }

/**
 * A queued or running issue that is gone, closed, or no longer the agent's is released. A released
 * issue whose worktree is kept is watched (isWatched) until it closes or disappears: then it is
 * marked closed, and cleanupClosed removes its worktree after the grace like any other.
 */
export function planReconcile(record: IssueRecord, current: WatchedIssue | undefined, viewerId: string): ReconcilePlan {
  if (isWatchedRelease(record)) {
    if (!current) return { action: 'release', reason: 'the issue is gone (deleted or no longer visible)', closed: true }
    return isClosed(current) ? { action: 'release', reason: `moved to ${current.state.name}`, closed: true } : { action: 'none' }
  }
  if (!isActive(record)) return { action: 'none' }
  if (!current) return { action: 'release', reason: 'the issue is gone (deleted or no longer visible)', closed: false }
  if (isClosed(current)) return { action: 'release', reason: `moved to ${current.state.name}`, closed: true }
  if (!isOurs(current, viewerId)) return { action: 'release', reason: 'no longer assigned or delegated to the agent', closed: false }
  return { action: 'none' }
}

/** Released, its worktree kept, not seen closed yet: nothing else would notice it close (it is no longer polled). */
function isWatchedRelease(r: IssueRecord): boolean {
  return inPhase(r, 'released') && !!r.worktree && !r.closedAt
}

/** The records reconciliation checks every tick: queued or running ones, and released ones waiting to close. */
export function isWatched(r: IssueRecord): boolean {
  return isActive(r) || isWatchedRelease(r)
}

export type RecoveryPlan = { action: 'requeue' } | { action: 'escalate' } | { action: 'none' }

/** A run in flight whose lock has no live owner (crash, kill -9, reboot) is resumed once, then escalated. */
export function planRecovery(record: IssueRecord, lock: LockStatus, runningHere: boolean): RecoveryPlan {
  if (!isInFlight(record) || runningHere) return { action: 'none' }
  if (lock.owner && !lock.stale) return { action: 'none' }
  return (record.recoveries ?? 0) < 1 ? { action: 'requeue' } : { action: 'escalate' }
}

/** Closed issues whose worktree is due for removal (`graceMs` after they were first seen closed). */
export function dueForCleanup(records: IssueRecord[], graceMs: number, now: Date): IssueRecord[] {
  return records.filter(
    (r) => r.closedAt && r.worktree && !r.worktreeRemovedAt && now.getTime() - Date.parse(r.closedAt) >= graceMs && !isInFlight(r),
  )
}

/**
 * Records to forget: issues closed for longer than the grace period, settled (no run queued or
 * under way), their worktree gone, and still closed as last polled. A pruned issue that is
 * reopened later is a new issue to the factory (its comment ids stay unique: comments.ts).
 */
export function dueForPrune(records: IssueRecord[], graceMs: number, now: Date): IssueRecord[] {
  return records.filter(
    (r) =>
      r.closedAt &&
      now.getTime() - Date.parse(r.closedAt) >= graceMs &&
      !isActive(r) &&
      (!r.worktree || !!r.worktreeRemovedAt) &&
      isClosed(r.snapshot),
  )
}

/** Release watched issues that are gone, closed or reassigned; returns the identifiers released. */
export function reconcile(ctx: AgentContext, viewerId: string, watch: string[], watched: WatchedIssue[]): string[] {
  if (ctx.dryRun || watch.length === 0) return []
  const byId = new Map(watched.map((w) => [w.id, w]))
  const wasReleased = new Set<string>()
  const applied = updateRecords(
    ctx.paths.state,
    ctx.agent.name,
    (a) =>
      watch.flatMap((id) => {
        const r = a.issues[id]
        const plan = r ? planReconcile(r, byId.get(id), viewerId) : { action: 'none' as const }
        if (r && isWatchedRelease(r)) wasReleased.add(id)
        const state = byId.get(id)?.state
        return plan.action === 'release'
          ? [{ issueId: id, event: { type: 'released' as const, reason: plan.reason, closed: plan.closed, state } }]
          : []
      }),
    ctx.now(),
  )
  const released = applied.filter((x) => !x.refused && x.record && !wasReleased.has(x.issueId))
  for (const x of released)
    ctx.log.warn(`${x.record!.identifier}: released (${x.record!.releasedReason}); a running engine stops, the worktree is kept`)
  for (const x of applied.filter((y) => !y.refused && y.record && wasReleased.has(y.issueId)))
    ctx.log.info(`${x.record!.identifier}: released earlier, now closed; its worktree is removed after the cleanup grace`)
  return released.map((x) => x.record!.identifier)
}

/** Requeue (once) or escalate in-flight runs whose lock has no live owner. */
export async function recoverStale(ctx: AgentContext, runningHere: Set<string>): Promise<{ requeued: string[]; escalated: string[] }> {
  const out = { requeued: [] as string[], escalated: [] as string[] }
  if (ctx.dryRun) return out
  const records = Object.values(readState(ctx.paths.state).agents[ctx.agent.name]?.issues ?? {})
  // Only runs in flight can have lost their owner: no lock file reads for the (many) settled issues.
  for (const rec of records.filter(isInFlight)) {
    const lock = inspectLock(lockPathFor(ctx, rec.identifier), LOCK_STALE_MS)
    // Its owner is gone but the engine it recorded may run on, with no watchdog: kill it first.
    if (lock.stale && !runningHere.has(rec.id)) {
      const killed = killOrphanEngine(lock.owner)
      if (killed.length)
        ctx.log.warn(`${rec.identifier}: killed the engine its dead run (pid ${lock.owner!.pid}) left running: ${killed.join(' ')}`)
    }
    if (lock.stale && lock.owner?.note === STOPPING_NOTE && !runningHere.has(rec.id)) {
      // Killed while stopping on the operator's signal (a forced exit): a stop, not a crash. The
      // `stopped` event queues the same run again, recoveries unchanged.
      const step = updateRecord(ctx.paths.state, ctx.agent.name, rec.id, { type: 'stopped' }, ctx.now())
      if (!step.refused && step.record) {
        ctx.log.info(`${rec.identifier}: its run was stopped by the operator (pid ${lock.owner.pid} was stopping); resuming it`)
        out.requeued.push(rec.identifier)
      }
      continue
    }
    const plan = planRecovery(rec, lock, runningHere.has(rec.id))
    if (plan.action === 'none') continue
    // The state machine re-checks under the state lock: another driver may have requeued or taken it meanwhile.
    const step = updateRecord(
      ctx.paths.state,
      ctx.agent.name,
      rec.id,
      plan.action === 'requeue' ? { type: 'recovered' } : { type: 'escalated', reason: 'run died twice' },
      ctx.now(),
    )
    if (step.refused || !step.record) continue
    if (plan.action === 'requeue') {
      const why = lock.owner ? ` (pid ${lock.owner.pid} on ${lock.owner.host}: ${lock.stale})` : ''
      ctx.log.warn(`${rec.identifier}: its run (${rec.phase}) has no live owner${why}; resuming it once`)
      out.requeued.push(rec.identifier)
    } else {
      const { postEscalation } = await import('./escalate.ts')
      await postEscalation(ctx, step.record, 'its run died twice (the resumed attempt lost its process too)')
      out.escalated.push(rec.identifier)
    }
  }
  return out
}

/**
 * Remove worktrees of issues closed for longer than the grace period (the branch stays on the
 * remote), then forget the records of those closed issues (state.json stays small).
 */
export async function cleanupClosed(ctx: AgentContext): Promise<string[]> {
  if (ctx.dryRun) return []
  const records = Object.values(readState(ctx.paths.state).agents[ctx.agent.name]?.issues ?? {})
  const due = dueForCleanup(records, ctx.config.cleanup_grace_minutes * 60_000, ctx.now())
  const removed: string[] = []
  for (const rec of due) {
    const path = rec.worktree!
    try {
      await teardownRuntime(ctx, rec) // never throws: a failure is logged and the worktree goes anyway
      // Imported here, when a worktree is due: an idle tick loads no git, tamper or worktree code.
      const [{ followWorktreeLink, guardRepository }, { withRepoLock }, { git }] = await Promise.all([
        import('./tamper.ts'),
        import('./steps/worktree.ts'),
        import('./git.ts'),
      ])
      // The worktree's .git link read as a file (no git in a worktree an engine left); a broken
      // link leaves git's record to the next `worktree prune` of the base clone.
      const link = followWorktreeLink(path)
      if ('commonDir' in link) {
        const common = link.commonDir
        const base = common.endsWith('/.git') ? common.slice(0, -5) : common
        guardRepository(ctx, common, rec.identifier)
        await withRepoLock(ctx, base, async () => {
          await git(['worktree', 'remove', '--force', path], ctx, { cwd: base, allowFail: true })
          await git(['worktree', 'prune'], ctx, { cwd: base, allowFail: true })
        })
      }
      rmSync(path, { recursive: true, force: true })
      updateRecord(ctx.paths.state, ctx.agent.name, rec.id, { type: 'worktree_removed' }, ctx.now())
      ctx.log.info(`${rec.identifier}: closed since ${rec.closedAt}; removed its worktree ${path} (branch kept on the remote)`)
      removed.push(rec.identifier)
    } catch (err) {
      ctx.log.warn(`${rec.identifier}: could not remove worktree ${path}: ${asFactoryError(err).message}`)
    }
  }
  pruneClosed(ctx, records)
  forgetLogs(ctx)
  return removed
}

/** Remove the logs of issues no longer on record once unwritten for log_retention_days (log-retention.ts). */
function forgetLogs(ctx: AgentContext): void {
  const identifiers = Object.values(readState(ctx.paths.state).agents[ctx.agent.name]?.issues ?? {}).map((r) => r.identifier)
  const dir = join(ctx.paths.logs, sanitizeKey(ctx.agent.name))
  const gone = pruneLogs(dir, identifiers, ctx.config.log_retention_days * 86_400_000, ctx.now())
  if (gone.length)
    ctx.log.info(
      `removed the logs of ${gone.length} forgotten issue(s) older than ${ctx.config.log_retention_days} days: ${gone.map((d) => basename(d)).join(', ')}`,
    )
}

/** Forget records of issues closed for longer than the grace period (decided again under the state lock). */
function pruneClosed(ctx: AgentContext, records: IssueRecord[]): void {
  const graceMs = ctx.config.cleanup_grace_minutes * 60_000
  // A worktree removed just now is seen by the next tick: this read predates it.
  if (dueForPrune(records, graceMs, ctx.now()).length === 0) return
  const pruned = pruneRecords(ctx.paths.state, ctx.agent.name, (a) =>
    dueForPrune(Object.values(a.issues), graceMs, ctx.now()).map((r) => r.id),
  )
  if (pruned.length === 0) return
  const names =
    pruned
      .slice(0, 10)
      .map((r) => r.identifier)
      .join(', ') + (pruned.length > 10 ? ', ...' : '')
  ctx.log.info(`forgot ${pruned.length} issue(s) closed for longer than ${ctx.config.cleanup_grace_minutes} min: ${names}`)
}

/** Everything a tick does besides polling and dispatching; a failure is logged and the runs go on. */
export async function reconcileTick(
  ctx: AgentContext,
  poll: { viewer: { id: string }; watch: string[]; watched: WatchedIssue[] },
  runningHere: Set<string>,
): Promise<void> {
  try {
    reconcile(ctx, poll.viewer.id, poll.watch, poll.watched)
    await recoverStale(ctx, runningHere)
    await cleanupClosed(ctx)
  } catch (err) {
    ctx.log.error(`${ctx.agent.name}: reconciliation failed (runs go on): ${asFactoryError(err).describe()}`)
  }
}
