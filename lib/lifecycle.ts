/**
 * Pure decisions about a ticket's life after a run: retry or escalate a failure, release an
 * issue that is no longer ours, recover a run whose owner died, clean up closed worktrees.
 * The runner and the driver carry these plans out.
 */
import type { LockStatus } from './lock.ts'
import type { IssueRecord } from './state.ts'
import type { WatchedIssue } from './tracker/types.ts'

/** First retry after 10 s, doubling, capped at 5 min. */
export function retryDelayMs(attempts: number): number {
  return Math.min(10_000 * 2 ** Math.max(0, attempts - 1), 300_000)
}

/** Failures worth another attempt. Limits, a missing engine and bad config are not: they would fail the same way. */
export function isRetryable(code: string): boolean {
  return ![
    'engine_timeout',
    'limit_max_cost',
    'limit_max_turns',
    'engine_missing',
    'engine_cancelled',
    'config_invalid',
    'config_missing',
    'usage',
    'workspace_outside_root',
    'workspace_invalid_key',
    'tracker_auth',
    'tracker_not_found',
    'state_corrupt',
  ].includes(code)
}

export type FailurePlan =
  | { kind: 'retry'; attempts: number; nextRetryAt: string; delayMs: number }
  | { kind: 'escalate'; attempts: number }
  | { kind: 'final'; attempts: number }

/** After a failed attempt: retry with backoff, escalate when attempts are used up, or stop (not retryable). */
export function planFailure(attemptsBefore: number, code: string, maxAttempts: number, now: Date): FailurePlan {
  const attempts = attemptsBefore + 1
  if (!isRetryable(code)) return { kind: 'final', attempts }
  if (attempts >= maxAttempts) return { kind: 'escalate', attempts }
  const delayMs = retryDelayMs(attempts)
  return { kind: 'retry', attempts, delayMs, nextRetryAt: new Date(now.getTime() + delayMs).toISOString() }
}

export const IN_FLIGHT = ['claimed', 'worktree', 'running', 'reporting'] as const

/** True when a run of the record is (or should be) under way. */
export function isInFlight(record: IssueRecord): boolean {
  return (IN_FLIGHT as readonly string[]).includes(record.phase)
}

/** Records whose current state reconciliation must see every tick (queued or running). */
export function watchList(records: IssueRecord[]): string[] {
  return records.filter((r) => r.phase === 'queued' || isInFlight(r)).map((r) => r.id)
}

export type ReconcilePlan = { action: 'release'; reason: string } | { action: 'none' }

/** A queued or running issue that is gone, closed, or no longer the agent's is released. */
export function planReconcile(record: IssueRecord, current: WatchedIssue | undefined, viewerId: string): ReconcilePlan {
  if (record.phase !== 'queued' && !isInFlight(record)) return { action: 'none' }
  if (!current) return { action: 'release', reason: 'the issue is gone (deleted or no longer visible)' }
  if (current.state.type === 'completed' || current.state.type === 'canceled')
    return { action: 'release', reason: `moved to ${current.state.name}` }
  if (current.assigneeId !== viewerId && current.delegateId !== viewerId)
    return { action: 'release', reason: 'no longer assigned or delegated to the agent' }
  return { action: 'none' }
}

export type RecoveryPlan = { action: 'requeue' } | { action: 'escalate' } | { action: 'none' }

/**
 * A run in flight whose lock has no live owner (crash, kill -9, reboot) is resumed once; if the
 * resumed attempt dies too, the issue is escalated to a human.
 */
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
