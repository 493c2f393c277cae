/**
 * Which queued issues a tick starts. planDispatch is pure and is the one decision both the real
 * dispatch (lib/start.ts) and `start --dry-run` use, so a dry run lists exactly the runs the real
 * tick starts. previewTick replays, on a copy of the agent's state, what a real tick writes before
 * it dispatches (the poll's records, reconciliation's releases, stale-run recovery), so the dry run
 * plans from the same records the real dispatch reads.
 */
import { type BackoffPolicy, backoffMs } from './backoff.ts'
import type { LockStatus } from './lock.ts'
import { inPhase, isInFlight, type PhaseEvent, transition } from './phases.ts'
import { planReconcile, planRecovery } from './reconcile.ts'
import type { AgentState, IssueRecord } from './state.ts'
import type { PollPlan } from './steps/poll.ts'
import type { WatchedIssue } from './tracker/types.ts'
import { dispatchOrder } from './workflow.ts'

export interface DispatchCaps {
  /** agents[].concurrency */
  agent: number
  /** max_concurrency (across agents) */
  machine: number
  /** Runs of this agent this driver has in flight. */
  runningAgent: number
  /** Runs of every agent this driver has in flight. */
  runningMachine: number
}

export interface DispatchPlan {
  /** Started this tick, in dispatch order (priority, then oldest). */
  start: IssueRecord[]
  /** Due, but no slot is free (concurrency caps): the next tick (or a freed slot) takes them. */
  noSlot: IssueRecord[]
  /** Retries not due yet, soonest first. */
  waiting: { record: IssueRecord; nextRetryAt: string }[]
  /** Queued, but a live process (another driver's run) holds the issue's lock. */
  held: IssueRecord[]
}

/** The plan as identifiers (what `start --json` prints for both the real and the dry run). */
export interface DispatchSummary {
  start: string[]
  noSlot: string[]
  waiting: { identifier: string; nextRetryAt: string }[]
  held: string[]
}

/** A run child that exited without taking its queued issue is not started again before 5 s, doubling, at most 5 min. */
export const SPAWN_RETRY: BackoffPolicy = { baseMs: 5_000, capMs: 300_000 }

/** An issue whose run child exited without taking it (see spawnBackoff): not started again before `until`. */
export interface SpawnBackoff {
  until: number
  failures: number
}

/**
 * After a run child exited: a child that left the record as it found it (it never took the issue:
 * agents.yaml broken since the driver loaded it, an id it could not parse, a crash at start) backs
 * the issue off, one more failure than before; a child that changed the record clears it. Pure.
 */
export function spawnBackoff(prev: SpawnBackoff | undefined, changed: boolean, now: number): SpawnBackoff | undefined {
  if (changed) return undefined
  const failures = (prev?.failures ?? 0) + 1
  return { until: now + backoffMs(failures, SPAWN_RETRY), failures }
}

/**
 * Decide which queued records start now. `running`: issue ids this driver runs already; `held`:
 * issue ids whose lock a live process holds; `backoff`: issue ids whose last run child exited
 * without taking them, and until when they wait (listed as waiting). Pure.
 */
export function planDispatch(
  records: IssueRecord[],
  running: ReadonlySet<string>,
  caps: DispatchCaps,
  now: number,
  held: ReadonlySet<string> = new Set(),
  backoff: ReadonlyMap<string, number> = new Map(),
): DispatchPlan {
  const queued = records.filter((r) => inPhase(r, 'queued') && !running.has(r.id)).sort((a, b) => dispatchOrder(a.snapshot, b.snapshot))
  const retryAt = (r: IssueRecord) => (r.nextRetryAt ? Date.parse(r.nextRetryAt) : 0)
  const notBefore = (r: IssueRecord) => Math.max(retryAt(r), backoff.get(r.id) ?? 0)
  const notDue = (r: IssueRecord) => notBefore(r) > now
  const waiting = queued
    .filter(notDue)
    // The record's retry time as written, unless a spawn backoff ends later.
    .map((record) => ({
      record,
      nextRetryAt: notBefore(record) > retryAt(record) ? new Date(notBefore(record)).toISOString() : record.nextRetryAt!,
    }))
    .sort((a, b) => Date.parse(a.nextRetryAt) - Date.parse(b.nextRetryAt))
  const due = queued.filter((r) => !notDue(r))
  const free = due.filter((r) => !held.has(r.id))
  const slots = Math.max(0, Math.min(caps.agent - caps.runningAgent, caps.machine - caps.runningMachine))
  return { start: free.slice(0, slots), noSlot: free.slice(slots), waiting, held: due.filter((r) => held.has(r.id)) }
}

export function summarizeDispatch(plan: DispatchPlan): DispatchSummary {
  return {
    start: plan.start.map((r) => r.identifier),
    noSlot: plan.noSlot.map((r) => r.identifier),
    waiting: plan.waiting.map((w) => ({ identifier: w.record.identifier, nextRetryAt: w.nextRetryAt })),
    held: plan.held.map((r) => r.identifier),
  }
}

/**
 * The agent's records as a real tick leaves them just before dispatch, computed on a copy (the
 * caller's state is not touched): the poll recorded, watched issues released, dead owners' runs
 * requeued once (or escalated). `lockOf` reads an issue's lock (read-only).
 */
export function previewTick(
  state: AgentState,
  poll: PollPlan,
  reconcileInput: { watch: string[]; watched: WatchedIssue[] },
  lockOf: (identifier: string) => LockStatus,
  now: Date,
): IssueRecord[] {
  const issues = structuredClone(state.issues)
  // The same transitions the real tick records, so the preview cannot drift from it.
  const apply = (id: string, event: PhaseEvent) => {
    const t = transition(issues[id], event, now)
    if (t.ok) issues[id] = t.record
  }
  for (const { issue, decision } of poll.items) apply(issue.id, { type: 'polled', issue, decision })
  const byId = new Map(reconcileInput.watched.map((w) => [w.id, w]))
  for (const id of reconcileInput.watch) {
    const r = issues[id]
    const plan = r ? planReconcile(r, byId.get(id), poll.viewer.id) : undefined
    if (plan?.action === 'release') apply(id, { type: 'released', reason: plan.reason, closed: plan.closed })
  }
  for (const r of Object.values(issues).filter(isInFlight)) {
    const plan = planRecovery(r, lockOf(r.identifier), false)
    if (plan.action === 'requeue') apply(r.id, { type: 'recovered' })
    else if (plan.action === 'escalate') apply(r.id, { type: 'escalated', reason: 'run died twice' })
  }
  return Object.values(issues)
}
