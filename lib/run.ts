/**
 * One issue through every step, in one process that holds the issue's lock throughout:
 * claim -> worktree -> run-engine -> report, a straight line. Each step returns what it did; this
 * file hands that to the state machine (updateRecord) and keeps the record it gets back, so
 * nothing is re-read between steps. A failure is recorded as a `failed` event: the state machine
 * decides retry, escalation or a final failure; this file posts what a human must read.
 */
import { type AgentContext } from './context.ts'
import { STOPPING_NOTE } from './lock.ts'
import { crashPoint } from './crash.ts'
import type { Engine, EngineEvent } from './engines/types.ts'
import { asFactoryError, type ErrorCode, FactoryError, isErrorCode } from './errors.ts'
import { postEscalation, postFailure } from './escalate.ts'
import { langfuseSettings } from './langfuse-settings.ts'
import type { RunNotes, TraceStep } from './langfuse.ts'
import { killOrphanEngine, processStartTime } from './orphans.ts'
import { inPhase, type PhaseEvent } from './phases.ts'
import { planFailure } from './retry.ts'
import { type Applied, findRecord, type IssueRecord, readState, updateRecord } from './state.ts'
import { claimIssue, lockIssue, resolveIssue } from './steps/claim.ts'
import { type ReportPlan, reportRun } from './steps/report.ts'
import { runEngineStep } from './steps/run-engine.ts'
import { reportToSentry } from './sentry.ts'
import { STOPPED_IN_LINEAR } from './steps/intake.ts'
import { answerStop, sessionProgress } from './session-run.ts'
import { ensureWorktree } from './steps/worktree.ts'
import { repoName, withRepo } from './route.ts'
import { routeIssue, type Routed } from './steps/route.ts'
import { speak } from './voice.ts'

export interface RunIssueOptions {
  fetch: boolean
  repoRoot?: string
  /** The operator's stop (Ctrl-C / SIGTERM): the run is put back in the queue. */
  signal?: AbortSignal
  engine?: Engine
  /** Run only if the issue is still queued once the lock is held (the driver's children). */
  onlyQueued?: boolean
  /** How often to check whether reconciliation released the issue (ms). */
  releaseCheckMs?: number
}

export type RunIssueResult =
  | { ok: true; identifier: string; outcome: ReportPlan['outcome'] | 'skipped'; runNumber?: number; reason?: string }
  | { ok: false; identifier: string; error: FactoryError; runNumber?: number }

/** The run's error from its recorded engine result (code and first summary line). */
function runError(record: IssueRecord, n: number): FactoryError {
  const run = record.runs.find((r) => r.n === n)
  const code: ErrorCode = run?.errorCode && isErrorCode(run.errorCode) ? run.errorCode : 'engine_failed'
  return new FactoryError(code, `run #${n} ${run?.status ?? 'failed'}: ${(run?.summary ?? '').split('\n')[0]}`)
}

/**
 * Run one issue end to end; failures come back as values (and are recorded and explained). With
 * Langfuse set up (LANGFUSE_HOST and keys), the run's trace is sent once it is over, after the
 * lock is let go; otherwise nothing of it is built and lib/langfuse.ts is never imported.
 */
export async function runIssue(ctx: AgentContext, ref: string, opts: RunIssueOptions): Promise<RunIssueResult> {
  const langfuse = langfuseSettings(ctx.env)
  if (!langfuse) return runSteps(ctx, ref, opts)
  const notes: RunNotes = { steps: {} }
  const result = await runSteps(ctx, ref, opts, notes)
  markStep(notes, undefined, ctx.now())
  if (result.runNumber === undefined) return result
  try {
    const { runFacts, traceRun } = await import('./langfuse.ts')
    const facts = runFacts(
      ctx,
      notes,
      result.runNumber,
      result.ok ? result.outcome : result.error.code,
      result.ok ? undefined : result.error,
    )
    if (facts) await traceRun(ctx, langfuse, facts)
  } catch (err) {
    ctx.log.warn(`${result.identifier}: Langfuse trace not sent: ${asFactoryError(err).message}; the run is not affected`)
  }
  return result
}

/** Close the step in progress at `at` and start `step` (none: just close). */
function markStep(notes: RunNotes, step: TraceStep | undefined, at: Date): void {
  if (notes.open) notes.steps[notes.open]!.end = at.toISOString()
  notes.open = step
  if (step) notes.steps[(notes.last = step)] = { start: at.toISOString(), end: at.toISOString() }
}

