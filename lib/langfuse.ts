/**
 * A run's Langfuse trace through Langfuse's public ingestion API (no SDK), imported by lib/run.ts only when
 * tracing is on. planTrace decides (pure); traceRun sends one batch at a run's end, a problem a warning.
 *
 * The API as checked (Langfuse's own definition, langfuse/langfuse fern/apis/server/definition/
 * ingestion.yml, and the server's zod schemas, packages/shared/src/server/ingestion/types.ts):
 * `POST {host}/api/public/ingestion`, Basic auth public key : secret key, body `{ batch }`, each
 * event `{ id, timestamp, type, body }`. `trace-create` upserts on body.id; `span-create` and
 * `generation-create` bodies take id, traceId, name, startTime, endTime, metadata, input, output,
 * level (DEBUG|DEFAULT|WARNING|ERROR), statusMessage; a generation adds model, usageDetails
 * (map of non-negative integers: input, output, total) and costDetails (map of non-negative numbers,
 * `total` in USD). Input errors are not a 4xx: the answer is 207 `{ successes: [{ id, status }],
 * errors: [{ id, status, message?, error? }] }`. The event id deduplicates events.
 *
 * Ids come from (agent, issue, run number): a resumed run or report upserts the same trace and
 * observations (invariant "idempotent-steps"); an event's id hashes its body, so the same content
 * sent twice is one event, and newer content is an update.
 */
import type { AgentContext } from './context.ts'
import { sha256Hex } from './hash.ts'
import { realSendDeps, sendBatch } from './langfuse-send.ts'
import type { LangfuseSettings } from './langfuse-settings.ts'
import type { Redactor } from './log.ts'
import type { IssueRecord } from './state.ts'

export const TRACE_STEPS = ['claim', 'worktree', 'engine', 'report'] as const
export type TraceStep = (typeof TRACE_STEPS)[number]

/** What run.ts notes while a run goes: the issue, the latest record, when each step started and ended. */
export interface RunNotes {
  issue?: { id: string; identifier: string; title: string }
  record?: IssueRecord
  steps: Partial<Record<TraceStep, { start: string; end: string }>>
  /** The step in progress (its end moves on when the next one starts). */
  open?: TraceStep
  /** The last step started: a failure that is not the engine's is put on it. */
  last?: TraceStep
}

/** What a trace says about one run. */
export interface RunFacts {
  agent: string
  issueId: string
  identifier: string
  title?: string
  runNumber: number
  engine: string
  model?: string
  /** The report's outcome (success, no_changes, failed), else the failure code, or skipped. */
  outcome: string
  /** The failure's message, on the step that failed. */
  error?: { step?: TraceStep; message: string }
  prUrl?: string
  summary?: string
  usage?: { inputTokens: number; outputTokens: number; cachedInputTokens?: number }
  costUsd?: number
  steps: RunNotes['steps']
}

export interface IngestionEvent {
  id: string
  timestamp: string
  type: 'trace-create' | 'span-create' | 'generation-create'
  body: Record<string, unknown>
}

/** Hex id of `parts` (32 characters: the shape of a W3C trace id, which Langfuse also accepts). */
const hexId = (...parts: (string | number)[]) => sha256Hex(JSON.stringify(['rose-factory', ...parts])).slice(0, 32)

/** The trace id of run `runNumber` of an issue for an agent: the same for every process that reports that run. */
export function traceId(agent: string, issueId: string, runNumber: number): string {
  return hexId('trace', agent, issueId, runNumber)
}

/** Every string in `v` through `redact` (keys are ours). */
function redactDeep<T>(v: T, redact: Redactor): T {
  if (typeof v === 'string') return redact(v) as T
  if (Array.isArray(v)) return v.map((x: unknown) => redactDeep(x, redact)) as T
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactDeep(x, redact)])) as T
  return v
}

