/**
 * state.json: the factory's durable memory (cursor per agent, one record per issue, its runs).
 * Invariant "atomic-state": written atomically (temp file, fsync, rename) under a lock; a torn or corrupt
 * file is reported with its path and never silently reset.
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { z } from './zod.ts'
import { FactoryError } from './errors.ts'
import { lockSync } from './lock.ts'
import { PHASES, type PhaseEvent, transition } from './phases.ts'
import { fullRecord, type IssueSnapshot, slimRecord, slimSnapshot } from './slim.ts'
import { writeDurableSync } from './write-durable.ts'

export { type IssueSnapshot, slimSnapshot } from './slim.ts'

/** The state as written: every record slim (lib/slim.ts), whatever the in-memory record holds. */
function slimState(state: FactoryState): FactoryState {
  const agents = Object.entries(state.agents).map(([n, a]) => [n, { ...a, issues: mapValues(a.issues, slimRecord) }])
  return { ...state, agents: Object.fromEntries(agents) }
}
const mapValues = <T>(o: Record<string, T>, f: (v: T) => T) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]))

const runSchema = z.object({
  n: z.number(),
  startedAt: z.string(),
  engine: z.string().optional(),
  endedAt: z.string().optional(),
  status: z.enum(['running', 'success', 'failed', 'timeout', 'stalled', 'cancelled', 'no_changes']),
  summary: z.string().optional(),
  errorCode: z.string().optional(),
  sessionId: z.string().optional(),
  costUsd: z.number().optional(),
  usage: z.object({ inputTokens: z.number(), outputTokens: z.number(), cachedInputTokens: z.number().optional() }).optional(),
  /** Codex reports the thread's running total: kept to turn the next resumed run's total into a delta. */
  usageThreadTotal: z.object({ inputTokens: z.number(), outputTokens: z.number(), cachedInputTokens: z.number().optional() }).optional(),
  commit: z.string().optional(),
  commentId: z.string().optional(),
  /** createdAt of the newest human comment the run's prompt included. */
  commentsUpTo: z.string().optional(),
  logPath: z.string().optional(),
  /** agent_session: the user's replies this run was given (its prompt; empty on a session's first run). */
  prompts: z.array(z.string()).optional(),
  /** Their activity ids: a reply handed out again after this run took it is not taken twice. */
  promptIds: z.array(z.string()).optional(),
  /** Set once the report step finished (comment posted, issue moved). */
  reportedAt: z.string().optional(),
  prUrl: z.string().optional(),
  /** Links the runtime provider made for the run (lib/runtime/), shown in its summary. */
  runtimeUrls: z.array(z.object({ label: z.string(), url: z.string() })).optional(),
  /** The run failed and another attempt (a new run) was scheduled instead of a report. */
  retried: z.boolean().optional(),
  /** Never reported: a human asked again before it finished, so a new run took over. */
  abandoned: z.boolean().optional(),
})

const issueRecordSchema = z.preprocess(
  fullRecord,
  z.object({
    id: z.string(),
    identifier: z.string(),
    title: z.string(),
    // 'worktree' was a phase of its own before the state machine: it means claimed.
    phase: z.preprocess((p) => (p === 'worktree' ? 'claimed' : p), z.enum(PHASES)),
    /**
     * The issue as last polled, without its description and comments (state.json stays small): what
     * dispatch and status need between processes. The run reads the whole issue from the tracker.
     */
    snapshot: z.custom<IssueSnapshot>((v) => typeof v === 'object' && v !== null).transform(slimSnapshot),
    queuedAt: z.string().optional(),
    branch: z.string().optional(),
    worktree: z.string().optional(),
    /** The repository (repos[].url) the issue runs in: routed at its first claim, kept for every rerun (lib/route.ts). */
    repo: z.string().optional(),
    prUrl: z.string().optional(),
    sessionId: z.string().optional(),
    runs: z.array(runSchema).default([]),
    attempts: z.number().default(0),
    nextRetryAt: z.string().optional(),
    lastError: z.object({ code: z.string(), message: z.string(), fix: z.string().optional() }).optional(),
    /** Linear's clock when the factory first saw the issue outside an active state (comments after it count). */
    seenUpTo: z.string().optional(),
    /** The Linear agent session this issue runs for (agent_session mode). */
    agentSessionId: z.string().optional(),
    /** agent_session: the workspace of the session (the relay acts in it). */
    agentOrgId: z.string().optional(),
    /** agent_session: what Linear sent on `created` (the issue, comments, guidance formatted for an agent). */
    promptContext: z.string().optional(),
    /** agent_session: replies not given to a run yet (a live run takes them in the next run, right after it). */
    pendingPrompts: z.array(z.object({ id: z.string(), body: z.string(), at: z.string() })).optional(),
    /** Times a dead owner's run was resumed (invariant "one-live-owner": once, then escalate). */
    recoveries: z.number().optional(),
    /** Why the factory let go of the issue (phase released). */
    releasedReason: z.string().optional(),
    /** When a human cancelled it by hand (released, and held until a human comments or retries it). */
    cancelledAt: z.string().optional(),
    /** First time the issue was seen completed or canceled (worktree cleanup counts from here). */
    closedAt: z.string().optional(),
    worktreeRemovedAt: z.string().optional(),
    escalatedAt: z.string().optional(),
    updatedAt: z.string(),
  }),
)

