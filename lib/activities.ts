/**
 * The run as Linear shows it in the agent panel: engine events become agent activities
 * (assistant text -> `thought`, a tool call -> ephemeral `action`, its result -> `action` with
 * `result`), the engine's todo list becomes the session's `plan`, and the end is one final
 * `response`, `error` or `elicitation`. Bounded volume (agentActivityCreate is what rate-limits
 * busy agents): at most one non-final activity per interval (the latest waits and goes out when
 * the interval has passed), at most `maxActivities` per run, the final always. Ids are derived
 * from (session, run, seq), the final's from (session, run): a retried post cannot duplicate
 * (invariant "idempotent-writes"). Pure: the clock is an argument; activity-runner.ts posts.
 */
import { publicText, stableUuid } from './comments.ts'
import type { EngineEvent } from './engines/types.ts'
import type { ActivityContent, PlanItem } from './tracker/agent-session.ts'

export const ACTIVITY_DEFAULTS = { intervalMs: 3_000, maxActivities: 60 } as const

/** Longest texts posted, in characters. */
export const LIMITS = { result: 500, parameter: 300, thought: 2_000, final: 20_000 } as const

export type FinalKind = 'response' | 'error' | 'elicitation'

export type StreamPost =
  { kind: 'activity'; id: string; content: ActivityContent; ephemeral: boolean; final: boolean } | { kind: 'plan'; plan: PlanItem[] }

