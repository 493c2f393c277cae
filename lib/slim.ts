/**
 * What state.json keeps of a record (invariant "small-state": an idle tick with 1,000 closed and
 * 100 open issues on record reads and writes under 1 MB; bench/state-size.ts). Every record's
 * snapshot drops the issue's description, comments, team workflow states and what the record
 * itself holds (id, identifier, title: restored on read). A settled record (nothing queued or
 * running) drops what only a run in progress needs; a closed one keeps only what status, cleanup,
 * pruning and a rerun after a reopen need. In memory nothing changes: this is how it is written.
 */
import type { TrackerIssue } from './tracker/types.ts'
import type { IssueRecord, RunRecord } from './state.ts'

/** What a record keeps of its issue: no description, no comments, no team workflow states. */
export type IssueSnapshot = Omit<TrackerIssue, 'description' | 'comments' | 'team'> & { team: Pick<TrackerIssue['team'], 'id' | 'key'> }

/** The snapshot of an issue as state.json keeps it (a whole TrackerIssue, or an older file's, is cut down). */
export function slimSnapshot(issue: IssueSnapshot | TrackerIssue): IssueSnapshot {
  const { description: _d, comments: _c, team, ...rest } = issue as Partial<TrackerIssue> & IssueSnapshot
  return (team ? { ...rest, team: { id: team.id, key: team.key } } : rest) as IssueSnapshot
}

const SETTLED = new Set(['done', 'failed', 'escalated', 'released', 'seen'])

/** A settled issue: no run queued or under way (the phases reconciliation and dispatch never touch). */
function settled(r: Pick<IssueRecord, 'phase'>): boolean {
  return SETTLED.has(r.phase)
}

/**
 * A run as a settled record keeps it: the PR link is the record's; only the newest reported run's
 * summary (the next prompt quotes it) and, of earlier runs, its first line (an escalation lists
 * them so). A closed issue's run keeps no report details (comment id, commit, usage, transcript
 * path, summary: all on Linear and GitHub already) and only the newest Codex thread total (the
 * next resumed run's delta, should it reopen); an open one keeps them for whoever looks.
 */
function slimRun(run: RunRecord, r: IssueRecord, keep: { summary?: RunRecord; thread?: RunRecord; closed: boolean }): RunRecord {
  const out = { ...run }
  if (out.prUrl === r.prUrl) delete out.prUrl
  if (keep.closed && keep.thread !== run) delete out.usageThreadTotal
  if (keep.closed) for (const k of ['summary', 'logPath', 'commit', 'commentId', 'usage'] as const) delete out[k]
  else if (keep.summary !== run && out.summary) out.summary = out.summary.split('\n')[0]!.slice(0, 200)
  return out
}

/** The record as state.json keeps it (see the module comment). */
export function slimRecord(r: IssueRecord): IssueRecord {
  const { id: _i, identifier: _k, title: _t, ...snap } = slimSnapshot(r.snapshot)
  if (!settled(r)) return { ...r, snapshot: snap as IssueSnapshot }
  const closed = !!r.closedAt
  // A closed issue is pruned after the grace: cleanup and pruning read its state, status its record.
  const snapshot = (closed ? { state: snap.state, team: snap.team } : { ...snap, url: undefined, labels: undefined }) as IssueSnapshot
  const keep = {
    summary: [...r.runs].reverse().find((x) => x.reportedAt),
    thread: [...r.runs].reverse().find((x) => x.usageThreadTotal),
    closed,
  }
  const out: IssueRecord = { ...r, snapshot, queuedAt: undefined, runs: r.runs.map((x) => slimRun(x, r, keep)) }
  if (!out.recoveries) delete out.recoveries
  if (!out.attempts) delete (out as Partial<IssueRecord>).attempts
  // Nothing reads a closed record's branch (the worktree step names it from the issue).
  if (closed) delete out.branch
  return out
}

/** A record as read back: the snapshot gets the record's id, identifier and title again. */
export function fullRecord(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object') return raw
  const r = raw as Omit<Partial<IssueRecord>, 'snapshot'> & { snapshot?: object }
  if (!r.snapshot || typeof r.snapshot !== 'object') return raw
  return { ...r, snapshot: { id: r.id, identifier: r.identifier, title: r.title, ...r.snapshot } }
}