const agentStateSchema = z.object({
  /** The newest Linear timestamp covered by a durably recorded poll (invariant "cursor-after-records"). */
  cursor: z.string().nullable().default(null),
  viewerId: z.string().optional(),
  /** Older files only: the poll's health is in $FACTORY_HOME/poll/<agent>.json now (lib/poll-health.ts). */
  lastPollAt: z.string().optional(),
  lastPollError: z.object({ code: z.string(), message: z.string(), at: z.string() }).optional(),
  issues: z.record(z.string(), issueRecordSchema).default({}),
})

export const stateSchema = z.object({
  version: z.literal(1),
  agents: z.record(z.string(), agentStateSchema).default({}),
})

export type FactoryState = z.infer<typeof stateSchema>
export type AgentState = z.infer<typeof agentStateSchema>
export type IssueRecord = z.infer<typeof issueRecordSchema>
export type RunRecord = z.infer<typeof runSchema>

const EMPTY: FactoryState = { version: 1, agents: {} }

/** The last parse of each state file and the file identity it came from (see readState). */
const parsedCache = new Map<string, { key: string; state: FactoryState }>()

/**
 * Read state.json (missing = empty); a corrupt file is a state_corrupt error naming the path. A
 * file unchanged since this process last parsed it (same inode, size, mtime and ctime: every write
 * renames a new file into place) is not read again: an idle tick asks for the state several times.
 */
export function readState(path: string): FactoryState {
  const key = fileKey(path)
  if (!key) return structuredClone(EMPTY)
  const cached = parsedCache.get(path)
  if (cached?.key === key) return structuredClone(cached.state)
  const text = readFileSync(path, 'utf8')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw corrupt(path, `not valid JSON (${(err as Error).message})`)
  }
  const parsed = stateSchema.safeParse(raw)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    throw corrupt(path, `unexpected shape at ${first?.path.join('.') || '(top)'}: ${first?.message}`)
  }
  parsedCache.set(path, { key, state: structuredClone(parsed.data) })
  return parsed.data
}

