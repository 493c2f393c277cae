/**
 * The poll step: one tracker read, a pure plan of what it means (planPoll), then one atomic
 * state write that records the queued issues AND advances the cursor together (invariant 3:
 * the cursor never passes an issue that is not durably recorded).
 */
import type { AgentConfig } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { agentState, type AgentState, type IssueRecord, updateState, readState } from '../state.ts'
import { watchList } from '../lifecycle.ts'
import type { TrackerIssue, Viewer, WatchedIssue } from '../tracker/types.ts'
import { type IssueDecision, planIssue } from '../workflow.ts'

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

/** Newest Linear timestamp in a poll result (issue updatedAt or comment createdAt). */
export function newestTimestamp(issues: TrackerIssue[], floor: string | null): string | null {
  let out = floor
  for (const i of issues) {
    if (!out || i.updatedAt > out) out = i.updatedAt
    for (const c of i.comments) if (!out || c.createdAt > out) out = c.createdAt
  }
  return out
}

/** Decide, for each polled issue, whether to queue it; and where the cursor goes. Pure. */
export function planPoll(state: AgentState, viewer: Viewer, issues: TrackerIssue[], agent: AgentConfig): PollPlan {
  return {
    viewer,
    items: issues.map((issue) => ({ issue, decision: planIssue(state.issues[issue.id], issue, viewer.id, agent) })),
    cursorBefore: state.cursor,
    cursorAfter: newestTimestamp(issues, state.cursor),
  }
}

/** Record a poll plan in the agent's state (mutates `draft`): snapshots, queued records, cursor. */
export function applyPoll(draft: AgentState, plan: PollPlan, now: Date): IssueRecord[] {
  const queued: IssueRecord[] = []
  const at = now.toISOString()
  draft.viewerId = plan.viewer.id
  for (const { issue, decision } of plan.items) {
    const existing = draft.issues[issue.id]
    if (existing) {
      existing.snapshot = issue
      existing.title = issue.title
      existing.updatedAt = at
      if (decision.action === 'skip' && decision.reason === 'closed') existing.closedAt ??= at
    }
    if (decision.action !== 'queue') continue
    const record: IssueRecord = existing ?? {
      id: issue.id,
      identifier: issue.identifier,
      title: issue.title,
      phase: 'queued',
      snapshot: issue,
      runs: [],
      attempts: 0,
      updatedAt: at,
    }
    record.phase = 'queued'
    record.queuedAt = at
    record.lastError = undefined
    // A human asked again (or it came back to us): a fresh budget of attempts, no pending retry.
    Object.assign(record, { attempts: 0, nextRetryAt: undefined, recoveries: 0, releasedReason: undefined, closedAt: undefined })
    draft.issues[issue.id] = record
    queued.push(record)
  }
  draft.cursor = plan.cursorAfter
  draft.lastPollAt = at
  draft.lastPollError = undefined
  return queued
}

/** Poll the agent's issues and (unless dry-run) record them; returns the plan. Throws tracker errors. */
export async function pollAgent(ctx: AgentContext): Promise<PollPlan & { requests: number; watched: WatchedIssue[]; watch: string[] }> {
  const state = readState(ctx.paths.state)
  const cursor = state.agents[ctx.agent.name]?.cursor ?? null
  const watch = watchList(Object.values(state.agents[ctx.agent.name]?.issues ?? {}))
  const res = await ctx.tracker.poll(cursor, { watch })
  if (ctx.dryRun) {
    return {
      ...planPoll(agentState(structuredClone(state), ctx.agent.name), res.viewer, res.issues, ctx.agent),
      requests: res.requests,
      watched: res.watched,
      watch,
    }
  }
  const plan = updateState(ctx.paths.state, (draft) => {
    const agent = agentState(draft, ctx.agent.name)
    const p = planPoll(agent, res.viewer, res.issues, ctx.agent)
    applyPoll(agent, p, ctx.now())
    return p
  })
  return { ...plan, requests: res.requests, watched: res.watched, watch }
}

/** Remember a failed poll (for status) without touching the cursor. */
export function recordPollError(ctx: AgentContext, code: string, message: string): void {
  if (ctx.dryRun) return
  updateState(ctx.paths.state, (draft) => {
    agentState(draft, ctx.agent.name).lastPollError = { code, message, at: ctx.now().toISOString() }
  })
}
