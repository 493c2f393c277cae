/** The status view: per agent what runs, waits, retries, failed or is escalated, from state.json and the live locks. */
import { repoName } from './route.ts'
import { printable } from './printable.ts'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { inspectLock, LOCK_STALE_MS } from './lock.ts'
import { type PollHealth, readPollHealth } from './poll-health.ts'
import { sanitizeKey } from './paths.ts'
import type { FactoryState, IssueRecord, RunRecord } from './state.ts'

export type StatusGroup = 'running' | 'queued' | 'retrying' | 'escalated' | 'failed' | 'released' | 'done' | 'idle'

export interface StatusRow {
  agent: string
  identifier: string
  title: string
  group: StatusGroup
  phase: string
  /** Live owner of the issue lock, when a run holds it. */
  owner?: { pid: number; host: string; since: string; step?: string }
  runs: number
  /** `status` as the engine left it; `state` what the run is now, consistent with the issue's group (runState). */
  lastRun?: {
    n: number
    status: string
    state: string
    startedAt: string
    endedAt?: string
    costUsd?: number
    errorCode?: string
    engine?: string
  }
  /** Cost of every run of this issue (engines that report cost). */
  costUsd: number
  attempts: number
  nextRetryAt?: string
  prUrl?: string
  /** The repository it runs in (agents with several: routed at its first claim). */
  repo?: string
  lastError?: { code: string; message: string }
  releasedReason?: string
  /** Cancelled by hand: held until a human comments or retries it. */
  cancelledAt?: string
}

const ORDER: StatusGroup[] = ['running', 'queued', 'retrying', 'escalated', 'failed', 'released', 'done', 'idle']

/** The status group of a record nobody is running right now. */
export function groupOf(r: IssueRecord): StatusGroup {
  switch (r.phase) {
    case 'queued':
      return r.nextRetryAt ? 'retrying' : 'queued'
    case 'escalated':
    case 'failed':
    case 'released':
    case 'done':
      return r.phase
    case 'seen':
      return 'idle'
    default:
      return 'running' // in flight without a live owner: the next tick resumes it
  }
}

/**
 * What a run is now, told consistently with its issue's group: an unreported run is `running`
 * (or `reporting`) only while a live owner holds the issue; otherwise it waits to be resumed
 * (queued, retrying) or was cut short. A reported run keeps the engine's status.
 */
export function runState(run: Pick<RunRecord, 'status' | 'reportedAt' | 'abandoned'>, group: StatusGroup): string {
  if (run.abandoned) return 'abandoned'
  if (run.reportedAt) return run.status
  const finished = run.status !== 'running'
  if (group === 'running') return finished ? 'reporting' : 'running'
  const what = finished ? `${run.status}, not reported` : 'interrupted'
  return group === 'queued' || group === 'retrying' ? `${what}; resumes` : what
}

/** One row per issue the factory knows, grouped (running first). */
export function statusRows(state: FactoryState, home: string, opts: { agent?: string; includeDone?: boolean } = {}): StatusRow[] {
  const rows: StatusRow[] = []
  for (const [agent, a] of Object.entries(state.agents)) {
    if (opts.agent && agent !== opts.agent) continue
    for (const r of Object.values(a.issues)) {
      const lock = inspectLock(join(home, 'locks', sanitizeKey(agent), `${sanitizeKey(r.identifier)}.lock`), LOCK_STALE_MS)
      const live = lock.owner && !lock.stale ? lock.owner : undefined
      const group: StatusGroup = live ? 'running' : groupOf(r)
      if (!opts.includeDone && (group === 'done' || group === 'released' || group === 'idle')) continue
      const last = r.runs.at(-1)
      rows.push({
        agent,
        identifier: r.identifier,
        title: r.title,
        group,
        phase: r.phase,
        owner: live ? { pid: live.pid, host: live.host, since: live.startedAt, step: live.note } : undefined,
        runs: r.runs.length,
        lastRun: last && {
          n: last.n,
          status: last.status,
          state: runState(last, group),
          startedAt: last.startedAt,
          endedAt: last.endedAt,
          costUsd: last.costUsd,
          errorCode: last.errorCode,
          engine: last.engine,
        },
        costUsd: r.runs.reduce((sum, x) => sum + (x.costUsd ?? 0), 0),
        attempts: r.attempts,
        nextRetryAt: r.nextRetryAt,
        prUrl: r.prUrl,
        repo: r.repo,
        lastError: r.lastError,
        releasedReason: r.releasedReason,
        cancelledAt: r.cancelledAt,
      })
    }
  }
  return rows.sort(
    (x, y) =>
      ORDER.indexOf(x.group) - ORDER.indexOf(y.group) ||
      x.agent.localeCompare(y.agent) ||
      x.identifier.localeCompare(y.identifier, 'en', { numeric: true }),
  )
}

