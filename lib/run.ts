/**
 * One issue through every step, in one process that holds the issue's lock throughout:
 * claim -> worktree -> run-engine -> report. The driver runs this in a child process per issue,
 * so one run crashing cannot take the loop down. Each step resumes what a crashed run left.
 * A failure is retried with backoff (a new run), escalated when attempts are used up, or
 * reported as final when retrying cannot help (limits, missing engine).
 */
import { acquireIssueLock, claimIssue, resolveIssue } from './steps/claim.ts'
import type { AgentContext } from './context.ts'
import { crashPoint } from './crash.ts'
import { runEngineStep } from './steps/run-engine.ts'
import type { Engine, EngineEvent } from './engines/types.ts'
import { asFactoryError, type ErrorCode, FactoryError } from './errors.ts'
import { escalate } from './escalate.ts'
import { planFailure } from './lifecycle.ts'
import { COMMENT_MARKER } from './prompt.ts'
import { type ReportPlan, reportRun } from './steps/report.ts'
import { agentState, readState, updateState } from './state.ts'
import { ensureWorktree } from './steps/worktree.ts'
import { stableUuid } from './workflow.ts'

export interface RunIssueOptions {
  fetch: boolean
  repoRoot?: string
  /** The operator's stop (Ctrl-C / SIGTERM): the run is put back in the queue. */
  signal?: AbortSignal
  engine?: Engine
  refresh?: boolean
  /** Run only if the issue is still queued once the lock is held (the driver's children). */
  onlyQueued?: boolean
  /** How often to check whether reconciliation released the issue (ms). */
  releaseCheckMs?: number
}

export type RunIssueResult =
  | { ok: true; identifier: string; outcome: ReportPlan['outcome'] | 'skipped'; runNumber?: number; reason?: string }
  | { ok: false; identifier: string; error: FactoryError; runNumber?: number }

function recordOf(ctx: AgentContext, issueId: string) {
  return readState(ctx.paths.state).agents[ctx.agent.name]?.issues[issueId]
}

