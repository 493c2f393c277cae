/**
 * The claim step: open (or resume) a run for an issue that is the agent's, and move the issue to
 * the team's started state unless it is there already. The caller holds the issue's ownership
 * lock (lock.ts), which is what makes two drivers on one FACTORY_HOME never run an issue twice.
 */
import type { AgentContext } from '../context.ts'
import { FactoryError } from '../errors.ts'
import { acquireIssueLock, heartbeatMs, issueLockPath } from '../lock.ts'
import type { PhaseEvent } from '../phases.ts'
import { lastCommentsUpTo } from '../prompt.ts'
import { findRecord, type IssueRecord, readState } from '../state.ts'
import type { TrackerIssue, WorkflowState } from '../tracker/types.ts'
import { isOurs, startedState } from '../workflow.ts'

/** Path of the issue's ownership lock for this agent. */
export function lockPathFor(ctx: AgentContext, identifier: string): string {
  return issueLockPath(ctx.paths.locks, ctx.agent.name, identifier)
}

/** Take the issue's ownership lock for a step run by hand or by the runner (lock_held when a live owner has it). */
export function lockIssue(ctx: AgentContext, identifier: string, note: string): ReturnType<typeof acquireIssueLock> {
  return acquireIssueLock(lockPathFor(ctx, identifier), identifier, note, heartbeatMs(ctx.env))
}

/**
 * The issue to work on, read whole from the tracker (one request: description and comments are
 * not kept in state.json), with the agent's record of it.
 */
export async function resolveIssue(
  ctx: AgentContext,
  ref: string,
): Promise<{ issue: TrackerIssue; viewerId: string; record?: IssueRecord }> {
  const state = readState(ctx.paths.state)
  const known = findRecord(state, ctx.agent.name, ref)
  // Every comment since the last run is read (paged), not only the snapshot's newest page.
  const { issue, viewer } = await ctx.tracker.getIssue(ref, { commentsSince: known ? (lastCommentsUpTo(known) ?? null) : null })
  return { issue, viewerId: viewer.id, record: findRecord(state, ctx.agent.name, issue.id) ?? known }
}

export interface ClaimPlan {
  /** The state to move to, or null when the issue is already in a started state. */
  moveTo: WorkflowState | null
  /** Run number: a new one, or the unfinished one to resume after a crash. */
  runNumber: number
  resumesRun: boolean
}

/** Decide the claim: which state to move to and which run number this is. Pure. */
export function planClaim(issue: TrackerIssue, record: IssueRecord | undefined): ClaimPlan {
  const target = startedState(issue.team.states)
  const current = record?.runs.at(-1)
  const resumesRun = !!current && !current.reportedAt && !current.abandoned
  return {
    // A rerun from In Review goes back to In Progress; any other started state is left alone.
    moveTo: target && issue.state.id !== target.id && (issue.state.type !== 'started' || /review/i.test(issue.state.name)) ? target : null,
    runNumber: resumesRun ? current!.n : (record?.runs.length ?? 0) + 1,
    resumesRun,
  }
}

export interface Claimed {
  plan: ClaimPlan
  /** The issue as it is now (moved). */
  issue: TrackerIssue
  /** The event for the state machine (the caller records it). */
  event: Extract<PhaseEvent, { type: 'claimed' }>
}

/**
 * Carry out the claim: refuse an issue that is not the agent's (not_assigned), move it to the
 * started state. Returns what it did; the caller records the event. A crash between the move and
 * the record is harmless: the re-run finds the issue started and opens the same run number.
 */
export async function claimIssue(
  ctx: AgentContext,
  issue: TrackerIssue,
  viewerId: string,
  record: IssueRecord | undefined,
): Promise<Claimed> {
  // agent_session: the session is the request (a mention starts one on an issue delegated to nobody).
  if (!record?.agentSessionId && !isOurs(issue, viewerId)) {
    throw new FactoryError('not_assigned', `${issue.identifier} is not assigned or delegated to this agent's Linear user`, {
      fix: `assign or delegate ${issue.identifier} to the agent user in Linear, then claim it again`,
    })
  }
  const plan = planClaim(issue, record)
  // agent_session: a session on an issue delegated to nobody (a mention) makes the agent its delegate.
  const delegate = !!record?.agentSessionId && !issue.delegateId
  const moved = { ...issue, ...(plan.moveTo ? { state: plan.moveTo } : {}), ...(delegate ? { delegateId: viewerId } : {}) }
  const event = {
    type: 'claimed' as const,
    issue: moved,
    runNumber: plan.runNumber,
    resumes: plan.resumesRun,
    engine: ctx.agent.engine,
    // Several repositories: the routed one (the caller's context carries it), kept for every rerun.
    ...(ctx.agent.repos.length > 1 ? { repo: ctx.agent.repo.url } : {}),
  }
  if (ctx.dryRun) return { plan, issue: moved, event }
  if (delegate) {
    await ctx.tracker.delegateIssue(issue.id, viewerId)
    ctx.log.info(`${issue.identifier}: delegated to the agent (it had no delegate)`)
  }
  if (plan.moveTo) {
    await ctx.tracker.moveIssue(issue.id, plan.moveTo.id)
    ctx.log.info(`${issue.identifier}: moved to ${plan.moveTo.name}`)
  }
  return { plan, issue: moved, event }
}
