/**
 * Facts about an issue's place in its team's workflow: which state means "started", which means
 * "in review" (matched by type plus name: teams rename them), which states a new issue runs in,
 * whether it is closed or ours, and the dispatch order. Pure.
 */
import type { TrackerIssue, WorkflowState } from './tracker/types.ts'

const REVIEW_NAME = /review/i

function byPosition(a: WorkflowState, b: WorkflowState): number {
  return (a.position ?? 0) - (b.position ?? 0)
}

/** The team's "In Progress": a started state that is not a review state (lowest position). */
export function startedState(states: WorkflowState[]): WorkflowState | undefined {
  const started = states.filter((s) => s.type === 'started').sort(byPosition)
  return started.find((s) => /progress/i.test(s.name)) ?? started.find((s) => !REVIEW_NAME.test(s.name)) ?? started[0]
}

/** The team's "In Review": a started state whose name says review, else the last started state. */
export function reviewState(states: WorkflowState[]): WorkflowState | undefined {
  const started = states.filter((s) => s.type === 'started').sort(byPosition)
  return started.find((s) => REVIEW_NAME.test(s.name)) ?? (started.length > 1 ? started[started.length - 1] : undefined)
}

/** True when `state` is the team's review state. */
export function isReviewState(state: WorkflowState, states: WorkflowState[]): boolean {
  return reviewState(states)?.id === state.id
}

/**
 * True when a newly seen issue in this state should run: a state named (or typed) in
 * `tracker.active_states`, else the team's unstarted states and its started non-review state.
 */
export function isActiveState(issue: TrackerIssue, configured?: readonly string[]): boolean {
  const { state } = issue
  if (configured) return configured.some((c) => c.toLowerCase() === state.name.toLowerCase() || c === state.type)
  if (state.type === 'unstarted') return true
  return state.type === 'started' && !isReviewState(state, issue.team.states)
}

/** True when the issue is completed or canceled. */
export function isClosed(issue: Pick<TrackerIssue, 'state'>): boolean {
  return issue.state.type === 'completed' || issue.state.type === 'canceled'
}

/** True when the issue is assigned or delegated to the viewer. */
export function isOurs(issue: Pick<TrackerIssue, 'assigneeId' | 'delegateId'>, viewerId: string): boolean {
  return issue.assigneeId === viewerId || issue.delegateId === viewerId
}

/** What dispatch orders by (a record's slim snapshot has it). */
export type DispatchKey = Pick<TrackerIssue, 'priority' | 'createdAt' | 'identifier'>

/** Dispatch order: Linear priority urgent (1) first, none (0) last, then oldest created, then identifier. */
export function dispatchOrder(a: DispatchKey, b: DispatchKey): number {
  const pa = a.priority === 0 ? 5 : a.priority
  const pb = b.priority === 0 ? 5 : b.priority
  return pa - pb || a.createdAt.localeCompare(b.createdAt) || a.identifier.localeCompare(b.identifier, 'en', { numeric: true })
}