/** Run one issue end to end; failures come back as values (and are recorded and explained). */
export async function runIssue(ctx: AgentContext, ref: string, opts: RunIssueOptions): Promise<RunIssueResult> {
  let identifier = ref
  let runNumber: number | undefined
  let lock: ReturnType<typeof acquireIssueLock> | undefined
  let issueId: string | undefined
  const released = new AbortController()
  let watcher: ReturnType<typeof setInterval> | undefined
  try {
    const resolved = await resolveIssue(ctx, ref, { refresh: opts.refresh })
    const viewerId = resolved.viewerId
    let issue = resolved.issue
    identifier = issue.identifier
    issueId = issue.id
    try {
      lock = acquireIssueLock(ctx, issue.identifier, 'claim')
    } catch (err) {
      if (asFactoryError(err).code !== 'lock_held') throw err
      ctx.log.info(`${identifier}: ${asFactoryError(err).message}; not starting a second run`)
      return { ok: true, identifier, outcome: 'skipped', reason: 'lock_held' }
    }
    if (opts.onlyQueued) {
      const phase = recordOf(ctx, issue.id)?.phase
      if (phase !== 'queued') {
        ctx.log.info(`${identifier}: no longer queued (${phase ?? 'unknown'}); nothing to do`)
        return { ok: true, identifier, outcome: 'skipped', reason: `phase ${phase}` }
      }
    }
    // Reconciliation (any driver) marks the record released; stop the engine when it does.
    watcher = setInterval(() => {
      if (recordOf(ctx, issue.id)?.phase === 'released') released.abort()
    }, opts.releaseCheckMs ?? 1000)
    watcher.unref?.()

    const claim = await claimIssue(ctx, issue, viewerId)
    issue = claim.issue
    runNumber = claim.plan.runNumber
    crashPoint('after_claim')
    lock.beat('worktree')
    setPhase(ctx, issue.id, 'worktree')
    const wt = await ensureWorktree(ctx, issue, { fetch: opts.fetch, repoRoot: opts.repoRoot })
    updateState(ctx.paths.state, (d) => {
      const r = agentState(d, ctx.agent.name).issues[issue.id]
      if (r) Object.assign(r, { branch: wt.branch, worktree: wt.path })
    })
    let record = recordOf(ctx, issue.id) ?? claim.record!
    const current = record.runs.find((r) => r.n === runNumber)
    if (!current || current.status === 'running') {
      lock.beat('engine')
      const signal = opts.signal ? AbortSignal.any([opts.signal, released.signal]) : released.signal
      const result = await runEngineStep(ctx, {
        issue,
        record,
        runNumber,
        viewerId,
        worktree: wt,
        signal,
        engine: opts.engine,
        onEvent: (e) => progress(ctx, identifier, e),
      })
      if (released.signal.aborted) return onReleased(ctx, issue.id, identifier, runNumber)
      if (opts.signal?.aborted) return onOperatorStop(ctx, issue.id, identifier, runNumber)
      ctx.log.info(
        `${identifier}: engine ${result.status}${result.errorCode ? ` (${result.errorCode})` : ''}: ${result.summary.split('\n')[0]?.slice(0, 200)}`,
      )
      record = recordOf(ctx, issue.id)!
      const run = record.runs.find((r) => r.n === runNumber)!
      if (run.status !== 'success') {
        const code = run.errorCode ?? 'engine_failed'
        const plan = planFailure(record.attempts, code, ctx.agent.limits.max_attempts, ctx.now())
        if (plan.kind !== 'final') {
          // Retry or escalate without the per-run failure report: one comment when a human is needed.
          await afterFailure(ctx, issue.id, runNumber, new FactoryError(code as ErrorCode, run.summary ?? 'engine failed'))
          return {
            ok: false,
            identifier,
            runNumber,
            error: new FactoryError(code as ErrorCode, `run #${runNumber} ${run.status}: ${(run.summary ?? '').split('\n')[0]}`),
          }
        }
      }
    } else {
      ctx.log.info(`${identifier}: run #${runNumber} already has an engine result (${current.status}); reporting it`)
    }
    lock.beat('report')
    const report = await reportRun(ctx, { issue, record, runNumber, worktree: wt.path, branch: wt.branch })
    if (report.outcome === 'failed') {
      const run = recordOf(ctx, issue.id)?.runs.find((r) => r.n === runNumber)
      const code = (run?.errorCode ?? 'engine_failed') as ErrorCode
      return {
        ok: false,
        identifier,
        runNumber,
        error: new FactoryError(code, `run #${runNumber} ${run?.status ?? 'failed'}: ${(run?.summary ?? '').split('\n')[0]}`),
      }
    }
    updateState(ctx.paths.state, (d) => {
      const r = agentState(d, ctx.agent.name).issues[issue.id]
      if (r) Object.assign(r, { attempts: 0, nextRetryAt: undefined, recoveries: 0 })
    })
    return { ok: true, identifier, outcome: report.outcome, runNumber }
  } catch (err) {
    const error = asFactoryError(err)
    ctx.log.error(`${identifier}: ${error.describe()}`)
    if (issueId && lock && !ctx.dryRun) await afterFailure(ctx, issueId, runNumber, error)
    return { ok: false, identifier, error, runNumber }
  } finally {
    if (watcher) clearInterval(watcher)
    lock?.stop()
  }
}

/** Progress lines while the engine works (long runs must not look hung); the transcript has everything. */
function progress(ctx: AgentContext, identifier: string, e: EngineEvent): void {
  const one = (t: string) => t.replace(/\s+/g, ' ').trim().slice(0, 160)
  if (e.kind === 'started') ctx.log.info(`${identifier}: engine started${e.sessionId ? ` (session ${e.sessionId})` : ''}`)
  else if (e.kind === 'action') ctx.log.info(`${identifier}: ${e.tool} ${one(e.input)}`)
  else if (e.kind === 'action_result' && e.isError) ctx.log.info(`${identifier}: ${e.tool} failed: ${one(e.output)}`)
  else if (e.kind === 'error') ctx.log.warn(`${identifier}: engine error: ${one(e.message)}`)
  else ctx.log.debug(`${identifier}: ${e.kind === 'action_result' ? `${e.tool} -> ${one(e.output)}` : one(e.text)}`)
}

function setPhase(ctx: AgentContext, issueId: string, phase: 'worktree' | 'running' | 'reporting'): void {
  updateState(ctx.paths.state, (d) => {
    const r = agentState(d, ctx.agent.name).issues[issueId]
    if (r && r.phase !== 'released') r.phase = phase
  })
}