/** A message's first line, whole: a path in it is never cut (the table is as wide as it needs). */
const firstLine = (text: string | undefined) => (text ?? '').split('\n')[0]!

function detail(r: StatusRow, now: number): string {
  const text = groupDetail(r, now)
  // Agents with several repositories: which one (the table's DETAIL is never cut).
  return r.repo ? `${text ? `${text} · ` : ''}in ${repoName({ url: r.repo })}` : text
}

function groupDetail(r: StatusRow, now: number): string {
  switch (r.group) {
    case 'running':
      return r.owner
        ? `${r.lastRun?.engine ?? 'engine'} pid ${r.owner.pid} on ${r.owner.host} since ${r.owner.since}${r.owner.step ? ` (${r.owner.step})` : ''}`
        : 'owner gone: resumed on the next tick'
    case 'retrying':
      return `attempt ${r.attempts + 1} in ${Math.max(0, Math.round((Date.parse(r.nextRetryAt!) - now) / 1000))} s; last error ${r.lastError?.code ?? '?'}: ${firstLine(r.lastError?.message)}`
    case 'escalated':
    case 'failed':
      return `${r.lastError?.code ?? r.lastRun?.errorCode ?? ''}: ${firstLine(r.lastError?.message)} (waits for a human comment or rose-factory retry)`
    case 'released':
      return r.cancelledAt ? `${r.releasedReason}; runs again on a human comment or rose-factory retry` : (r.releasedReason ?? '')
    case 'queued':
      return r.lastError ? `blocked: ${r.lastError.code}: ${firstLine(r.lastError.message)}` : ''
    case 'idle':
      return 'seen outside an active state; runs when it moves to one'
    default:
      return r.prUrl ?? ''
  }
}

/**
 * Each agent's cursor and poll health ($FACTORY_HOME/poll/<agent>.json; an older state.json's
 * fields when absent), including an agent that never recorded anything (its first poll failed).
 */
export function agentHealth(state: FactoryState, home: string): Record<string, { cursor: string | null } & PollHealth> {
  const polled = existsSync(join(home, 'poll'))
    ? readdirSync(join(home, 'poll')).flatMap((f) => (/^[^.].*\.json$/.test(f) ? [f.slice(0, -5)] : []))
    : []
  const names = [...new Set([...Object.keys(state.agents), ...polled])]
  return Object.fromEntries(
    names.map((n) => {
      const a = state.agents[n]
      return [n, { cursor: a?.cursor ?? null, ...readPollHealth(home, n, a) }]
    }),
  )
}

/** A plain-text table of the rows, with each agent's poll health. */
export function renderStatus(rows: StatusRow[], state: FactoryState, home: string, now = Date.now()): string {
  const out: string[] = []
  for (const [name, a] of Object.entries(agentHealth(state, home))) {
    out.push(
      printable(
        `${name}: last poll ${a.lastPollAt ?? 'never'}${a.lastPollError ? `, FAILING: ${a.lastPollError.code} ${a.lastPollError.message}` : ''}; cursor ${a.cursor ?? '(none)'}`,
      ),
    )
  }
  if (rows.length === 0)
    return `${out.join('\n')}${out.length ? '\n' : ''}nothing running, queued, retrying or escalated (--all includes done issues)\n`
  // Every cell escaped: identifiers and messages come from Linear and may carry control characters.
  const table = rows.map((r) =>
    [
      r.group.toUpperCase(),
      r.agent,
      r.identifier,
      r.lastRun ? `#${r.lastRun.n} ${r.lastRun.state}` : '-',
      r.costUsd > 0 ? `$${r.costUsd.toFixed(2)}` : '',
      detail(r, now),
    ].map((cell) => printable(cell)),
  )
  const head = ['STATE', 'AGENT', 'ISSUE', 'LAST RUN', 'COST', 'DETAIL']
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  return `${[...out, '', line(head), ...table.map(line)].join('\n')}\n`
}