/** The steps of runIssue, noting (when `notes` is given) the issue, the record and each step's times. */
async function runSteps(ctx: AgentContext, ref: string, opts: RunIssueOptions, notes?: RunNotes): Promise<RunIssueResult> {
  let identifier = ref
  let runNumber: number | undefined
  let issueId: string | undefined
  let lock: ReturnType<typeof lockIssue> | undefined
  const released = new AbortController()
  let watcher: ReturnType<typeof setInterval> | undefined
  const record = (event: PhaseEvent): Applied => {
    const applied = updateRecord(ctx.paths.state, ctx.agent.name, issueId!, event, ctx.now())
    if (notes && applied.record) notes.record = applied.record
    return applied
  }
  const mark = (step?: TraceStep) => notes && markStep(notes, step, ctx.now())
  const skipped = (reason: string): RunIssueResult => ({ ok: true, identifier, outcome: 'skipped', runNumber, reason })
  try {
    const resolved = await resolveIssue(ctx, ref)
    const viewerId = resolved.viewerId
    let issue = resolved.issue
    identifier = issue.identifier
    issueId = issue.id
    if (notes) notes.issue = { id: issue.id, identifier, title: issue.title }
    try {
      lock = lockIssue(ctx, identifier, 'claim')
    } catch (err) {
      if (asFactoryError(err).code !== 'lock_held') throw err
      ctx.log.info(`${identifier}: ${asFactoryError(err).message}; not starting a second run`)
      return skipped('lock_held')
    }
    // The owner before us died: an engine it started may still work in the worktree. Never two at once.
    const orphans = killOrphanEngine(lock.replaced)
    if (orphans.length)
      ctx.log.warn(`${identifier}: killed the engine of the dead run (pid ${lock.replaced!.pid}) still running: ${orphans.join(' ')}`)
    // Read under the lock: a run that held it until now may have changed the record.
    const before = findRecord(readState(ctx.paths.state), ctx.agent.name, issue.id)
    if (opts.onlyQueued && before?.phase !== 'queued') {
      ctx.log.info(`${identifier}: no longer queued (${before?.phase ?? 'unknown'}); nothing to do`)
      return skipped(`phase ${before?.phase}`)
    }
    if (opts.signal?.aborted) {
      return {
        ok: false,
        identifier,
        error: new FactoryError('engine_cancelled', `${identifier}: stopped by signal before the run started`),
      }
    }
    // Once stopping, the lock says so and keeps saying so (the steps' notes do not replace it).
    const held = lock
    const beat = (note: string) => held.beat(opts.signal?.aborted ? STOPPING_NOTE : note)
    opts.signal?.addEventListener('abort', () => held.beat(STOPPING_NOTE), { once: true })
    // Reconciliation (any driver) marks the record released; stop the engine when it does.
    watcher = setInterval(() => {
      if (inPhase(findRecord(readState(ctx.paths.state), ctx.agent.name, issueId!), 'released')) released.abort()
    }, opts.releaseCheckMs ?? 1000)
    watcher.unref?.()

    // Several repositories: which one this issue runs in (recorded by the claim, kept for reruns).
    const routed = await routeIssue(ctx, issue, before)
    if (routed.kind === 'held') return await onUnrouted(ctx, identifier, issue.id, before, routed, record)
    if (ctx.agent.repos.length > 1) {
      ctx = withRepo(ctx, routed.repo)
      ctx.log.info(`${identifier}: in ${repoName(routed.repo)} (${routed.why})`)
    }

    mark('claim')
    const claim = await claimIssue(ctx, issue, viewerId, before)
    issue = claim.issue
    runNumber = claim.plan.runNumber
    let step = record(claim.event)
    if (step.refused) return await onReleased(ctx, step)
    crashPoint('after_claim')

    beat('worktree')
    mark('worktree')
    const wt = await ensureWorktree(ctx, issue, { fetch: opts.fetch, repoRoot: opts.repoRoot })
    step = record({ type: 'worktree_ready', path: wt.path, branch: wt.branch })
    mark()
    if (step.refused) return await onReleased(ctx, step)

    if (opts.signal?.aborted) return onOperatorStop(ctx, identifier, runNumber, record)
    if (inPhase(step.record, 'running')) {
      beat('engine')
      mark('engine')
      const progressTo = sessionProgress(ctx, step.record!, runNumber)
      const signal = opts.signal ? AbortSignal.any([opts.signal, released.signal]) : released.signal
      const engine = await runEngineStep(ctx, {
        issue,
        record: step.record!,
        runNumber,
        viewerId,
        worktree: wt,
        signal,
        engine: opts.engine,
        onEvent: (e) => {
          // With the lock, before any output: a run killed from here on leaves a record of its engine.
          if (e.kind === 'spawned')
            held.recordEngine({ pid: e.pid, pgid: e.pgid, tag: e.tag, startTime: processStartTime(e.pid) ?? undefined })
          progress(ctx, identifier, e)
          progressTo?.onEvent(e)
        },
      })
      held.recordEngine(undefined)
      await progressTo?.drain()
      // Stopped by the operator: not the engine's failure. The same run is queued again; nothing is posted.
      if (opts.signal?.aborted && !released.signal.aborted) return onOperatorStop(ctx, identifier, runNumber, record)
      step = record(engine.event)
      mark()
      if (inPhase(step.record, 'released')) return await onReleased(ctx, step)
      const { result } = engine
      ctx.log.info(
        `${identifier}: engine ${result.status}${result.errorCode ? ` (${result.errorCode})` : ''}: ${result.summary.split('\n')[0]?.slice(0, 200)}`,
      )
      if (result.status !== 'success') {
        const error = runError(step.record!, runNumber)
        // Retry or escalate without a per-run report: one comment when a human is needed. A final
        // failure (a limit, a timeout) is reported like a result, with the limit named.
        if (planFailure(step.record!.attempts, error.code, ctx.agent.limits.max_attempts, ctx.now()).kind !== 'final') {
          await onFailure(ctx, issueId, runNumber, error)
          return { ok: false, identifier, runNumber, error }
        }
      }
    } else {
      ctx.log.info(`${identifier}: run #${runNumber} already has an engine result; reporting it`)
    }

    beat('report')
    mark('report')
    const report = await reportRun(ctx, { issue, record: step.record!, runNumber, worktree: wt.path, branch: wt.branch })
    step = record(report.event!)
    if (step.refused) return await onReleased(ctx, step)
    if (report.plan.outcome === 'failed') return { ok: false, identifier, runNumber, error: runError(step.record!, runNumber) }
    return { ok: true, identifier, outcome: report.plan.outcome, runNumber }
  } catch (err) {
    const error = asFactoryError(err)
    if (issueId && lock && !ctx.dryRun && opts.signal?.aborted) {
      // A step cut short by the stop (systemd signals git too): a stop, not a failed attempt.
      ctx.log.warn(`${identifier}: ${error.code} while stopping: ${error.message}`)
      return onOperatorStop(ctx, identifier, runNumber, record)
    }
    ctx.log.error(`${identifier}: ${error.describe()}`)
    void reportToSentry(err, { agent: ctx.agent.name, issue: identifier })
    if (issueId && lock && !ctx.dryRun) await onFailure(ctx, issueId, runNumber, error)
    return { ok: false, identifier, error, runNumber }
  } finally {
    if (watcher) clearInterval(watcher)
    lock?.stop()
  }
}