/** The identity of the file at `path` as readState's cache compares it, or undefined when there is none. */
function fileKey(path: string): string | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false })
  return st && `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}

function corrupt(path: string, why: string): FactoryError {
  return new FactoryError('state_corrupt', `${path} is corrupt: ${why}`, {
    fix: `inspect the file; restore it from ${path}.bak if present, or move it aside to start over (issues may then be picked up again)`,
  })
}

/**
 * Write state.json atomically (called under the state lock): temp file (every byte, fsync), rename,
 * fsync the directory. On a
 * full disk (or any write error) the temp file is removed and state.json and its .bak are left as
 * they were: a state_write_failed error names the path and the fix.
 */
export function writeStateAtomic(path: string, state: FactoryState): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  const text = `${JSON.stringify(slimState(state))}\n`
  try {
    writeDurableSync(tmp, text)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new FactoryError('state_write_failed', `could not write ${path} (${e.code ?? e.message}); the previous ${path} is kept`, {
      fix: e.code === 'ENOSPC' || e.code === 'EDQUOT' ? `free disk space in ${dirname(path)}` : `check that ${dirname(path)} is writable`,
      cause: err,
    })
  }
  if (existsSync(path)) {
    // Keep the previous good copy (the fix for a corrupt file names it) by hard link, so
    // state.json itself never disappears, not even for a moment.
    const bakTmp = `${path}.${process.pid}.bak.tmp`
    try {
      rmSync(bakTmp, { force: true })
      linkSync(path, bakTmp)
      renameSync(bakTmp, `${path}.bak`)
    } catch {}
  }
  renameSync(tmp, path)
  // Callers hold the state lock: what is at `path` now is what we wrote; the next read need not read it back.
  const key = fileKey(path)
  if (key) parsedCache.set(path, { key, state: stateSchema.parse(JSON.parse(text)) })
  try {
    const dfd = openSync(dirname(path), 'r')
    fsyncSync(dfd)
    closeSync(dfd)
  } catch {}
}

/** Read-modify-write state.json under its lock; `fn` mutates the draft and may return a value. */
export function updateState<T>(path: string, fn: (draft: FactoryState) => T): T {
  return withState(path, (draft) => ({ value: fn(draft), changed: true }))
}

/** Read state.json under its lock, let `fn` change the draft, write it back only when `fn` says it changed it. */
function withState<T>(path: string, fn: (draft: FactoryState) => { value: T; changed: boolean }): T {
  const lock = lockSync(`${path}.lock`, { staleMs: 30_000, waitMs: 15_000 })
  if (!lock) {
    throw new FactoryError('state_locked', `could not lock ${path}.lock within 15 s`, {
      fix: 'another factory process holds it; if none runs, delete the .lock file',
    })
  }
  try {
    const draft = readState(path)
    const { value, changed } = fn(draft)
    if (changed) writeStateAtomic(path, draft)
    return value
  } finally {
    lock.release()
  }
}

/** The agent's state, created empty when absent. */
export function agentState(state: FactoryState, agent: string): AgentState {
  state.agents[agent] ??= { cursor: null, issues: {} }
  return state.agents[agent]!
}

export interface RecordEvent {
  issueId: string
  event: PhaseEvent
}

export interface Applied {
  issueId: string
  event: PhaseEvent['type']
  /** The record after the event (unchanged when refused; undefined when there is none). */
  record: IssueRecord | undefined
  /** Why the state machine refused the event (e.g. the issue was released meanwhile). */
  refused?: string
}

/**
 * The one writer of issue records: apply each event through transition() and write state.json
 * once, together with `alsoAgent`'s changes to the agent's own fields (the poll's cursor moves
 * in the same write as the records it covers: invariant "cursor-after-records"). No write when
 * no event applied and `alsoAgent` returned false (invariant "small-state": an idle tick writes nothing).
 */
export function updateRecords(
  path: string,
  agent: string,
  events: RecordEvent[] | ((a: AgentState) => RecordEvent[]),
  now: Date,
  alsoAgent?: (a: AgentState) => boolean | void,
): Applied[] {
  return withState(path, (d) => {
    const a = agentState(d, agent)
    // A function decides against the file as it is under the lock (another process may have written since).
    const list = typeof events === 'function' ? events(a) : events
    const out = list.map(({ issueId, event }): Applied => {
      const t = transition(a.issues[issueId], event, now)
      if (!t.ok) return { issueId, event: event.type, record: a.issues[issueId] && structuredClone(a.issues[issueId]), refused: t.refused }
      a.issues[issueId] = t.record
      return { issueId, event: event.type, record: structuredClone(t.record) }
    })
    // `alsoAgent` returns false when it changed nothing (an idle poll: the cursor stays).
    const agentChanged = alsoAgent ? alsoAgent(a) !== false : false
    // Nothing applied and nothing else to record (an idle tick): no write.
    return { value: out, changed: agentChanged || out.some((x) => !x.refused) }
  })
}

/**
 * The one place records are deleted: `decide` picks, against the file as it is under the lock,
 * the ids of the agent's records to forget (closed issues past their grace: reconcile.ts). Writes
 * only when it removed something; returns the removed records.
 */
export function pruneRecords(path: string, agent: string, decide: (a: AgentState) => string[]): IssueRecord[] {
  return withState(path, (d) => {
    const a = d.agents[agent]
    if (!a) return { value: [], changed: false }
    const removed = decide(a).flatMap((id) => {
      const r = a.issues[id]
      if (!r) return []
      delete a.issues[id]
      return [r]
    })
    return { value: removed, changed: removed.length > 0 }
  })
}

/** One event for one issue (see updateRecords). */
export function updateRecord(path: string, agent: string, issueId: string, event: PhaseEvent, now: Date): Applied {
  return updateRecords(path, agent, [{ issueId, event }], now)[0]!
}

/** The agent's record of an issue (by id or identifier), if any. */
export function findRecord(state: FactoryState, agent: string, ref: string): IssueRecord | undefined {
  const issues = state.agents[agent]?.issues ?? {}
  return issues[ref] ?? Object.values(issues).find((r) => r.identifier === ref)
}
