/**
 * What the driver does every tick besides dispatching: release issues that are no longer the
 * agent's (a running engine stops within seconds: the run watches for it), resume runs whose
 * owner died (once, then escalate), and remove worktrees of closed issues after a grace period.
 * The decisions are lifecycle.ts's; this file carries them out.
 */
import { rmSync } from 'node:fs'
import { issueLockPath, LOCK_STALE_MS } from './steps/claim.ts'
import type { AgentContext } from './context.ts'
import { asFactoryError } from './errors.ts'
import { escalate } from './escalate.ts'
import { git } from './git.ts'
import { dueForCleanup, isInFlight, planReconcile, planRecovery } from './lifecycle.ts'
import { inspectLock } from './lock.ts'
import { agentState, readState, updateState } from './state.ts'
import { withRepoLock } from './steps/worktree.ts'
import type { WatchedIssue } from './tracker/types.ts'

/** Release watched issues that are gone, closed or reassigned; returns the identifiers released. */
export function reconcile(ctx: AgentContext, viewerId: string, watch: string[], watched: WatchedIssue[]): string[] {
  if (ctx.dryRun || watch.length === 0) return []
  const byId = new Map(watched.map((w) => [w.id, w]))
  const released: { identifier: string; reason: string }[] = []
  updateState(ctx.paths.state, (d) => {
    const agent = agentState(d, ctx.agent.name)
    for (const id of watch) {
      const r = agent.issues[id]
      if (!r) continue
      const plan = planReconcile(r, byId.get(id), viewerId)
      if (plan.action !== 'release') continue
      const cur = byId.get(id)
      if (cur && (cur.state.type === 'completed' || cur.state.type === 'canceled')) r.closedAt ??= ctx.now().toISOString()
      r.phase = 'released'
      r.releasedReason = plan.reason
      r.nextRetryAt = undefined
      released.push({ identifier: r.identifier, reason: plan.reason })
    }
  })
  for (const r of released) ctx.log.warn(`${r.identifier}: released (${r.reason}); a running engine stops, the worktree is kept`)
  return released.map((r) => r.identifier)
}

/** Requeue (once) or escalate in-flight runs whose lock has no live owner. */
export async function recoverStale(ctx: AgentContext, runningHere: Set<string>): Promise<{ requeued: string[]; escalated: string[] }> {
  const out = { requeued: [] as string[], escalated: [] as string[] }
  if (ctx.dryRun) return out
  const records = Object.values(readState(ctx.paths.state).agents[ctx.agent.name]?.issues ?? {})
  // Only runs in flight can have lost their owner: no lock file reads for the (many) settled issues.
  for (const rec of records.filter(isInFlight)) {
    const lock = inspectLock(issueLockPath(ctx, rec.identifier), LOCK_STALE_MS)
    const plan = planRecovery(rec, lock, runningHere.has(rec.id))
    if (plan.action === 'requeue') {
      // Re-check under the state lock: another driver may have requeued or taken it meanwhile.
      const done = updateState(ctx.paths.state, (d) => {
        const r = agentState(d, ctx.agent.name).issues[rec.id]
        if (!r || r.phase !== rec.phase) return false
        r.phase = 'queued'
        r.recoveries = (r.recoveries ?? 0) + 1
        return true
      })
      if (done) {
        ctx.log.warn(
          `${rec.identifier}: its run (${rec.phase}) has no live owner${lock.owner ? ` (pid ${lock.owner.pid} on ${lock.owner.host}: ${lock.stale})` : ''}; resuming it once`,
        )
        out.requeued.push(rec.identifier)
      }
    } else if (plan.action === 'escalate') {
      await escalate(ctx, rec.id, 'its run died twice (the resumed attempt lost its process too)')
      out.escalated.push(rec.identifier)
    }
  }
  return out
}

/** Remove worktrees of issues closed for longer than the grace period (the branch stays on the remote). */
export async function cleanupClosed(ctx: AgentContext): Promise<string[]> {
  if (ctx.dryRun) return []
  const records = Object.values(readState(ctx.paths.state).agents[ctx.agent.name]?.issues ?? {})
  const due = dueForCleanup(records, ctx.config.cleanup_grace_minutes * 60_000, ctx.now())
  const removed: string[] = []
  for (const rec of due) {
    const path = rec.worktree!
    try {
      const common = (await git(['rev-parse', '--git-common-dir'], { cwd: path, allowFail: true })).stdout.trim()
      if (common) {
        const base = common.endsWith('/.git') ? common.slice(0, -5) : common
        await withRepoLock(ctx, base, async () => {
          await git(['worktree', 'remove', '--force', path], { cwd: base, allowFail: true })
          await git(['worktree', 'prune'], { cwd: base, allowFail: true })
        })
      }
      rmSync(path, { recursive: true, force: true })
      updateState(ctx.paths.state, (d) => {
        const r = agentState(d, ctx.agent.name).issues[rec.id]
        if (r) Object.assign(r, { worktree: undefined, worktreeRemovedAt: ctx.now().toISOString() })
      })
      ctx.log.info(`${rec.identifier}: closed since ${rec.closedAt}; removed its worktree ${path} (branch kept on the remote)`)
      removed.push(rec.identifier)
    } catch (err) {
      ctx.log.warn(`${rec.identifier}: could not remove worktree ${path}: ${asFactoryError(err).message}`)
    }
  }
  return removed
}
