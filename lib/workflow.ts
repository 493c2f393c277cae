/**
 * Pure decisions about an issue's place in its team's workflow: which state means "started" and
 * which means "in review" (matched by type plus name: teams rename them), what a poll result
 * means for the factory (queue a run, a rerun, or nothing), and the ids of our writes.
 */
import { createHash } from 'node:crypto'
import type { AgentConfig } from './config.ts'
import { humanComments } from './prompt.ts'
import type { IssueRecord } from './state.ts'
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

/** True when the issue is completed or canceled. */
export function isClosed(issue: TrackerIssue): boolean {
  return issue.state.type === 'completed' || issue.state.type === 'canceled'
}

/** True when the issue is assigned or delegated to the viewer. */
export function isOurs(issue: TrackerIssue, viewerId: string): boolean {
  return issue.assigneeId === viewerId || issue.delegateId === viewerId
}

export type IssueDecision =
  | { action: 'queue'; reason: 'new' | 'comment'; commentCount: number; ignoredComments?: number }
  | { action: 'skip'; reason: 'not_ours' | 'closed' | 'in_flight' | 'no_new_comments' | 'escalated'; ignoredComments?: number }

/** What a polled issue means for the factory, given what state.json knows of it. */
export function planIssue(record: IssueRecord | undefined, issue: TrackerIssue, viewerId: string, agent: AgentConfig): IssueDecision {
  if (!isOurs(issue, viewerId)) return { action: 'skip', reason: 'not_ours' }
  if (isClosed(issue)) return { action: 'skip', reason: 'closed' }
  if (!record || record.phase === 'released') return { action: 'queue', reason: 'new', commentCount: 0 }
  if (['queued', 'claimed', 'worktree', 'running', 'reporting'].includes(record.phase)) return { action: 'skip', reason: 'in_flight' }
  const since = lastCommentsUpTo(record)
  const all = humanComments(issue, viewerId, since)
  const fresh = humanComments(issue, viewerId, since, agent.tracker.allow_commenters)
  // Comments from people outside allow_commenters never steer the agent (they are logged).
  const ignored = all.length - fresh.length || undefined
  if (fresh.length > 0) return { action: 'queue', reason: 'comment', commentCount: fresh.length, ignoredComments: ignored }
  if (record.phase === 'escalated') return { action: 'skip', reason: 'escalated', ignoredComments: ignored }
  return { action: 'skip', reason: 'no_new_comments', ignoredComments: ignored }
}

/** createdAt of the newest human comment any run's prompt included (undefined = none yet). */
export function lastCommentsUpTo(record: IssueRecord): string | undefined {
  let out: string | undefined
  for (const r of record.runs) if (r.commentsUpTo && (!out || r.commentsUpTo > out)) out = r.commentsUpTo
  return out
}

/** Dispatch order: Linear priority urgent (1) first, none (0) last, then oldest created, then identifier. */
export function dispatchOrder(a: TrackerIssue, b: TrackerIssue): number {
  const pa = a.priority === 0 ? 5 : a.priority
  const pb = b.priority === 0 ? 5 : b.priority
  return pa - pb || a.createdAt.localeCompare(b.createdAt) || a.identifier.localeCompare(b.identifier, 'en', { numeric: true })
}

/** A UUID (v4 layout) derived from `seed`: the same run always writes with the same id (invariant 2). */
export function stableUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest()
  h[6] = (h[6]! & 0x0f) | 0x40
  h[8] = (h[8]! & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`
}

/** The id of run `n`'s summary comment on an issue. */
export function summaryCommentId(agent: string, issueId: string, n: number): string {
  return stableUuid(`rose-factory/${agent}/${issueId}/run/${n}/summary`)
}
