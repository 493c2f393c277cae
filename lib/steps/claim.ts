/**
 * The claim step: take the issue's ownership lock (pid, host, heartbeat), open (or resume) a run
 * in state.json, and move the issue to the team's started state unless it is there already.
 * The lock is what makes two drivers on one FACTORY_HOME never run an issue twice at once.
 */
import type { AgentContext } from '../context.ts'
import { FactoryError } from '../errors.ts'
import { inspectLock, type Lock, tryLock } from '../lock.ts'
import { safeJoin } from '../paths.ts'
import { agentState, type IssueRecord, readState, updateState } from '../state.ts'
import type { TrackerIssue, WorkflowState } from '../tracker/types.ts'
import { startedState } from '../workflow.ts'

/** A lock whose heartbeat is older than this (on another host) is abandoned. */
export const LOCK_STALE_MS = 90_000
/** How often a live owner refreshes its heartbeat. */
export const HEARTBEAT_MS = 15_000

/** The heartbeat interval: HEARTBEAT_MS, or ROSE_HEARTBEAT_MS when set (tests watch it beat in seconds). */
export function heartbeatMs(env: NodeJS.ProcessEnv): number {
  const ms = Number(env.ROSE_HEARTBEAT_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : HEARTBEAT_MS
}

/** Path of the issue's ownership lock, proven to stay under FACTORY_HOME/locks. */
export function issueLockPath(ctx: AgentContext, identifier: string): string {
  return `${safeJoin(ctx.paths.locks, ctx.agent.name, identifier)}.lock`
}

/** Take the issue's lock or fail with lock_held naming the live owner. Heartbeats until released. */
export function acquireIssueLock(ctx: AgentContext, identifier: string, note: string): Lock & { stop(): void } {
  const path = issueLockPath(ctx, identifier)
  const lock = tryLock(path, { staleMs: LOCK_STALE_MS, note })
  if (!lock) {
    const owner = inspectLock(path, LOCK_STALE_MS).owner
    throw new FactoryError(
      'lock_held',
      `${identifier} is being worked on by pid ${owner?.pid} on ${owner?.host} (since ${owner?.startedAt})`,
      {
        fix: 'wait for that run to finish; if that process is gone on another host, its lock expires after 90 s without heartbeat',
      },
    )
  }
  const timer = setInterval(() => lock.beat(), heartbeatMs(ctx.env))
  timer.unref?.()
  return {
    ...lock,
    stop() {
      clearInterval(timer)
      lock.release()
    },
  }
}

/** The issue to work on: state.json's snapshot when we have one (fresh from the poll), else a tracker read. */
export async function resolveIssue(
  ctx: AgentContext,
  ref: string,
  opts: { refresh?: boolean } = {},
): Promise<{ issue: TrackerIssue; viewerId: string }> {
  const agent = readState(ctx.paths.state).agents[ctx.agent.name]
  const record = agent && Object.values(agent.issues).find((r) => r.id === ref || r.identifier === ref)
  if (record && agent.viewerId && !opts.refresh) return { issue: record.snapshot, viewerId: agent.viewerId }
  const { issue, viewer } = await ctx.tracker.getIssue(ref)
  return { issue, viewerId: viewer.id }
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
  const resumesRun = !!current && !current.reportedAt
  return {
    // A rerun from In Review goes back to In Progress; any other started state is left alone.
    moveTo: target && issue.state.id !== target.id && (issue.state.type !== 'started' || /review/i.test(issue.state.name)) ? target : null,
    runNumber: resumesRun ? current!.n : (record?.runs.length ?? 0) + 1,
    resumesRun,
  }
}

/** Record the claim in state.json (mutating the run list) and return the record. */
export function recordClaim(ctx: AgentContext, issue: TrackerIssue, viewerId: string, plan: ClaimPlan): IssueRecord {
  return updateState(ctx.paths.state, (draft) => {
    const agent = agentState(draft, ctx.agent.name)
    agent.viewerId ??= viewerId
    const at = ctx.now().toISOString()
    const record: IssueRecord = agent.issues[issue.id] ?? {
      id: issue.id,
      identifier: issue.identifier,
      title: issue.title,
      phase: 'claimed',
      snapshot: issue,
      runs: [],
      attempts: 0,
      updatedAt: at,
    }
    record.snapshot = issue
    record.phase = 'claimed'
    record.updatedAt = at
    if (!plan.resumesRun) record.runs.push({ n: plan.runNumber, startedAt: at, status: 'running', engine: ctx.agent.engine })
    agent.issues[issue.id] = record
    return record
  })
}

/** Carry out the claim: record it, then move the issue (idempotent: a re-run finds it moved). */
export async function claimIssue(
  ctx: AgentContext,
  issue: TrackerIssue,
  viewerId: string,
): Promise<{ plan: ClaimPlan; record?: IssueRecord; issue: TrackerIssue }> {
  const record = readState(ctx.paths.state).agents[ctx.agent.name]?.issues[issue.id]
  const plan = planClaim(issue, record)
  if (ctx.dryRun) return { plan, issue }
  const moved = plan.moveTo ? { ...issue, state: plan.moveTo } : issue
  const updated = recordClaim(ctx, moved, viewerId, plan)
  if (plan.moveTo) {
    await ctx.tracker.moveIssue(issue.id, plan.moveTo.id)
    ctx.log.info(`${issue.identifier}: moved to ${plan.moveTo.name}`)
  }
  return { plan, record: updated, issue: moved }
}
