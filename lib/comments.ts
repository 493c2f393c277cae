/**
 * Every body the factory posts on Linear, and its id. Ids are client-chosen UUIDs derived from
 * (agent, issue, run, kind), so a retried write cannot duplicate a comment (invariant
 * "idempotent-writes"). Bodies carry the plain-text marker (HTML comments do not survive
 * Linear) and never a local path of this machine.
 */
import type { RunRecord } from './state.ts'
import { sha256 } from './hash.ts'

/** Plain text the factory puts in every comment it posts. */
export const COMMENT_MARKER = 'Posted by rose-factory'

export type CommentKind = 'summary' | 'failure' | 'escalation'

export interface PlannedComment {
  id: string
  body: string
}

/** A UUID (v4 layout) derived from `seed`: the same run always writes with the same id. */
export function stableUuid(seed: string): string {
  const h = sha256(seed)
  h[6] = (h[6]! & 0x0f) | 0x40
  h[8] = (h[8]! & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`
}

/** A run as its comment ids see it: its number and when it started (what tells apart two records' run #1). */
export type RunRef = number | Pick<RunRecord, 'n' | 'startedAt'>

/**
 * The id of a run's comment of one kind on an issue. The run's startedAt is part of the seed: a
 * record pruned after its issue closed (state.ts pruneRecords) and created again starts over at
 * run #1, and must not reuse the first record's ids (Linear would keep the old comment and
 * report the new one as already posted).
 */
export function commentId(agent: string, issueId: string, run: RunRef, kind: CommentKind): string {
  const { n, startedAt } = typeof run === 'number' ? { n: run, startedAt: undefined } : run
  return stableUuid(`rose-factory/${agent}/${issueId}/run/${n}${startedAt ? `@${startedAt}` : ''}/${kind}`)
}

/** The id of a run's summary comment on an issue. */
export function summaryCommentId(agent: string, issueId: string, run: RunRef): string {
  return commentId(agent, issueId, run, 'summary')
}

/** Local paths (this machine's layout) replaced by their last segment: Linear text is public to the team. */
export function publicText(text: string): string {
  return text.replace(/(?<![\w:/.~-])(?:~|\/)(?:[\w.@+-]+\/)+([\w.@+-]+)/g, '…/$1')
}

function quote(text: string, max = 1500): string {
  return text
    .trim()
    .slice(0, max)
    .split('\n')
    .map((l) => `> ${l}`)
    .join('\n')
}

function signature(agent: string, what: string): string {
  return `_${COMMENT_MARKER} (${agent}, ${what})._`
}

export interface SummaryInput {
  agent: string
  engine: string
  issueId: string
  run: RunRecord
  outcome: 'success' | 'no_changes' | 'failed'
  branch: string
  commitsAhead: number
  headCommit?: string
  prUrl?: string
  prSkipped?: string
  /** The repository it ran in, when the agent has several. */
  repo?: string
  /** Why the issue was not moved (e.g. the team has no review state). */
  notMoved?: string
}

/** The one summary comment of a finished run. */
export function summaryComment(input: SummaryInput): PlannedComment {
  const { run } = input
  const lines: string[] = []
  if (input.outcome === 'failed') {
    lines.push(`**Run #${run.n} failed** (${run.errorCode ?? run.status}).`, '', quote(publicText(run.summary || 'no output'), 4000), '')
    lines.push('A human may need to look; a new comment here starts another run.')
  } else {
    lines.push(
      input.outcome === 'no_changes' ? `**Run #${run.n} finished without changes.**` : `**Run #${run.n} finished.**`,
      '',
      run.summary?.trim() || '(no summary)',
      '',
    )
    const pr = input.prUrl ? `PR: ${input.prUrl}` : input.prSkipped && input.commitsAhead > 0 ? `No PR: ${input.prSkipped}.` : undefined
    if (input.repo) lines.push(`Repository: ${input.repo}`)
    if (pr) lines.push(pr)
    if (input.commitsAhead > 0)
      lines.push(`Branch: \`${input.branch}\`${input.headCommit ? ` at \`${input.headCommit.slice(0, 12)}\`` : ''}`)
    if (input.notMoved) lines.push(`Not moved to review: ${input.notMoved}.`)
  }
  // The runtime provider's links (a preview environment...): what a reviewer opens first.
  if (run.runtimeUrls?.length) lines.push('', ...run.runtimeUrls.map((u) => `${u.label}: ${u.url}`))
  const cost = run.costUsd !== undefined && run.costUsd > 0 ? ` · $${run.costUsd.toFixed(4)}` : ''
  lines.push('', signature(input.agent, `${input.engine}, run #${run.n}${cost}`))
  return { id: commentId(input.agent, input.issueId, run, 'summary'), body: lines.join('\n') }
}

/** The comment for a run that failed in a way another attempt cannot fix (posted once, no retry). */
export function failureComment(
  agent: string,
  issueId: string,
  run: RunRef,
  error: { code: string; message: string; fix?: string },
): PlannedComment {
  const n = typeof run === 'number' ? run : run.n
  const body = [
    `**Run #${n} failed** in the factory (\`${error.code}\`).`,
    '',
    quote(publicText(error.message)),
    '',
    ...(error.fix ? [`Fix: ${publicText(error.fix)}`, ''] : []),
    'Comment here to start another run.',
    '',
    signature(agent, `run #${n}, failure`),
  ].join('\n')
  return { id: commentId(agent, issueId, run, 'failure'), body }
}

export interface EscalationInput {
  agent: string
  issueId: string
  runs: RunRecord[]
  reason: string
  lastError?: { code: string; message: string; fix?: string }
}

/** The one "needs a human" comment: why, the last error with its fix, the recent attempts. */
export function escalationComment(input: EscalationInput): PlannedComment {
  const n = input.runs.at(-1)?.n ?? 0
  const failures = input.runs
    .filter((r) => r.status !== 'success' && r.status !== 'no_changes' && r.status !== 'running')
    .slice(-5)
    .map((r) => `- run #${r.n}: ${r.errorCode ?? r.status}${r.summary ? `: ${publicText(r.summary.split('\n')[0]!.slice(0, 200))}` : ''}`)
  const last = input.lastError
  return {
    id: commentId(input.agent, input.issueId, input.runs.at(-1) ?? 0, 'escalation'),
    body: [
      `**Needs a human:** ${input.reason}.`,
      '',
      ...(last
        ? [
            `Last error (\`${last.code}\`):`,
            quote(publicText(last.message), 800),
            '',
            ...(last.fix ? [`Fix: ${publicText(last.fix)}`, ''] : []),
          ]
        : []),
      ...(failures.length ? ['Recent attempts:', ...failures, ''] : []),
      'The factory will not run this issue again on its own. Comment here (or reassign it) to start a new run.',
      '',
      signature(input.agent, `escalation after run #${n}`),
    ].join('\n'),
  }
}
