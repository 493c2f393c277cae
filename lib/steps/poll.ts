/**
 * The poll step: one tracker read, a pure plan of what it means (planPoll), then one atomic
 * state write that records the issues AND advances the cursor together (invariant
 * "cursor-after-records": the cursor never passes an issue that is not durably recorded).
 */
import type { AgentConfig } from '../config.ts'
import { isWatched } from '../reconcile.ts'
import { backoffMs, POLL_RETRY } from '../backoff.ts'
import type { AgentContext } from '../context.ts'
import { asFactoryError } from '../errors.ts'
import { inPhase, isActive } from '../phases.ts'
import { humanComments, lastCommentsUpTo } from '../prompt.ts'
import { isActiveState, isClosed, isOurs, isReviewState } from '../workflow.ts'
import { writePollHealth } from '../poll-health.ts'
import { type AgentState, agentState, type IssueRecord, readState, updateRecords } from '../state.ts'
import type { TrackerIssue, Viewer, WatchedIssue } from '../tracker/types.ts'

export type IssueDecision =
  | { action: 'queue'; reason: 'new' | 'comment'; commentCount: number; ignoredComments?: number }
  | {
      action: 'skip'
      reason: 'not_ours' | 'closed' | 'in_flight' | 'no_new_comments' | 'escalated' | 'inactive_state' | 'cancelled'
      ignoredComments?: number
    }

/**
 * What a polled issue means for the factory, given what state.json knows of it. An issue seen
 * for the first time (or again after a release) runs only in one of the agent's active states;
 * one first seen in a review state runs when a human comments after the factory saw it.
 */
export function planIssue(record: IssueRecord | undefined, issue: TrackerIssue, viewerId: string, agent: AgentConfig): IssueDecision {
  if (!isOurs(issue, viewerId)) return { action: 'skip', reason: 'not_ours' }
  if (isClosed(issue)) return { action: 'skip', reason: 'closed' }
  const allow = agent.tracker.allow_commenters
  // Cancelled by a human (rose-factory cancel): held like an escalation until a human comments or retries it.
  const held = inPhase(record, 'released') && !!record?.cancelledAt
  if (!record || (inPhase(record, 'released', 'seen') && !held)) {
    if (isActiveState(issue, agent.tracker.active_states)) return { action: 'queue', reason: 'new', commentCount: 0 }
    if (record && inPhase(record, 'seen') && record.seenUpTo && isReviewState(issue.state, issue.team.states)) {
      const fresh = humanComments(issue, viewerId, record.seenUpTo, allow)
      if (fresh.length > 0) return { action: 'queue', reason: 'comment', commentCount: fresh.length }
    }
    return { action: 'skip', reason: 'inactive_state' }
  }
  if (isActive(record)) return { action: 'skip', reason: 'in_flight' }
  const upTo = lastCommentsUpTo(record)
  const since = held && (!upTo || record.cancelledAt! > upTo) ? record.cancelledAt : upTo
  const all = humanComments(issue, viewerId, since)
  const fresh = humanComments(issue, viewerId, since, allow)
  // Comments from people outside allow_commenters never steer the agent (they are logged).
  const ignored = all.length - fresh.length || undefined
  if (fresh.length > 0) return { action: 'queue', reason: 'comment', commentCount: fresh.length, ignoredComments: ignored }
  if (inPhase(record, 'escalated')) return { action: 'skip', reason: 'escalated', ignoredComments: ignored }
  if (held) return { action: 'skip', reason: isActiveState(issue, agent.tracker.active_states) ? 'cancelled' : 'inactive_state' }
  return { action: 'skip', reason: 'no_new_comments', ignoredComments: ignored }
}

/** How the loop logs a decision; routine skips (our own writes bring issues back) are debug-level. */
export function decisionLine(decision: IssueDecision): { routine: boolean; text: string } {
  if (decision.action === 'queue')
    return { routine: false, text: `queue (${decision.reason}${decision.reason === 'comment' ? `, ${decision.commentCount} new` : ''})` }
  return { routine: decision.reason === 'no_new_comments' || decision.reason === 'in_flight', text: `skip (${decision.reason})` }
}

export interface PollItem {
  issue: TrackerIssue
  decision: IssueDecision
}

export interface PollPlan {
  viewer: Viewer
  items: PollItem[]
  cursorBefore: string | null
  cursorAfter: string | null
}

export interface PollResult extends PollPlan {
  requests: number
  /** Ids of the records reconciliation must check (queued or running, or released with a worktree until it closes), and what Linear says of them now. */
  watch: string[]
  watched: WatchedIssue[]
}

/** Newest Linear timestamp in a poll result (issue updatedAt or comment createdAt). */
export function newestTimestamp(issues: TrackerIssue[], floor: string | null): string | null {
  let out = floor
  for (const i of issues) {
    if (!out || i.updatedAt > out) out = i.updatedAt
    for (const c of i.comments) if (!out || c.createdAt > out) out = c.createdAt
  }
  return out
}

