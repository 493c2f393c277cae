/**
 * What `GET /api/v1/state` answers (and the status page shows): per agent, what runs (pid, engine,
 * elapsed, cost so far), what is queued in dispatch order, what retries (when, last error), what
 * is escalated, failed or cancelled, the recent runs with their PR links, the poll's health and
 * Linear's rate limit when one is recorded. Read from the files only (state.json, locks, poll/,
 * ratelimit/), so a process that owns no loop answers the same as the loop itself.
 */
import { repoName } from './route.ts'
import { join } from 'node:path'
import { layout, sanitizeKey } from './paths.ts'
import { fileRateGate } from './ratelimit.ts'
import { type IssueRecord, readState } from './state.ts'
import { agentHealth, statusRows, type StatusRow } from './status.ts'
import { dispatchOrder } from './workflow.ts'

/** What the config says of each agent, when it is known. */
export type AgentFacts = Record<string, { engine: string; mode?: string }>

export interface IssueItem {
  identifier: string
  title: string
  linearState?: string
  url?: string
  phase: string
  prUrl?: string
  /** The repository it runs in (agents with several; owner/name or the URL). */
  repo?: string
  attempts: number
  lastError?: { code: string; message: string; fix?: string }
}

export interface RecentRun {
  identifier: string
  title: string
  n: number
  state: string
  engine?: string
  startedAt: string
  endedAt?: string
  costUsd?: number
  prUrl?: string
  linearState?: string
  repo?: string
}

export interface AgentView {
  engine?: string
  poll: { cursor: string | null; lastPollAt?: string; lastPollError?: { code: string; message: string; at: string } }
  /** Linear's rate limit as recorded by any process of the agent: requests wait until then. */
  rateLimit: { limitedUntil: string } | null
  /** agent_session agents: the relay connection (not recorded by this version: null means unknown). */
  relay: { connected: boolean | null } | null
  running: (IssueItem & {
    pid?: number
    host?: string
    step?: string
    run?: number
    engine?: string
    startedAt?: string
    elapsedMs?: number
    costUsd: number
  })[]
  queued: (IssueItem & { queuedAt?: string })[]
  retrying: (IssueItem & { nextRetryAt: string })[]
  escalated: (IssueItem & { escalatedAt?: string })[]
  failed: IssueItem[]
  cancelled: (IssueItem & { cancelledAt: string; releasedReason?: string })[]
  recent: RecentRun[]
}

export interface StateView {
  home: string
  at: string
  /** `loop`: this process runs the loop (start --port); `watch`: it only reads FACTORY_HOME (status --serve). */
  mode: 'loop' | 'watch'
  pid: number
  agents: Record<string, AgentView>
}

const RECENT = 20

function item(r: IssueRecord): IssueItem {
  return {
    identifier: r.identifier,
    title: r.title,
    linearState: r.snapshot.state?.name,
    url: r.snapshot.url,
    phase: r.phase,
    prUrl: r.prUrl,
    repo: r.repo && repoName({ url: r.repo }),
    attempts: r.attempts,
    lastError: r.lastError,
  }
}

/** The whole view of FACTORY_HOME `home` at `now`. */
export function stateView(home: string, opts: { mode: 'loop' | 'watch'; agents?: AgentFacts; now?: number }): StateView {
  const now = opts.now ?? Date.now()
  const state = readState(layout(home).state)
  const health = agentHealth(state, home)
  const names = [...new Set([...Object.keys(health), ...Object.keys(opts.agents ?? {})])].sort()
  const rows = statusRows(state, home, { includeDone: true })
  const agents: Record<string, AgentView> = {}
  for (const name of names) {
    const records = state.agents[name]?.issues ?? {}
    const mine = rows.filter((r) => r.agent === name)
    const rec = (row: StatusRow) => Object.values(records).find((r) => r.identifier === row.identifier)!
    const of = (group: StatusRow['group']) => mine.filter((r) => r.group === group).map((row) => ({ row, r: rec(row) }))
    const wait = fileRateGate(`${join(home, 'ratelimit', sanitizeKey(name))}.json`).waitMs(now)
    const facts = opts.agents?.[name]
    agents[name] = {
      engine: facts?.engine,
      poll: health[name] ?? { cursor: null },
      rateLimit: wait > 0 ? { limitedUntil: new Date(now + wait).toISOString() } : null,
      relay: facts?.mode === 'agent_session' ? { connected: null } : null,
      running: of('running').map(({ row, r }) => ({
        ...item(r),
        pid: row.owner?.pid,
        host: row.owner?.host,
        step: row.owner?.step,
        run: row.lastRun?.n,
        engine: row.lastRun?.engine ?? facts?.engine,
        startedAt: row.owner?.since,
        elapsedMs: row.owner ? Math.max(0, now - Date.parse(row.owner.since)) : undefined,
        costUsd: row.costUsd,
      })),
      queued: of('queued')
        .sort((a, b) => dispatchOrder(a.r.snapshot, b.r.snapshot))
        .map(({ r }) => ({ ...item(r), queuedAt: r.queuedAt })),
      retrying: of('retrying').map(({ r }) => ({ ...item(r), nextRetryAt: r.nextRetryAt! })),
      escalated: of('escalated').map(({ r }) => ({ ...item(r), escalatedAt: r.escalatedAt })),
      failed: of('failed').map(({ r }) => item(r)),
      cancelled: of('released')
        .filter(({ r }) => r.cancelledAt)
        .map(({ r }) => ({ ...item(r), cancelledAt: r.cancelledAt!, releasedReason: r.releasedReason })),
      recent: recentRuns(
        mine.map(rec),
        rows.filter((r) => r.agent === name),
      ),
    }
  }
  return { home, at: new Date(now).toISOString(), mode: opts.mode, pid: process.pid, agents }
}

/** The newest runs of the agent's issues, newest first; the last run of each issue in its state now (runState). */
function recentRuns(records: IssueRecord[], rows: StatusRow[]): RecentRun[] {
  const out = records.flatMap((r) =>
    r.runs.map((x, i) => ({
      identifier: r.identifier,
      title: r.title,
      n: x.n,
      state:
        i === r.runs.length - 1
          ? (rows.find((row) => row.identifier === r.identifier)?.lastRun?.state ?? x.status)
          : x.abandoned
            ? 'abandoned'
            : x.status,
      engine: x.engine,
      startedAt: x.startedAt,
      endedAt: x.endedAt,
      costUsd: x.costUsd,
      prUrl: x.prUrl ?? (x.reportedAt ? r.prUrl : undefined),
      linearState: r.snapshot.state?.name,
      repo: r.repo && repoName({ url: r.repo }),
    })),
  )
  return out.sort((a, b) => (b.endedAt ?? b.startedAt).localeCompare(a.endedAt ?? a.startedAt)).slice(0, RECENT)
}
