/**
 * A ticket's state machine (ARCHITECTURE.md): the phase set, which phases are in flight, and the one pure
 * `transition(record, event, now)` every phase change goes through (invariant "one-phase-owner":
 * nothing else writes `phase`). Steps return what they did; the runner, the poll and the
 * reconciler turn that into an event and hand it to `updateRecords` (state.ts), which is the
 * only writer of issue records. Events on a released record are refused ("released stays
 * released"), except a new poll or webhook that makes the issue ours again. The diagram is in
 * ARCHITECTURE.md; test/phases.test.ts pins every phase x event.
 */
import { planFailure } from './retry.ts'
import type { IssueRecord, RunRecord } from './state.ts'
import { usageDelta } from './engines/usage.ts'
import type { TrackerIssue } from './tracker/types.ts'
import type { FailureInfo, PhaseEvent } from './phase-events.ts'

export { EVENT_TYPES, type EventType, type FailureInfo, type PhaseEvent } from './phase-events.ts'

export const PHASES = ['seen', 'queued', 'claimed', 'running', 'reporting', 'done', 'failed', 'escalated', 'released'] as const
export type Phase = (typeof PHASES)[number]

/** Phases in which a run is (or should be) under way and holds the issue's lock. */
export const IN_FLIGHT: readonly Phase[] = ['claimed', 'running', 'reporting']

/** True when the record is in one of `phases` (callers ask; only transition() sets a phase). */
export function inPhase(record: Pick<IssueRecord, 'phase'> | undefined, ...phases: Phase[]): boolean {
  return !!record && phases.includes(record.phase)
}

/** True when a run of the record is (or should be) under way. */
export function isInFlight(record: Pick<IssueRecord, 'phase'>): boolean {
  return IN_FLIGHT.includes(record.phase)
}

/** True when the record is waiting for a run or running (reconciliation watches these). */
export function isActive(record: Pick<IssueRecord, 'phase'>): boolean {
  return record.phase === 'queued' || isInFlight(record)
}

export type Transition = { ok: true; record: IssueRecord } | { ok: false; refused: string }

const refuse = (why: string): Transition => ({ ok: false, refused: why })

/** A record for an issue the factory has not recorded yet. */
function fresh(issue: TrackerIssue, phase: Phase, at: string): IssueRecord {
  return { id: issue.id, identifier: issue.identifier, title: issue.title, phase, snapshot: issue, runs: [], attempts: 0, updatedAt: at }
}

/** A human asked again (or it came back to us): a fresh budget of attempts, no pending retry, a new run. */
/** What a `session_created` records about the session. */
function sessionFields(e: Extract<PhaseEvent, { type: 'session_created' }>): Partial<IssueRecord> {
  return { agentSessionId: e.sessionId, agentOrgId: e.orgId, promptContext: e.promptContext }
}

function requeue(r: IssueRecord, at: string): void {
  r.phase = 'queued'
  r.queuedAt = at
  Object.assign(r, {
    lastError: undefined,
    attempts: 0,
    nextRetryAt: undefined,
    recoveries: 0,
    releasedReason: undefined,
    cancelledAt: undefined,
    closedAt: undefined,
  })
  // An unreported run (a step failed, then the issue was escalated or released) never sees the new
  // comment if resumed: it is closed, and the next claim opens a new run (new prompt, new comment ids).
  const last = r.runs.at(-1)
  if (last && !last.reportedAt) Object.assign(last, { abandoned: true, status: last.status === 'running' ? 'cancelled' : last.status })
}

const runOf = (r: IssueRecord): RunRecord | undefined => r.runs.at(-1)

