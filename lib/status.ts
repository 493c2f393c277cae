/** The status view: rows from state.json and the live locks, and a plain table for humans. */
import { join } from 'node:path'
import { inspectLock } from './lock.ts'
import { sanitizeKey } from './paths.ts'
import type { FactoryState } from './state.ts'

export interface StatusRow {
  agent: string
  identifier: string
  title: string
  phase: string
  /** Live owner of the issue lock, when a run holds it. */
  owner?: { pid: number; host: string; since: string; step?: string }
  runs: number
  lastRun?: { n: number; status: string; startedAt: string; endedAt?: string; costUsd?: number }
  prUrl?: string
  lastError?: { code: string; message: string }
}

/** One row per issue the factory knows, busiest first. */
export function statusRows(state: FactoryState, home: string, opts: { agent?: string; includeDone?: boolean } = {}): StatusRow[] {
  const rows: StatusRow[] = []
  for (const [agent, a] of Object.entries(state.agents)) {
    if (opts.agent && agent !== opts.agent) continue
    for (const r of Object.values(a.issues)) {
      if (!opts.includeDone && (r.phase === 'done' || r.phase === 'released')) continue
      const lock = inspectLock(join(home, 'locks', sanitizeKey(agent), `${sanitizeKey(r.identifier)}.lock`), 90_000)
      const last = r.runs.at(-1)
      rows.push({
        agent,
        identifier: r.identifier,
        title: r.title,
        phase: lock.owner && !lock.stale ? 'running' : r.phase,
        owner: lock.owner && !lock.stale ? { pid: lock.owner.pid, host: lock.owner.host, since: lock.owner.startedAt, step: lock.owner.note } : undefined,
        runs: r.runs.length,
        lastRun: last && { n: last.n, status: last.status, startedAt: last.startedAt, endedAt: last.endedAt, costUsd: last.costUsd },
        prUrl: r.prUrl,
        lastError: r.lastError,
      })
    }
  }
  const rank: Record<string, number> = { running: 0, claimed: 0, worktree: 0, reporting: 0, queued: 1, failed: 2, escalated: 3, done: 4, released: 5 }
  return rows.sort((x, y) => (rank[x.phase] ?? 9) - (rank[y.phase] ?? 9) || x.identifier.localeCompare(y.identifier))
}

/** A plain-text table of the rows, with each agent's poll health. */
export function renderStatus(rows: StatusRow[], state: FactoryState): string {
  const out: string[] = []
  for (const [name, a] of Object.entries(state.agents)) {
    out.push(`${name}: last poll ${a.lastPollAt ?? 'never'}${a.lastPollError ? `, FAILING: ${a.lastPollError.code} ${a.lastPollError.message}` : ''}; cursor ${a.cursor ?? '(none)'}`)
  }
  if (rows.length === 0) return `${out.join('\n')}${out.length ? '\n' : ''}no issues in flight (use --all to include done ones)\n`
  const table = rows.map((r) => [
    r.agent,
    r.identifier,
    r.phase + (r.owner ? ` pid ${r.owner.pid}${r.owner.step ? ` (${r.owner.step})` : ''}` : ''),
    r.lastRun ? `#${r.lastRun.n} ${r.lastRun.status}${r.lastRun.costUsd ? ` $${r.lastRun.costUsd.toFixed(2)}` : ''}` : '-',
    r.lastError ? `${r.lastError.code}: ${r.lastError.message.split('\n')[0]!.slice(0, 60)}` : (r.prUrl ?? ''),
  ])
  const head = ['AGENT', 'ISSUE', 'PHASE', 'LAST RUN', 'PR / ERROR']
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  return `${[...out, '', line(head), ...table.map(line)].join('\n')}\n`
}
