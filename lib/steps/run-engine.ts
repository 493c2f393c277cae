/**
 * The run-engine step: build the prompt from the issue and the human comments since the last
 * run, run the agent's engine in the worktree with a scrubbed env (invariant "no-secrets-in-reach"), and record the
 * result. The runner records it before anything else happens (so a crash after it never reruns the engine).
 */
import { join } from 'node:path'
import { type AgentConfig, agentSecretEnvs } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { crashPoint } from '../crash.ts'
import { createEngine } from '../engines/index.ts'
import { engineEnv } from '../engines/env.ts'
import { describeIsolation, isolationStatus } from '../engines/isolate.ts'
import { resolveMcpServers } from '../engines/mcp.ts'
import type { Engine, EngineEvent, EngineResult } from '../engines/types.ts'
import type { PhaseEvent } from '../phases.ts'
import { buildPrompt, buildSessionPrompt, humanComments, lastCommentsUpTo } from '../prompt.ts'
import type { IssueRecord, RunRecord } from '../state.ts'
import type { TrackerIssue } from '../tracker/types.ts'
import { safeJoin } from '../paths.ts'
import { prepareRuntime, type ProviderEntry } from '../runtime/index.ts'
import { issueLogDir, type WorktreePlan } from './worktree.ts'

export interface EnginePlan {
  prompt: string
  resume?: string
  commentsUpTo?: string
  logPath: string
  timeoutMs: number
  stallMs: number
}

/** Decide what the engine gets: prompt, session to resume, limits, log path. Pure. */
export function planEngineRun(
  ctx: AgentContext,
  issue: TrackerIssue,
  record: IssueRecord,
  runNumber: number,
  viewerId: string,
  branch: string,
): EnginePlan {
  const earlier = record.runs.filter((r) => r.n < runNumber)
  const previous = [...earlier].reverse().find((r) => r.reportedAt)
  const since = lastCommentsUpTo({ ...record, runs: earlier })
  const comments = humanComments(issue, viewerId, since, ctx.agent.tracker.allow_commenters)
  const last = previous ? { n: previous.n, summary: previous.summary } : undefined
  const run = record.runs.find((r) => r.n === runNumber)
  return {
    prompt: record.agentSessionId
      ? buildSessionPrompt({ issue, branch, promptContext: record.promptContext ?? '', replies: run?.prompts ?? [], previous: last })
      : buildPrompt({ issue, branch, comments, previous: last }),
    resume: previous ? record.sessionId : undefined,
    commentsUpTo: comments.at(-1)?.createdAt ?? since,
    // The path only: the engine creates the directory (a dry run writes nothing).
    logPath: join(safeJoin(ctx.paths.logs, ctx.agent.name, issue.identifier), `run-${runNumber}.log`),
    timeoutMs: ctx.agent.limits.timeout_minutes * 60_000,
    stallMs: ctx.agent.limits.stall_seconds * 1000,
  }
}

/** What the engine step did: the engine's result and the state machine event that records it. */
export interface EngineStepResult {
  result: EngineResult
  event: Extract<PhaseEvent, { type: 'engine_finished' }>
}