/** Progress lines while the engine works (long runs must not look hung); the transcript has everything. */
function progress(ctx: AgentContext, identifier: string, e: EngineEvent): void {
  const one = (t: string) => t.replace(/\s+/g, ' ').trim().slice(0, 160)
  if (e.kind === 'spawned') ctx.log.debug(`${identifier}: engine process ${e.pid} (group ${e.pgid})`)
  else if (e.kind === 'started') ctx.log.info(`${identifier}: engine started${e.sessionId ? ` (session ${e.sessionId})` : ''}`)
  else if (e.kind === 'action') ctx.log.info(`${identifier}: ${e.tool} ${one(e.input)}`)
  else if (e.kind === 'action_result' && e.isError) ctx.log.info(`${identifier}: ${e.tool} failed: ${one(e.output)}`)
  else if (e.kind === 'error') ctx.log.warn(`${identifier}: engine error: ${one(e.message)}`)
  else if (e.kind === 'plan') ctx.log.debug(`${identifier}: plan ${e.items.map((i) => `[${i.status}] ${one(i.content)}`).join('; ')}`)
  else ctx.log.debug(`${identifier}: ${e.kind === 'action_result' ? `${e.tool} -> ${one(e.output)}` : one(e.text)}`)
}

/** Stopped by the operator (Ctrl-C, SIGTERM): the `stopped` event queues the same run again; nothing is posted. */
function onOperatorStop(
  ctx: AgentContext,
  identifier: string,
  runNumber: number | undefined,
  record: (event: PhaseEvent) => Applied,
): RunIssueResult {
  let note = `${identifier}: stopped by signal; ${runNumber === undefined ? 'it is' : `run #${runNumber} is`} queued again`
  try {
    const step = record({ type: 'stopped' })
    if (step.refused) note = `${identifier}: stopped by signal (${step.refused})`
  } catch (err) {
    note = `${identifier}: stopped by signal; could not record it: ${asFactoryError(err).message}`
  }
  ctx.log.info(note)
  return { ok: false, identifier, runNumber, error: new FactoryError('engine_cancelled', note) }
}

