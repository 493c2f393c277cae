/**
 * The engine's prompt: the issue, and the human comments since the last run. Invariant "own-comments-excluded": the
 * factory's own comments never enter a prompt, excluded by author (the token's viewer) and by
 * a plain-text marker that survives Linear's Markdown storage.
 */
import type { IssueRecord } from './state.ts'
import type { TrackerComment, TrackerIssue } from './tracker/types.ts'

import { COMMENT_MARKER } from './comments.ts'

export { COMMENT_MARKER }

/** True for comments the factory wrote. */
export function isFactoryComment(c: TrackerComment, viewerId: string | undefined): boolean {
  return (viewerId !== undefined && c.user?.id === viewerId) || c.body.includes(COMMENT_MARKER)
}

/** Whether a commenter may steer the agent (allow-list of user ids or emails; absent = anyone). */
export function commenterAllowed(c: TrackerComment, allow: readonly string[] | undefined): boolean {
  if (!allow || allow.length === 0) return true
  const who = [c.user?.id, c.user?.email?.toLowerCase()].filter(Boolean)
  return allow.some((a) => who.includes(a) || who.includes(a.toLowerCase()))
}

/** createdAt of the newest human comment any run's prompt included (undefined = none yet). */
export function lastCommentsUpTo(record: Pick<IssueRecord, 'runs'>): string | undefined {
  let out: string | undefined
  for (const r of record.runs) if (r.commentsUpTo && (!out || r.commentsUpTo > out)) out = r.commentsUpTo
  return out
}

/** Human comments newer than `since` (all when undefined), oldest first. */
export function humanComments(
  issue: TrackerIssue,
  viewerId: string | undefined,
  since?: string,
  allow?: readonly string[],
): TrackerComment[] {
  return issue.comments.filter((c) => !isFactoryComment(c, viewerId) && (!since || c.createdAt > since) && commenterAllowed(c, allow))
}

export interface PromptInput {
  issue: TrackerIssue
  branch: string
  comments: TrackerComment[]
  /** The previous run of this issue, when this is a rerun. */
  previous?: { n: number; summary?: string }
}

/** Build the prompt text (deterministic: same input, same text). */
export function buildPrompt(input: PromptInput): string {
  const { issue, branch, comments, previous } = input
  const lines: string[] = []
  if (previous) {
    lines.push(
      `This is a follow-up on ${issue.identifier}. Your previous run (#${previous.n}) ended with:`,
      '',
      indent(previous.summary || '(no summary)'),
      '',
    )
    lines.push(
      comments.length
        ? 'Since then, reviewers commented (oldest first). Address every point:'
        : 'No new comments since then; continue the work.',
      '',
    )
  } else {
    lines.push(`You are working on Linear issue ${issue.identifier}: ${issue.title}`, '')
    lines.push(`URL: ${issue.url}`, `Branch: ${branch} (already checked out; commit or leave changes, the factory commits and pushes)`)
    if (issue.labels.length) lines.push(`Labels: ${issue.labels.join(', ')}`)
    lines.push('', '## Description', '', issue.description.trim() || '(no description)', '')
    if (comments.length) lines.push('## Comments (oldest first)', '')
  }
  for (const c of comments) {
    lines.push(`### ${c.user?.name ?? 'someone'} at ${c.createdAt}`, '', c.body.trim(), '')
  }
  lines.push('When you are done, reply with a short summary of what you changed and anything a reviewer should check.')
  return `${lines.join('\n').trim()}\n`
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `> ${l}`)
    .join('\n')
}
