/**
 * One issue through every step, in one process that holds the issue's lock throughout:
 * claim -> worktree -> run-engine -> report. The driver runs this in a child process per issue,
 * so one run crashing cannot take the loop down. Each step resumes what a crashed run left.
 */
import type { AgentContext } from './context.ts'
import { acquireIssueLock, claimIssue, resolveIssue } from './claim.ts'
import { runEngineStep } from './engine-step.ts'
import type { Engine } from './engines/types.ts'
import { asFactoryError, type ErrorCode, FactoryError } from './errors.ts'
import { COMMENT_MARKER } from './prompt.ts'
import { reportRun, type ReportPlan } from './report.ts'
import { agentState, readState, updateState } from './state.ts'
import { ensureWorktree } from './workspace.ts'
import { stableUuid } from './workflow.ts'

export interface RunIssueOptions {
  fetch: boolean
  repoRoot?: string
  signal?: AbortSignal
  engine?: Engine
  refresh?: boolean
}

export type RunIssueResult = { ok: true; identifier: string; outcome: ReportPlan['outcome']; runNumber: number } | { ok: false; identifier: string; error: FactoryError; runNumber?: number }

/** Run one issue end to end; failures come back as values (and are recorded and explained). */
export async function runIssue(ctx: AgentContext, ref: string, opts: RunIssueOptions): Promise<RunIssueResult> {
  let identifier = ref
  let runNumber: number | undefined
  let lock: ReturnType<typeof acquireIssueLock> | undefined
  let issueId: string | undefined
  try {
    const resolved = await resolveIssue(ctx, ref, { refresh: opts.refresh })
    const viewerId = resolved.viewerId
    let issue = resolved.issue
    identifier = issue.identifier
    issueId = issue.id
    lock = acquireIssueLock(ctx, issue.identifier, 'claim')
    const claim = await claimIssue(ctx, issue, viewerId)
    const { plan, record: claimed } = claim
    issue = claim.issue
    runNumber = plan.runNumber
    lock.beat('worktree')
    setPhase(ctx, issue.id, 'worktree')
    const wt = await ensureWorktree(ctx, issue, { fetch: opts.fetch, repoRoot: opts.repoRoot })
    updateState(ctx.paths.state, (d) => {
      const r = agentState(d, ctx.agent.name).issues[issue.id]
      if (r) Object.assign(r, { branch: wt.branch, worktree: wt.path })
    })
    let record = readState(ctx.paths.state).agents[ctx.agent.name]!.issues[issue.id] ?? claimed!
    const current = record.runs.find((r) => r.n === plan.runNumber)
    if (!current || current.status === 'running') {
      lock.beat('engine')
      const result = await runEngineStep(ctx, { issue, record, runNumber: plan.runNumber, viewerId, worktree: wt, signal: opts.signal, engine: opts.engine })
      if (opts.signal?.aborted) {
        // Stopped by the operator (Ctrl-C): not the engine's failure. Put the run back so the next
        // start resumes it under the same run number, and report nothing.
        updateState(ctx.paths.state, (d) => {
          const r = agentState(d, ctx.agent.name).issues[issue.id]
          const run = r?.runs.find((x) => x.n === plan.runNumber)
          if (run) Object.assign(run, { status: 'running', endedAt: undefined, summary: undefined, errorCode: undefined })
          if (r) r.phase = 'queued'
        })
        return { ok: false, identifier, runNumber, error: new FactoryError('engine_cancelled', `${issue.identifier}: stopped by signal; run #${plan.runNumber} is queued again`) }
      }
      ctx.log.info(`${issue.identifier}: engine ${result.status}${result.errorCode ? ` (${result.errorCode})` : ''}: ${result.summary.split('\n')[0]?.slice(0, 200)}`)
      record = readState(ctx.paths.state).agents[ctx.agent.name]!.issues[issue.id]!
    } else {
      ctx.log.info(`${issue.identifier}: run #${plan.runNumber} already has an engine result (${current.status}); reporting it`)
    }
    lock.beat('report')
    const report = await reportRun(ctx, { issue, record, runNumber: plan.runNumber, worktree: wt.path, branch: wt.branch })
    if (report.outcome === 'failed') {
      const run = readState(ctx.paths.state).agents[ctx.agent.name]?.issues[issue.id]?.runs.find((r) => r.n === plan.runNumber)
      const code = (run?.errorCode ?? 'engine_failed') as ErrorCode
      return { ok: false, identifier, runNumber, error: new FactoryError(code, `run #${plan.runNumber} ${run?.status ?? 'failed'}: ${(run?.summary ?? '').split('\n')[0]}`) }
    }
    return { ok: true, identifier, outcome: report.outcome, runNumber: plan.runNumber }
  } catch (err) {
    const error = asFactoryError(err)
    ctx.log.error(`${identifier}: ${error.describe()}`)
    if (issueId && lock && !ctx.dryRun) await recordFailure(ctx, issueId, runNumber, error)
    return { ok: false, identifier, error, runNumber }
  } finally {
    lock?.stop()
  }
}

function setPhase(ctx: AgentContext, issueId: string, phase: 'worktree' | 'running' | 'reporting'): void {
  updateState(ctx.paths.state, (d) => {
    const r = agentState(d, ctx.agent.name).issues[issueId]
    if (r) r.phase = phase
  })
}

/** Record a step failure and explain it on the issue (best effort; one comment per run). */
async function recordFailure(ctx: AgentContext, issueId: string, runNumber: number | undefined, error: FactoryError): Promise<void> {
  try {
    updateState(ctx.paths.state, (d) => {
      const r = agentState(d, ctx.agent.name).issues[issueId]
      if (!r) return
      r.phase = 'failed'
      r.lastError = { code: error.code, message: error.message.slice(0, 500) }
      const run = r.runs.find((x) => x.n === runNumber)
      if (run && !run.endedAt) Object.assign(run, { status: 'failed', endedAt: ctx.now().toISOString(), errorCode: error.code, summary: error.message.slice(0, 2000) })
    })
  } catch (err) {
    ctx.log.error(`could not record the failure in state.json: ${asFactoryError(err).message}`)
  }
  if (runNumber === undefined || error.code.startsWith('tracker_')) return
  const body = [`**Run #${runNumber} failed** in the factory (\`${error.code}\`).`, '', `> ${error.message.slice(0, 1500).split('\n').join('\n> ')}`, '', error.fix ? `Fix: ${error.fix}` : '', '', `_${COMMENT_MARKER} (${ctx.agent.name}, run #${runNumber}, failure)._`].join('\n')
  await ctx.tracker.createComment({ id: stableUuid(`rose-factory/${ctx.agent.name}/${issueId}/run/${runNumber}/failure`), issueId, body }).catch((err) => {
    ctx.log.warn(`could not post the failure comment: ${asFactoryError(err).message}`)
  })
}
