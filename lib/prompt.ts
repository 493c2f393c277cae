/**
 * The engine's prompt: the issue, and the human comments since the last run. Invariant "own-comments-excluded": the
 * factory's own comments never enter a prompt, excluded by author (the token's viewer). The
 * plain-text marker only confirms: a human who quotes a factory comment (marker included) is
 * still a human, and their comment reruns the issue.
 *
 * The comments take at most MAX_PROMPT_COMMENT_CHARS of the prompt, newest kept; the prompt says
 * how many were left out (by that cap, or upstream: the tracker keeps the newest MAX_COMMENTS).
 */
import type { IssueRecord } from './state.ts'
import type { TrackerComment, TrackerIssue } from './tracker/types.ts'

import { COMMENT_MARKER } from './comments.ts'

export { COMMENT_MARKER }

/**
 * True for comments the factory wrote: authored by the token's viewer. The marker alone proves
 * nothing (anyone can paste it); only when the viewer is unknown (no poll recorded yet) does the
 * marker stand in for the author, so the factory never reads its own summary as a request.
 */
export function isFactoryComment(c: TrackerComment, viewerId: string | undefined): boolean {
  if (viewerId === undefined) return c.body.includes(COMMENT_MARKER)
  return c.user?.id === viewerId
}

/** Most characters of comment text (headers included) one prompt carries; older comments are left out first. */
export const MAX_PROMPT_COMMENT_CHARS = 100_000

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
  /** Comment-size cap (default MAX_PROMPT_COMMENT_CHARS; tests). */
  maxCommentChars?: number
}

/** The comments that fit in `max` characters, newest kept (the newest is cut to fit when alone too big), and how many were dropped. */
export function fitComments(comments: TrackerComment[], max = MAX_PROMPT_COMMENT_CHARS): { kept: TrackerComment[]; dropped: number } {
  const kept: TrackerComment[] = []
  let used = 0
  for (let i = comments.length - 1; i >= 0; i--) {
    const c = comments[i]!
    const size = commentBlock(c).length
    if (used + size > max) {
      if (kept.length > 0) return { kept, dropped: i + 1 }
      // The newest comment alone is too big: keep its beginning.
      const cut = `${c.body.slice(0, Math.max(0, max - 200))}\n\n[... cut: this comment is longer than a prompt carries]`
      return { kept: [{ ...c, body: cut }], dropped: i }
    }
    used += size
    kept.unshift(c)
  }
  return { kept, dropped: 0 }
}

function commentBlock(c: TrackerComment): string {
  return `### ${c.user?.name ?? 'someone'} at ${c.createdAt}\n\n${c.body.trim()}\n\n`
}

/** Build the prompt text (deterministic: same input, same text). */
export function buildPrompt(input: PromptInput): string {
  const { issue, branch, previous } = input
  const { kept: comments, dropped } = fitComments(input.comments, input.maxCommentChars)
  const leftOut = dropped + (input.comments.length ? (issue.commentsOmitted ?? 0) : 0)
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
  if (leftOut > 0) {
    lines.push(
      `(${leftOut}${issue.commentsOmittedMore ? ' or more' : ''} earlier comment${leftOut === 1 ? ' was' : 's were'} left out to keep this prompt short; the newest are below. Read the others on the issue: ${issue.url})`,
      '',
    )
  }
  for (const c of comments) lines.push(commentBlock(c).trimEnd(), '')
  lines.push('When you are done, reply with a short summary of what you changed and anything a reviewer should check.')
  return `${lines.join('\n').trim()}\n`
}

/**
 * agent_session: the prompt of a session's run. The first run gets what Linear sent on `created`
 * (its promptContext: the issue, comments and guidance formatted for an agent); a later run gets
 * the user's replies in the session, oldest first, and resumes the engine's session.
 */
export function buildSessionPrompt(input: {
  issue: TrackerIssue
  branch: string
  promptContext: string
  replies: string[]
  previous?: { n: number; summary?: string }
}): string {
  const { issue, branch, replies, previous } = input
  const lines: string[] = []
  if (previous && replies.length) {
    lines.push(`This is a follow-up on ${issue.identifier}. Your previous run (#${previous.n}) ended with:`, '')
    lines.push(indent(previous.summary || '(no summary)'), '', 'The user replied in the agent session (oldest first):', '')
    for (const r of replies) lines.push(indent(r.trim() || '(empty reply)'), '')
  } else {
    lines.push(`You are working on Linear issue ${issue.identifier}: ${issue.title}`, '')
    lines.push(`URL: ${issue.url}`, `Branch: ${branch} (already checked out; commit or leave changes, the factory commits and pushes)`, '')
    lines.push(input.promptContext.trim() || `## Description\n\n${issue.description.trim() || '(no description)'}`, '')
    for (const r of replies) lines.push('The user added:', '', indent(r.trim()), '')
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