/** Decide, for each polled issue, what it means; and where the cursor goes. Pure. */
export function planPoll(state: AgentState, viewer: Viewer, issues: TrackerIssue[], agent: AgentConfig): PollPlan {
  return {
    viewer,
    items: issues.map((issue) => ({ issue, decision: planIssue(state.issues[issue.id], issue, viewer.id, agent) })),
    cursorBefore: state.cursor,
    cursorAfter: newestTimestamp(issues, state.cursor),
  }
}

/** Poll the agent's issues and (unless dry-run) record them with the cursor in one write. Throws tracker errors. */
export async function pollAgent(ctx: AgentContext): Promise<PollResult> {
  const state = readState(ctx.paths.state)
  const known = agentState(structuredClone(state), ctx.agent.name)
  // Queued and running issues, and released ones whose worktree waits for them to close (reconcile.ts).
  const watch = Object.values(known.issues)
    .filter(isWatched)
    .map((r) => r.id)
  // Comments are read down to what each issue's last run saw, so none since is lost (all for new issues).
  const commentsSince = Object.fromEntries(Object.values(known.issues).map((r) => [r.id, lastCommentsUpTo(r) ?? null]))
  const res = await ctx.tracker.poll(known.cursor, { watch, commentsSince })
  let plan = planPoll(known, res.viewer, res.issues, ctx.agent)
  if (ctx.dryRun) return { ...plan, requests: res.requests, watched: res.watched, watch }
  const at = ctx.now()
  // Nothing returned, viewer and cursor as recorded: nothing to make durable, so no state lock and no write.
  if (res.issues.length === 0 && known.viewerId === res.viewer.id && !known.lastPollAt && !known.lastPollError) {
    writePollHealth(ctx.paths.home, ctx.agent.name, { at: at.toISOString() })
    return { ...plan, requests: res.requests, watched: res.watched, watch }
  }
  updateRecords(
    ctx.paths.state,
    ctx.agent.name,
    (a) => {
      // Decided again against the file under the lock: a run may have finished during the request.
      plan = planPoll(a, res.viewer, res.issues, ctx.agent)
      return plan.items.map(({ issue, decision }) => ({ issueId: issue.id, event: { type: 'polled' as const, issue, decision } }))
    },
    at,
    (a) => {
      // An idle poll (same viewer, cursor unmoved) changes nothing here: state.json is not rewritten.
      const changed = a.viewerId !== plan.viewer.id || a.cursor !== plan.cursorAfter || !!a.lastPollAt || !!a.lastPollError
      Object.assign(a, { viewerId: plan.viewer.id, cursor: plan.cursorAfter, lastPollAt: undefined, lastPollError: undefined })
      return changed
    },
  )
  writePollHealth(ctx.paths.home, ctx.agent.name, { at: at.toISOString() })
  return { ...plan, requests: res.requests, watched: res.watched, watch }
}

/** Remember a failed poll (for status) without touching the cursor (nor state.json: lib/poll-health.ts). */
export function recordPollError(ctx: AgentContext, code: string, message: string): void {
  if (ctx.dryRun) return
  writePollHealth(ctx.paths.home, ctx.agent.name, { at: ctx.now().toISOString(), error: { code, message } })
}

/** Poll backoff after `failures` consecutive failures: 30 s doubling, capped at 5 min. */
export const pollBackoffMs = (failures: number): number => backoffMs(failures, POLL_RETRY)

/** Per agent: when its next poll may happen after failures in a row (the driver keeps one map). */
export type PollBackoff = Map<string, { until: number; failures: number }>

/**
 * Poll unless the agent is backing off; a failure backs off (until Linear's reset for a rate
 * limit, 30 s doubling otherwise), is logged with its fix and remembered for status.
 */
export async function pollWithBackoff(
  ctx: AgentContext,
  backoff: PollBackoff,
  now: number,
): Promise<{ ok: true; plan: PollResult } | { ok: false; error: { code: string; message: string } }> {
  const name = ctx.agent.name
  const b = backoff.get(name)
  if (b && b.until > now) return { ok: false, error: { code: 'backoff', message: `backing off until ${new Date(b.until).toISOString()}` } }
  try {
    const plan = await pollAgent(ctx)
    backoff.delete(name)
    return { ok: true, plan }
  } catch (err) {
    const e = asFactoryError(err)
    const failures = (b?.failures ?? 0) + 1
    const resetAt = Number(e.details?.resetAt ?? 0)
    const until = e.code === 'tracker_rate_limited' && resetAt > now ? resetAt : now + pollBackoffMs(failures)
    backoff.set(name, { until, failures })
    ctx.log.error(`${name}: poll failed: ${e.describe()}`)
    ctx.log.info(`${name}: next poll not before ${new Date(until).toISOString()}`)
    try {
      recordPollError(ctx, e.code, e.message)
    } catch {}
    return { ok: false, error: { code: e.code, message: e.message } }
  }
}