/** No repository rule takes the issue: it waits for a human (escalated), told once why and how to route it. */
async function onUnrouted(
  ctx: AgentContext,
  identifier: string,
  issueId: string,
  before: IssueRecord | undefined,
  routed: Extract<Routed, { kind: 'held' }>,
  record: (event: PhaseEvent) => Applied,
): Promise<RunIssueResult> {
  const error = routed.error
  ctx.log.warn(`${identifier}: ${error.describe()}`)
  if (ctx.dryRun) return { ok: false, identifier, error }
  const step = before ? record(routed.event) : undefined
  const to = step?.record ?? before ?? { id: issueId }
  await speak(ctx, to, routed.say).catch((err) => {
    ctx.log.error(`${identifier}: could not say which repositories it may run in: ${asFactoryError(err).message}`)
  })
  return { ok: false, identifier, error }
}

/** Reconciliation (or a stop in Linear) let go of the issue mid-run: the run is closed, the worktree kept, nothing reported. */
async function onReleased(ctx: AgentContext, step: Applied): Promise<RunIssueResult> {
  const r = step.record
  const identifier = r?.identifier ?? step.issueId
  ctx.log.warn(`${identifier}: stopped, ${r?.releasedReason ?? step.refused ?? 'released'}; worktree kept`)
  if (r && r.releasedReason === STOPPED_IN_LINEAR) await answerStop(ctx, r, 'running')
  return {
    ok: true,
    identifier,
    outcome: 'skipped',
    runNumber: r?.runs.at(-1)?.n,
    reason: `released: ${r?.releasedReason ?? step.refused}`,
  }
}

/** A failed attempt (engine or step): the state machine decides; this posts what a human must read. */
async function onFailure(ctx: AgentContext, issueId: string, runNumber: number | undefined, error: FactoryError): Promise<void> {
  let step: Applied
  try {
    step = updateRecord(
      ctx.paths.state,
      ctx.agent.name,
      issueId,
      // state.json and the comments built from lastError: a git or engine message may quote a token.
      {
        type: 'failed',
        error: { code: error.code, message: ctx.redact(error.message), fix: error.fix && ctx.redact(error.fix) },
        maxAttempts: ctx.agent.limits.max_attempts,
      },
      ctx.now(),
    )
  } catch (err) {
    ctx.log.error(`could not record the failure in state.json: ${asFactoryError(err).message}`)
    return
  }
  const r = step.record
  if (!r || step.refused) return
  if (inPhase(r, 'queued')) {
    const waitS = Math.round((Date.parse(r.nextRetryAt!) - ctx.now().getTime()) / 1000)
    ctx.log.warn(
      `${r.identifier}: attempt ${r.attempts} of ${ctx.agent.limits.max_attempts} failed (${error.code}); retrying in ${waitS} s`,
    )
  } else if (inPhase(r, 'escalated')) {
    await postEscalation(ctx, r, `${r.attempts} attempt${r.attempts === 1 ? '' : 's'} failed (last: ${error.code})`)
  } else if (runNumber !== undefined && !error.code.startsWith('tracker_')) {
    await postFailure(ctx, r, runNumber)
  }
}