/** The one place a record's phase changes. Pure: returns a new record or a refusal naming why. */
export function transition(current: IssueRecord | undefined, event: PhaseEvent, now: Date): Transition {
  const at = now.toISOString()
  if (!current) {
    if (event.type === 'polled') {
      if (event.decision.action === 'queue') {
        const r = fresh(event.issue, 'queued', at)
        r.queuedAt = at
        return { ok: true, record: r }
      }
      if (event.decision.reason !== 'inactive_state') return refuse('not recorded: nothing to do for this issue')
      return { ok: true, record: { ...fresh(event.issue, 'seen', at), seenUpTo: seenMark(event.issue) } }
    }
    if (event.type === 'session_created')
      return { ok: true, record: { ...fresh(event.issue, 'queued', at), queuedAt: at, ...sessionFields(event) } }
    if (event.type === 'claimed') {
      const r = fresh(event.issue, 'claimed', at)
      if (event.repo) r.repo = event.repo
      r.runs.push({ n: event.runNumber, startedAt: at, status: 'running', engine: event.engine })
      return { ok: true, record: r }
    }
    return refuse(`no record of this issue for ${event.type}`)
  }
  const r: IssueRecord = structuredClone(current)
  r.updatedAt = at
  const released = r.phase === 'released'
  switch (event.type) {
    case 'polled': {
      r.snapshot = event.issue
      r.title = event.issue.title
      const d = event.decision
      if (d.action === 'skip' && d.reason === 'closed') r.closedAt ??= at
      // A run under way takes its issue as it is; the poll only refreshes the snapshot.
      if (d.action === 'queue' && !isActive(r)) requeue(r, at)
      else if (d.reason === 'inactive_state' && released) {
        r.phase = 'seen'
        Object.assign(r, { seenUpTo: seenMark(event.issue), cancelledAt: undefined })
      }
      return { ok: true, record: r }
    }
    case 'session_created':
      if (isInFlight(r) || r.phase === 'queued') return refuse(`already ${r.phase}`)
      // The same session's `created` again (the relay hands out an event whose ack was lost): not a new request.
      if (r.agentSessionId === event.sessionId) return refuse(`session ${event.sessionId} already taken (${r.phase})`)
      r.snapshot = event.issue
      Object.assign(r, sessionFields(event), { pendingPrompts: undefined })
      requeue(r, at)
      return { ok: true, record: r }
    case 'prompted': {
      // A reply is kept until a run takes it: during a live run it waits for the next run, right after.
      const p = event.prompt
      if (p && (r.pendingPrompts?.some((x) => x.id === p.id) || r.runs.some((x) => x.promptIds?.includes(p.id))))
        return refuse(`reply ${p.id} already recorded`)
      if (p) r.pendingPrompts = [...(r.pendingPrompts ?? []), { id: p.id, body: p.body, at }]
      if (isActive(r)) return p ? { ok: true, record: r } : refuse(`already ${r.phase}: the live run takes the follow-up`)
      requeue(r, at)
      return { ok: true, record: r }
    }
    case 'stop_requested':
    case 'released':
      if (event.type === 'released' && event.state) r.snapshot = { ...r.snapshot, state: event.state }
      if (released && event.type === 'released' && event.closed) return { ok: true, record: { ...r, closedAt: r.closedAt ?? at } }
      if (!isActive(r)) return refuse(`${r.phase} is not queued or running`)
      r.phase = 'released'
      r.releasedReason = event.reason
      r.nextRetryAt = undefined
      if (event.type === 'released' && event.closed) r.closedAt ??= at
      return { ok: true, record: r }
    case 'claimed': {
      if (released) return refuse('released')
      r.snapshot = event.issue
      r.phase = 'claimed'
      if (event.repo) r.repo = event.repo
      if (!event.resumes) {
        // A new run takes every reply waiting so far (agent_session); later ones wait for the next run.
        const pending = r.pendingPrompts
        const prompts = pending ? { prompts: pending.map((x) => x.body), promptIds: pending.map((x) => x.id) } : {}
        r.runs.push({ n: event.runNumber, startedAt: at, status: 'running', engine: event.engine, ...prompts })
        r.pendingPrompts = undefined
      }
      return { ok: true, record: r }
    }
    case 'worktree_ready': {
      if (released) return refuse('released')
      if (!isInFlight(r)) return refuse(`worktree_ready in ${r.phase}`)
      Object.assign(r, { branch: event.branch, worktree: event.path })
      // A resumed run whose engine already finished goes straight to its report.
      if (r.phase === 'claimed') r.phase = runOf(r) && runOf(r)!.status !== 'running' ? 'reporting' : 'running'
      return { ok: true, record: r }
    }
    case 'engine_finished': {
      const run = runOf(r)
      if (!run) return refuse('no run to finish')
      if (run.reportedAt) return refuse(`run #${run.n} is closed`)
      const fields = { ...event.run, endedAt: event.run.endedAt ?? at }
      if (event.threadUsage && fields.usage) {
        const prev = r.runs.filter((x) => x.n < run.n && x.usageThreadTotal).at(-1)?.usageThreadTotal
        fields.usageThreadTotal = fields.usage
        fields.usage = prev && event.sessionId && event.sessionId === r.sessionId ? usageDelta(fields.usage, prev) : fields.usage
      }
      Object.assign(run, fields)
      if (event.sessionId) r.sessionId = event.sessionId
      // Released while the engine ran: the engine was stopped for it; the run closes as cancelled.
      if (released) Object.assign(run, { status: 'cancelled', errorCode: 'engine_cancelled', reportedAt: at })
      else if (r.phase !== 'running') return refuse(`engine_finished in ${r.phase}`)
      else r.phase = 'reporting'
      return { ok: true, record: r }
    }
    case 'reported': {
      if (!isInFlight(r)) return refuse(`${r.phase}: no run being reported`)
      const run = runOf(r)
      if (!run) return refuse('no run to report')
      Object.assign(run, {
        reportedAt: at,
        commentId: event.commentId,
        commit: event.commit,
        prUrl: event.prUrl,
        status: event.outcome === 'no_changes' ? 'no_changes' : run.status,
      })
      if (event.prUrl) r.prUrl = event.prUrl
      if (event.movedTo) r.snapshot = { ...r.snapshot, state: event.movedTo }
      if (event.outcome === 'failed') {
        r.phase = 'failed'
        r.lastError = { code: run.errorCode ?? 'run_failed', message: (run.summary ?? '').slice(0, 500) }
      } else {
        r.phase = 'done'
        Object.assign(r, { lastError: undefined, attempts: 0, nextRetryAt: undefined, recoveries: 0 })
      }
      // Replies that came while it ran: one run right after it, with all of them.
      if (r.pendingPrompts?.length) requeue(r, at)
      return { ok: true, record: r }
    }
    case 'failed':
      if (!isActive(r)) return refuse(`${r.phase}: no attempt under way`)
      return { ok: true, record: afterFailure(r, event.error, event.maxAttempts, now) }
    case 'blocked':
      if (r.phase !== 'queued') return refuse(`${r.phase} is not queued`)
      r.lastError = { code: event.error.code, message: event.error.message.slice(0, 500), fix: event.error.fix }
      return { ok: true, record: r }
    case 'escalated':
      if (!isActive(r)) return refuse(`${r.phase} is not queued or running`)
      Object.assign(r, { phase: 'escalated', escalatedAt: at, nextRetryAt: undefined })
      if (event.error) r.lastError = { ...event.error, message: event.error.message.slice(0, 500) }
      return { ok: true, record: r }
    case 'recovered':
      if (!isInFlight(r)) return refuse(`${r.phase} is not in flight`)
      r.phase = 'queued'
      r.recoveries = (r.recoveries ?? 0) + 1
      return { ok: true, record: r }
    case 'stopped': {
      if (!isInFlight(r)) return refuse(`${r.phase} is not in flight`)
      const run = runOf(r)
      // Only an engine our stop killed runs again; a finished result (even a failure) is reported on resume.
      if (run && !run.reportedAt && run.status === 'cancelled')
        Object.assign(run, { status: 'running', endedAt: undefined, summary: undefined, errorCode: undefined })
      r.phase = 'queued'
      return { ok: true, record: r }
    }
    case 'cancel_requested':
      if (!isActive(r)) return refuse(`${r.phase}: nothing queued or running to cancel`)
      // cancelledAt holds it: only a human (a comment, `rose-factory retry`) runs it again (planIssue).
      Object.assign(r, { phase: 'released', releasedReason: `cancelled by ${event.by}`, cancelledAt: at, nextRetryAt: undefined })
      return { ok: true, record: r }
    case 'retry_requested':
      // A retry waiting for its backoff: due now, same attempt count.
      if (r.phase === 'queued' && r.nextRetryAt) return { ok: true, record: { ...r, nextRetryAt: undefined } }
      if (isActive(r)) return refuse(`${r.phase}: already queued or running`)
      if (r.phase === 'done') return refuse('done: nothing failed; a comment on the issue in Linear asks for changes')
      if (r.phase === 'seen') return refuse('seen: never run; move the issue to an active state in Linear')
      if (released && !r.cancelledAt) return refuse(`released (${r.releasedReason}): assign it to the agent again or reopen it in Linear`)
      requeue(r, at)
      return { ok: true, record: r }
    case 'worktree_removed':
      if (isActive(r)) return refuse('a run is using or about to use the worktree')
      Object.assign(r, { worktree: undefined, worktreeRemovedAt: at })
      return { ok: true, record: r }
  }
}