/** The ingestion body for one run: a trace, a span per step (the engine's a generation with usage and cost). Pure. */
export function planTrace(facts: RunFacts, redact: Redactor, now: Date): { batch: IngestionEvent[] } {
  const id = traceId(facts.agent, facts.issueId, facts.runNumber)
  const spans = TRACE_STEPS.flatMap((s) => (facts.steps[s] ? [[s, facts.steps[s]] as const] : []))
  const start = spans.map(([, t]) => t.start).sort()[0] ?? now.toISOString()
  const end =
    spans
      .map(([, t]) => t.end)
      .sort()
      .at(-1) ?? start
  const failed = facts.error !== undefined
  const usage = facts.usage && {
    input: facts.usage.inputTokens,
    output: facts.usage.outputTokens,
    total: facts.usage.inputTokens + facts.usage.outputTokens,
    ...(facts.usage.cachedInputTokens !== undefined ? { cached_input: facts.usage.cachedInputTokens } : {}),
  }
  const metadata = {
    agent: facts.agent,
    issue: facts.identifier,
    run: facts.runNumber,
    engine: facts.engine,
    ...(facts.model ? { model: facts.model } : {}),
    outcome: facts.outcome,
    durationMs: Date.parse(end) - Date.parse(start),
    ...(usage ? { inputTokens: usage.input, outputTokens: usage.output } : {}),
    ...(facts.costUsd !== undefined ? { costUsd: facts.costUsd } : {}),
    ...(facts.prUrl ? { prUrl: facts.prUrl } : {}),
  }
  const trace = {
    id,
    timestamp: start,
    name: `${facts.identifier} run #${facts.runNumber}`,
    // Langfuse's sessions view groups the runs of one issue.
    sessionId: `${facts.agent}/${facts.identifier}`,
    tags: [facts.agent, facts.engine, facts.outcome],
    input: facts.title ?? facts.identifier,
    output: facts.error?.message ?? facts.summary ?? facts.outcome,
    metadata,
  }
  const observations = spans.map(([step, t]) => {
    const err = failed && facts.error!.step === step ? facts.error!.message : undefined
    const body: Record<string, unknown> = {
      id: hexId('observation', id, step).slice(0, 16),
      traceId: id,
      name: step,
      startTime: t.start,
      endTime: t.end,
      metadata: { durationMs: Date.parse(t.end) - Date.parse(t.start) },
      level: err ? 'ERROR' : 'DEFAULT',
      ...(err ? { statusMessage: err } : {}),
    }
    if (step !== 'engine') return { type: 'span-create' as const, body }
    return {
      type: 'generation-create' as const,
      body: {
        ...body,
        metadata: { ...(body.metadata as object), engine: facts.engine },
        ...(facts.model ? { model: facts.model } : {}),
        ...(usage ? { usageDetails: usage } : {}),
        ...(facts.costUsd !== undefined ? { costDetails: { total: facts.costUsd } } : {}),
        ...(facts.summary ? { output: facts.summary } : {}),
      },
    }
  })
  const events = [{ type: 'trace-create' as const, body: trace }, ...observations].map((e) => {
    const body = redactDeep(e.body, redact)
    return { id: hexId('event', e.type, JSON.stringify(body)), timestamp: now.toISOString(), type: e.type, body }
  })
  return { batch: events }
}

/** The facts of the run this process took part in, from its notes and its result. */
export function runFacts(
  ctx: AgentContext,
  notes: RunNotes,
  runNumber: number,
  outcome: string,
  error?: { code: string; message: string },
): RunFacts | undefined {
  const issue = notes.issue
  if (!issue) return undefined
  const run = notes.record?.runs.find((r) => r.n === runNumber)
  const engine = run?.engine ?? ctx.agent.engine
  const steps = { ...notes.steps }
  // A resumed report: the engine ran in an earlier process; its run record says when.
  if (!steps.engine && run?.endedAt) steps.engine = { start: run.startedAt, end: run.endedAt }
  return {
    agent: ctx.agent.name,
    issueId: issue.id,
    identifier: issue.identifier,
    title: issue.title,
    runNumber,
    engine,
    model: engine === 'claude' || engine === 'codex' ? ctx.agent[engine]?.model : undefined,
    outcome,
    // The engine's failures (engine_*, limit_*) belong to its generation, even when reported as a result.
    error: error && { step: /^(engine|limit)_/.test(error.code) && steps.engine ? 'engine' : notes.last, message: error.message },
    prUrl: run?.prUrl ?? notes.record?.prUrl,
    summary: run?.summary,
    usage: run?.usage,
    costUsd: run?.costUsd,
    steps,
  }
}

/** Send the run's trace (one batch); a failure or a refused event is a warning line, never the run's failure. */
export async function traceRun(ctx: AgentContext, settings: LangfuseSettings, facts: RunFacts, deps = realSendDeps): Promise<void> {
  const what = `${facts.identifier} run #${facts.runNumber}`
  const res = await sendBatch(settings, planTrace(facts, ctx.redact, ctx.now()), deps)
  if (!res.sent)
    ctx.log.warn(`${facts.identifier}: Langfuse trace of run #${facts.runNumber} not sent: ${res.problem}; the run is not affected`)
  else if (res.refused.length)
    ctx.log.warn(
      `${facts.identifier}: Langfuse refused ${res.refused.length} event(s) of the trace of ${what}: ${res.refused.map((e) => `${e.id} HTTP ${e.status}${e.message ? ` ${e.message}` : ''}`).join('; ')}`,
    )
  else ctx.log.debug(`${facts.identifier}: Langfuse trace of ${what} sent (${traceId(facts.agent, facts.issueId, facts.runNumber)})`)
}