/** Terminal escape sequences (colors, cursor moves). */
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]/g
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** Terminal escapes and control characters (but newline and tab) removed, local paths cut to their last segment, at most `max` characters. */
export function cleanText(text: string, max: number): string {
  const clean = publicText(text.replace(/\r\n?/g, '\n').replace(ANSI, '').replace(CONTROL, '')).trim()
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

/** The part of a tool call's input worth showing: a JSON input's command, path, pattern, url or query, else the input. */
export function parameterOf(input: string): string {
  try {
    const o = JSON.parse(input) as Record<string, unknown>
    if (o && typeof o === 'object' && !Array.isArray(o)) {
      for (const key of ['command', 'file_path', 'notebook_path', 'path', 'pattern', 'url', 'query', 'description', 'subject'])
        if (typeof o[key] === 'string' && o[key]) return o[key] as string
    }
  } catch {}
  return input
}

/**
 * One engine event as an activity (pure); null when it shows nothing. An `action_result` needs the
 * parameter of its call (`parameter`, from the last call of that tool). Mid-run `error` events are
 * left out: the run's failure is posted once, as the final `error`.
 */
export function activityOf(
  e: EngineEvent,
  opts: { parameter?: string; redact?: (s: string) => string } = {},
): { content: ActivityContent; ephemeral: boolean } | null {
  const redact = opts.redact ?? ((s: string) => s)
  const clean = (text: string, max: number) => cleanText(redact(text), max)
  switch (e.kind) {
    case 'thought':
    case 'text': {
      const body = clean(e.text, LIMITS.thought)
      return body ? { content: { type: 'thought', body }, ephemeral: false } : null
    }
    case 'action':
      return { content: { type: 'action', action: e.tool, parameter: clean(parameterOf(e.input), LIMITS.parameter) }, ephemeral: true }
    case 'action_result': {
      const result = clean(e.output, LIMITS.result) || (e.isError ? 'failed' : 'done')
      const parameter = clean(opts.parameter ?? '', LIMITS.parameter)
      return { content: { type: 'action', action: e.tool, parameter, result: e.isError ? `Error: ${result}` : result }, ephemeral: false }
    }
    default:
      return null
  }
}

/** The id of activity `seq` of a run in a session ('final' for its final activity). */
export function activityId(sessionId: string, runKey: string, seq: number | 'final'): string {
  return stableUuid(`rose-factory/session/${sessionId}/run/${runKey}/activity/${seq}`)
}

export interface ActivityStream {
  /** An engine event in; the posts due now out (in order). */
  push(e: EngineEvent): StreamPost[]
  /** The waiting activity or plan, if its interval has passed. */
  flush(): StreamPost[]
  /** When flush() will have something to post (epoch ms); null when nothing waits. */
  nextFlushAt(): number | null
  /** The end of the run: the latest plan if it changed, then the final activity (always, unless stopped). */
  finish(kind: FinalKind, body: string): StreamPost[]
  /** Linear refused the session for good (userError): nothing more is posted, not even the final. */
  stop(reason: string): void
  readonly stopped: string | null
  /** Non-final activities posted so far, and those left out by the interval or the cap. */
  counts(): { posted: number; dropped: number; plans: number }
}

/** The coalescer of one run's activities in one session. */
export function activityStream(opts: {
  sessionId: string
  runKey: string
  intervalMs?: number
  maxActivities?: number
  now?: () => number
  redact?: (s: string) => string
}): ActivityStream {
  const interval = opts.intervalMs ?? ACTIVITY_DEFAULTS.intervalMs
  const max = opts.maxActivities ?? ACTIVITY_DEFAULTS.maxActivities
  const now = opts.now ?? Date.now
  const parameters = new Map<string, string>()
  let seq = 0
  let posted = 0
  let dropped = 0
  let lastAt = Number.NEGATIVE_INFINITY
  let pending: { content: ActivityContent; ephemeral: boolean } | null = null
  let plans = 0
  let planAt = Number.NEGATIVE_INFINITY
  let pendingPlan: PlanItem[] | null = null
  let lastPlan = ''
  let stopped: string | null = null
  let finished = false

  const activity = (a: { content: ActivityContent; ephemeral: boolean }): StreamPost => {
    posted++
    lastAt = now()
    return { kind: 'activity', id: activityId(opts.sessionId, opts.runKey, ++seq), ...a, final: false }
  }
  const plan = (items: PlanItem[]): StreamPost[] => {
    pendingPlan = null
    const key = JSON.stringify(items)
    if (key === lastPlan) return []
    lastPlan = key
    plans++
    planAt = now()
    return [{ kind: 'plan', plan: items }]
  }
  const flush = (): StreamPost[] => {
    if (stopped || finished) return []
    const out: StreamPost[] = []
    if (pendingPlan && now() - planAt >= interval) out.push(...plan(pendingPlan))
    if (pending && now() - lastAt >= interval) {
      out.push(activity(pending))
      pending = null
    }
    return out
  }

  return {
    push(e) {
      if (stopped || finished) return []
      if (e.kind === 'plan') {
        const items = e.items.map((i) => ({ content: cleanText((opts.redact ?? String)(i.content), LIMITS.parameter), status: i.status }))
        if (plans >= max) return []
        pendingPlan = items
        return flush()
      }
      if (e.kind === 'action') parameters.set(e.tool, e.input)
      const next = activityOf(e, {
        parameter: e.kind === 'action_result' ? parameterOf(parameters.get(e.tool) ?? '') : undefined,
        redact: opts.redact,
      })
      if (!next) return flush()
      if (posted >= max) {
        dropped++
        return flush()
      }
      if (pending) dropped++
      pending = next
      return flush()
    },
    flush,
    nextFlushAt() {
      if (stopped || finished) return null
      const times = [pending ? lastAt + interval : Infinity, pendingPlan ? planAt + interval : Infinity]
      const at = Math.min(...times)
      return Number.isFinite(at) ? Math.max(at, now()) : null
    },
    finish(kind, body) {
      if (stopped || finished) return []
      const out = pendingPlan ? plan(pendingPlan) : []
      if (pending) dropped++
      pending = null
      finished = true
      const text = cleanText((opts.redact ?? String)(body), LIMITS.final) || (kind === 'error' ? 'The run failed.' : 'Done.')
      out.push({
        kind: 'activity',
        id: activityId(opts.sessionId, opts.runKey, 'final'),
        content: { type: kind, body: text },
        ephemeral: false,
        final: true,
      })
      return out
    },
    stop(reason) {
      stopped ??= reason
      pending = null
      pendingPlan = null
    },
    get stopped() {
      return stopped
    },
    counts: () => ({ posted, dropped, plans }),
  }
}