/** Reconciliation let go of the issue mid-run: close the run, keep the worktree, report nothing. */
function onReleased(ctx: AgentContext, issueId: string, identifier: string, runNumber: number): RunIssueResult {
  const reason = updateState(ctx.paths.state, (d) => {
    const r = agentState(d, ctx.agent.name).issues[issueId]
    const run = r?.runs.find((x) => x.n === runNumber)
    if (run) Object.assign(run, { status: 'cancelled', errorCode: 'engine_cancelled', reportedAt: ctx.now().toISOString() })
    return r?.releasedReason
  })
  ctx.log.warn(`${identifier}: engine stopped, ${reason ?? 'released'}; worktree kept`)
  return { ok: true, identifier, outcome: 'skipped', runNumber, reason: `released: ${reason}` }
}

/** Stopped by the operator (Ctrl-C): not the engine's failure. Queue the same run again; report nothing. */
function onOperatorStop(ctx: AgentContext, issueId: string, identifier: string, runNumber: number): RunIssueResult {
  updateState(ctx.paths.state, (d) => {
    const r = agentState(d, ctx.agent.name).issues[issueId]
    const run = r?.runs.find((x) => x.n === runNumber)
    if (run) Object.assign(run, { status: 'running', endedAt: undefined, summary: undefined, errorCode: undefined })
    if (r && r.phase !== 'released') r.phase = 'queued'
  })
  return {
    ok: false,
    identifier,
    runNumber,
    error: new FactoryError('engine_cancelled', `${identifier}: stopped by signal; run #${runNumber} is queued again`),
  }
}

/**
 * A failed attempt (engine or step): close the run, then retry later (queued with nextRetryAt),
 * escalate once attempts are used up, or stop and explain on the issue when retrying cannot help.
 */
async function afterFailure(ctx: AgentContext, issueId: string, runNumber: number | undefined, error: FactoryError): Promise<void> {
  let plan: ReturnType<typeof planFailure> | undefined
  let identifier = issueId
  try {
    plan = updateState(ctx.paths.state, (d) => {
      const r = agentState(d, ctx.agent.name).issues[issueId]
      if (!r) return undefined
      identifier = r.identifier
      const p = planFailure(r.attempts, error.code, ctx.agent.limits.max_attempts, ctx.now())
      r.attempts = p.attempts
      r.lastError = { code: error.code, message: error.message.slice(0, 500) }
      const run = r.runs.find((x) => x.n === runNumber)
      if (run && !run.reportedAt) {
        const engineFailed = run.status !== 'running' && run.status !== 'success'
        if (engineFailed && p.kind !== 'final') {
          // The engine's attempt is over: the retry is a new run (new prompt, new comment id).
          Object.assign(run, { reportedAt: ctx.now().toISOString(), retried: p.kind === 'retry' })
        } else if (p.kind === 'final') {
          Object.assign(run, {
            status: run.status === 'running' ? 'failed' : run.status,
            endedAt: run.endedAt ?? ctx.now().toISOString(),
            errorCode: run.errorCode ?? error.code,
            summary: run.summary ?? error.message.slice(0, 2000),
            reportedAt: ctx.now().toISOString(),
          })
        }
        // Otherwise a step around the engine failed (claim, worktree, report): the retry resumes
        // this same run, so a finished engine result is reported, not produced again.
      }
      if (p.kind === 'retry') Object.assign(r, { phase: 'queued', nextRetryAt: p.nextRetryAt })
      else r.phase = 'failed'
      return p
    })
  } catch (err) {
    ctx.log.error(`could not record the failure in state.json: ${asFactoryError(err).message}`)
  }
  if (!plan) return
  if (plan.kind === 'retry') {
    ctx.log.warn(
      `${identifier}: attempt ${plan.attempts} of ${ctx.agent.limits.max_attempts} failed (${error.code}); retrying in ${Math.round(plan.delayMs / 1000)} s`,
    )
    return
  }
  if (plan.kind === 'escalate') {
    await escalate(ctx, issueId, `${plan.attempts} attempts failed (last: ${error.code})`)
    return
  }
  if (runNumber === undefined || error.code.startsWith('tracker_')) return
  const body = [
    `**Run #${runNumber} failed** in the factory (\`${error.code}\`).`,
    '',
    `> ${error.message.slice(0, 1500).split('\n').join('\n> ')}`,
    '',
    error.fix ? `Fix: ${error.fix}` : '',
    '',
    'Comment here to start another run.',
    '',
    `_${COMMENT_MARKER} (${ctx.agent.name}, run #${runNumber}, failure)._`,
  ].join('\n')
  await ctx.tracker
    .createComment({ id: stableUuid(`rose-factory/${ctx.agent.name}/${issueId}/run/${runNumber}/failure`), issueId, body })
    .catch((err) => {
      ctx.log.warn(`could not post the failure comment: ${asFactoryError(err).message}`)
    })
}
