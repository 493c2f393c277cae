/**
 * The events of a ticket's state machine (lib/phases.ts handles them): what a step, the poll, the
 * reconciler or a human did. Kept apart from transition() so each file stays readable.
 */
import type { RunRecord } from './state.ts'
import type { TrackerIssue, WorkflowState } from './tracker/types.ts'
import type { IssueDecision } from './steps/poll.ts'

export interface FailureInfo {
  code: string
  message: string
  fix?: string
}

export type PhaseEvent =
  /** A poll returned the issue; `decision` is planIssue's. */
  | { type: 'polled'; issue: TrackerIssue; decision: IssueDecision }
  /** Webhook (agent_session): the agent was delegated or mentioned; a request to run now. */
  | { type: 'session_created'; issue: TrackerIssue; sessionId: string; orgId?: string; promptContext?: string }
  /** Webhook (agent_session): a human replied in the agent session (the run's follow-up). */
  | { type: 'prompted'; at: string; prompt?: { id: string; body: string } }
  /** Webhook (agent_session): a human pressed stop. */
  | { type: 'stop_requested'; reason: string }
  /** The claim step took the lock, opened (or resumed) run `runNumber` and moved the issue. */
  | { type: 'claimed'; issue: TrackerIssue; runNumber: number; resumes: boolean; engine: string; repo?: string }
  | { type: 'worktree_ready'; path: string; branch: string }
  /** The engine ended (any status); `threadUsage`: the engine reports the thread's running total (Codex). */
  | { type: 'engine_finished'; run: Partial<RunRecord>; sessionId?: string; threadUsage?: boolean }
  | {
      type: 'reported'
      outcome: 'success' | 'no_changes' | 'failed'
      commentId: string
      commit?: string
      prUrl?: string
      movedTo?: WorkflowState | null
    }
  /** An attempt failed (engine or a step around it); `maxAttempts` from the agent's limits. */
  | { type: 'failed'; error: FailureInfo; maxAttempts: number }
  /** The driver could not start a queued run (e.g. the base clone failed); it stays queued, the error shown. */
  | { type: 'blocked'; error: FailureInfo }
  /** Reconciliation: gone, closed or no longer the agent's; again when a released issue with a worktree closes. */
  | { type: 'released'; reason: string; closed: boolean; state?: WorkflowState }
  /** A human must decide (e.g. no repository rule takes the issue: `error` says why and how to route it). */
  | { type: 'escalated'; reason: string; error?: FailureInfo }
  /** A run in flight lost its owner (crash): resumed once. */
  | { type: 'recovered' }
  /** The operator stopped the run (Ctrl-C, SIGTERM): back to the queue, same run, no attempt used. */
  | { type: 'stopped' }
  | { type: 'worktree_removed' }
  /** A human asked, by hand (`rose-factory retry`, the status page), to run an escalated, failed or cancelled issue again. */
  | { type: 'retry_requested'; by: string }
  /** A human cancelled the run by hand (`rose-factory cancel`, the status page): released and held until a human acts. */
  | { type: 'cancel_requested'; by: string }

export type EventType = PhaseEvent['type']

/** Every event type, for tables and tests (the compiler checks it lists the whole union). */
// prettier-ignore
export const EVENT_TYPES = [
  'polled', 'session_created', 'prompted', 'stop_requested', 'claimed', 'worktree_ready', 'engine_finished', 'reported',
  'failed', 'blocked', 'released', 'escalated', 'recovered', 'stopped', 'worktree_removed', 'retry_requested', 'cancel_requested',
] as const satisfies readonly EventType[]
type Unlisted = Exclude<EventType, (typeof EVENT_TYPES)[number]>
const _everyEventListed: [Unlisted] extends [never] ? true : Unlisted = true
void _everyEventListed