/** Run the engine for run `runNumber` in the worktree; returns its result (the caller records it). */
export async function runEngineStep(
  ctx: AgentContext,
  args: {
    issue: TrackerIssue
    record: IssueRecord
    runNumber: number
    viewerId: string
    worktree: WorktreePlan
    signal?: AbortSignal
    engine?: Engine
    /** The runtime providers to pick from (default: lib/runtime/registry.ts). */
    runtimeProviders?: readonly ProviderEntry[]
    onEvent?: (e: EngineEvent) => void
  },
): Promise<EngineStepResult> {
  const plan = planEngineRun(ctx, args.issue, args.record, args.runNumber, args.viewerId, args.worktree.branch)
  const engine = args.engine ?? (await createEngine(ctx.agent))
  ctx.log.info(
    `${args.issue.identifier}: run #${args.runNumber} with ${engine.name}${plan.resume ? ` (resuming ${plan.resume})` : ''}; transcript ${plan.logPath}`,
  )
  const isolation = isolationStatus(ctx.agent, ctx.env)
  if (engine.name !== 'console') ctx.log.info(describeIsolation(isolation))
  // Per-run limits: Claude enforces max turns itself (--max-turns); for the others a tool call counts as a turn.
  const limits = ctx.agent.limits
  const limitAbort = new AbortController()
  let actions = 0
  let limitHit: 'limit_max_turns' | undefined
  const signal = args.signal ? AbortSignal.any([args.signal, limitAbort.signal]) : limitAbort.signal
  issueLogDir(ctx, args.issue.identifier) // the logs directories, 0700
  // Before the engine: a failure throws runtime_prepare_failed, a failed attempt, and the engine never starts.
  const runtime = await prepareRuntime(
    ctx,
    {
      issueKey: args.issue.identifier,
      worktree: args.worktree.path,
      branch: args.worktree.branch,
      runNumber: args.runNumber,
      signal: args.signal,
    },
    args.runtimeProviders,
  )
  let result = await engine.run({
    prompt: plan.prompt,
    cwd: args.worktree.path,
    env: engineEnv(ctx.agent.engine, { ...ctx.env, ...runtime.env }, ctx.config.agents.flatMap(agentSecretEnvs), [
      ...ctx.agent.engine_env,
      ...Object.keys(runtime.env),
    ]),
    isolation: { mode: isolation.mode, agent: ctx.agent.name, factoryHome: ctx.home, bwrap: isolation.bwrap?.path },
    resume: plan.resume,
    signal,
    timeoutMs: plan.timeoutMs,
    stallMs: plan.stallMs,
    logPath: plan.logPath,
    redact: ctx.redact,
    mcpServers: resolveMcpServers(ctx.agent.mcp_servers, ctx.env),
    onEvent: (e) => {
      if (e.kind === 'started') crashPoint('during_engine')
      if (e.kind === 'action' && limits.max_turns && engine.name !== 'claude' && ++actions > limits.max_turns && !limitHit) {
        limitHit = 'limit_max_turns'
        limitAbort.abort()
      }
      args.onEvent?.(e)
    },
  })
  // The engine's text is the attacker's: hide every secret value once, here, before it reaches
  // state.json, the summary comment, the PR body or a log line.
  result = applyLimits({ ...result, summary: ctx.redact(result.summary) }, limits, limitHit, actions)
  return {
    result,
    event: {
      type: 'engine_finished',
      run: { ...runFields(result, plan, ctx.now()), ...(runtime.urls.length ? { runtimeUrls: runtime.urls } : {}) },
      sessionId: result.sessionId,
      threadUsage: engine.name === 'codex',
    },
  }
}

/** Name the limit that ended a run (max turns, max cost, wall time) in its error code and summary. */
export function applyLimits(
  result: EngineResult,
  limits: AgentConfig['limits'],
  limitHit: 'limit_max_turns' | undefined,
  actions: number,
): EngineResult {
  if (limitHit)
    return {
      ...result,
      status: 'failed',
      errorCode: limitHit,
      summary: `Stopped by limits.max_turns (${limits.max_turns}): ${actions} tool calls. ${result.summary}`,
    }
  if (result.status !== 'success' && /max[ _-]?turns/i.test(result.summary))
    return { ...result, errorCode: 'limit_max_turns', summary: `Stopped by the max turns limit. ${result.summary}` }
  const overBudget = result.status !== 'success' && /maximum budget/i.test(result.summary)
  if (limits.max_cost_usd !== undefined && ((result.costUsd ?? 0) > limits.max_cost_usd || overBudget)) {
    return {
      ...result,
      status: 'failed',
      errorCode: 'limit_max_cost',
      summary: `Over limits.max_cost_usd ($${(result.costUsd ?? 0).toFixed(4)} > $${limits.max_cost_usd}). ${result.summary}`,
    }
  }
  if (result.status === 'timeout')
    return { ...result, summary: `Stopped by limits.timeout_minutes (${limits.timeout_minutes} min wall time). ${result.summary}` }
  return result
}

function runFields(result: EngineResult, plan: EnginePlan, now: Date): Partial<RunRecord> {
  return {
    endedAt: now.toISOString(),
    status: result.status,
    summary: result.summary.slice(0, 20_000),
    errorCode: result.errorCode,
    sessionId: result.sessionId,
    costUsd: result.costUsd,
    usage: result.usage,
    commentsUpTo: plan.commentsUpTo,
    logPath: result.logPath,
  }
}