/** Linear's clock at first sight: comments newer than this were written after the factory saw the issue. */
function seenMark(issue: TrackerIssue): string {
  let out = issue.updatedAt
  for (const c of issue.comments) if (c.createdAt > out) out = c.createdAt
  return out
}

/**
 * After a failed attempt: retry with backoff (a new run when the engine itself failed, the same
 * run when a step around it did, so a finished engine result is reported, not produced again),
 * escalate when attempts are used up, or stop when retrying cannot help.
 */
function afterFailure(r: IssueRecord, error: FailureInfo, maxAttempts: number, now: Date): IssueRecord {
  const at = now.toISOString()
  const plan = planFailure(r.attempts, error.code, maxAttempts, now)
  const kind = plan.kind
  r.attempts = plan.attempts
  r.lastError = { code: error.code, message: error.message.slice(0, 500), fix: error.fix }
  const run = runOf(r)
  if (run && !run.reportedAt) {
    const engineFailed = run.status !== 'running' && run.status !== 'success'
    if (kind === 'final') {
      Object.assign(run, {
        status: run.status === 'running' ? 'failed' : run.status,
        endedAt: run.endedAt ?? at,
        errorCode: run.errorCode ?? error.code,
        summary: run.summary ?? error.message.slice(0, 2000),
        reportedAt: at,
      })
    } else if (engineFailed) Object.assign(run, { reportedAt: at, retried: kind === 'retry' })
  }
  if (plan.kind === 'retry') Object.assign(r, { phase: 'queued', nextRetryAt: plan.nextRetryAt })
  else if (kind === 'escalate') Object.assign(r, { phase: 'escalated', escalatedAt: at, nextRetryAt: undefined })
  else r.phase = 'failed'
  return r
}
