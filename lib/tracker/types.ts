/** The tracker's view of Linear, normalized from our documents' responses. */
import { z } from '../zod.ts'

export const workflowStateSchema = z.object({
  id: z.string(),
  name: z.string(),
  type: z.string(),
  position: z.number().optional(),
})

const userRefSchema = z.object({ id: z.string(), name: z.string().optional(), email: z.string().nullish() })

export const commentSchema = z.object({
  id: z.string(),
  body: z.string(),
  createdAt: z.string(),
  user: userRefSchema.nullish(),
})

/** One issue as the poll / issue documents return it (GraphQL shape). */
export const rawIssueSchema = z.object({
  id: z.string(),
  identifier: z.string(),
  number: z.number(),
  title: z.string(),
  description: z.string().nullish(),
  url: z.string(),
  branchName: z.string(),
  priority: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
  state: workflowStateSchema,
  team: z.object({ id: z.string(), key: z.string(), states: z.object({ nodes: z.array(workflowStateSchema) }) }),
  labels: z.object({ nodes: z.array(z.object({ name: z.string() })) }),
  project: z.object({ id: z.string(), name: z.string() }).nullish(),
  assignee: userRefSchema.nullish(),
  delegate: userRefSchema.nullish(),
  comments: z.object({
    nodes: z.array(commentSchema),
    pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullish() }).optional(),
  }),
})

export type RawIssue = z.infer<typeof rawIssueSchema>

export type WorkflowState = z.infer<typeof workflowStateSchema>
export type TrackerComment = z.infer<typeof commentSchema>

/** An issue, flattened for the steps: labels as names, comments oldest first. */
export interface TrackerIssue {
  id: string
  identifier: string
  title: string
  description: string
  url: string
  branchName: string
  priority: number
  createdAt: string
  updatedAt: string
  state: WorkflowState
  team: { id: string; key: string; states: WorkflowState[] }
  labels: string[]
  /** The project's name (repository routing matches on it); null when the issue has none. */
  project?: string | null
  assigneeId: string | null
  delegateId: string | null
  comments: TrackerComment[]
  /**
   * Comments newer than the read's boundary (the last run's newest comment; all when none) that
   * are not in `comments`: the snapshot keeps the newest MAX_COMMENTS. The prompt says so.
   */
  commentsOmitted?: number
  /** True when the tracker stopped paging (MAX_COMMENT_PAGES) before the boundary: `commentsOmitted` is a lower bound. */
  commentsOmittedMore?: boolean
}

export interface Viewer {
  id: string
  name: string
}

/** Most comments kept per issue snapshot. */
export const MAX_COMMENTS = 100

/** NUL has no meaning in Linear text and cannot travel in argv (git commit -m) or C strings: it becomes U+FFFD. */
export function withoutNul(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text
}

/**
 * Flatten a raw issue from a response into a TrackerIssue (NULs in its texts replaced, see withoutNul). `since` is the boundary the comments
 * were read down to (comments at or before it are not counted as omitted); `more` says paging
 * stopped before reaching it.
 */
export function normalizeIssue(raw: RawIssue, opts: { since?: string | null; more?: boolean } = {}): TrackerIssue {
  // Oldest first, the newest MAX_COMMENTS kept (state.json holds a snapshot per issue).
  const all = [...raw.comments.nodes]
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .map((c) => (c.body.includes('\0') ? { ...c, body: withoutNul(c.body) } : c))
  const since = opts.since
  const relevant = since ? all.filter((c) => c.createdAt > since).length : all.length
  const omitted = Math.max(0, relevant - MAX_COMMENTS)
  return {
    id: raw.id,
    identifier: raw.identifier,
    title: withoutNul(raw.title),
    description: withoutNul(raw.description ?? ''),
    url: raw.url,
    branchName: withoutNul(raw.branchName),
    priority: raw.priority,
    createdAt: raw.createdAt,
    updatedAt: raw.updatedAt,
    state: raw.state,
    team: { id: raw.team.id, key: raw.team.key, states: raw.team.states.nodes },
    labels: raw.labels.nodes.map((l) => l.name),
    project: raw.project?.name ?? null,
    assigneeId: raw.assignee?.id ?? null,
    delegateId: raw.delegate?.id ?? null,
    comments: all.slice(-MAX_COMMENTS),
    ...(omitted > 0 || opts.more ? { commentsOmitted: omitted } : {}),
    ...(opts.more ? { commentsOmittedMore: true } : {}),
  }
}

/** A running issue's current state and assignment (reconciliation). */
export interface WatchedIssue {
  id: string
  identifier: string
  updatedAt: string
  state: WorkflowState
  assigneeId: string | null
  delegateId: string | null
}

export interface PollResult {
  viewer: Viewer
  issues: TrackerIssue[]
  /** The watched issues that still exist (a deleted one is simply absent). */
  watched: WatchedIssue[]
  requests: number
}

export interface PollOptions {
  /** Issue ids whose current state and assignment to return (reconciliation). */
  watch?: string[]
  /**
   * Per issue id, the newest comment the last run saw: comments are read (paging when the first
   * page is full) down to it, so none since is lost. An issue not listed has all its comments read.
   */
  commentsSince?: Record<string, string | null>
}

/** The tracker as the steps see it (api_key mode now; agent_session mode goes through the relay). */
export interface Tracker {
  /** One read: the viewer, the issues assigned/delegated to it changed since `cursor`, and the watched ids' state. */
  poll(cursor: string | null, opts?: PollOptions): Promise<PollResult>
  /** One issue by id or identifier (e.g. "ENG-12"); its comments read down to `commentsSince` (default: all). */
  getIssue(idOrKey: string, opts?: { commentsSince?: string | null }): Promise<{ viewer: Viewer; issue: TrackerIssue }>
  /** Move an issue to a workflow state. */
  moveIssue(issueId: string, stateId: string): Promise<void>
  /** Create a comment with a client-chosen id; `created: false` when it already existed. */
  createComment(input: { id: string; issueId: string; body: string }): Promise<{ created: boolean }>
  /** Attach a URL (the PR) to the issue; idempotent per url + issue. */
  attachUrl(input: { issueId: string; url: string; title: string }): Promise<void>
  /** Make `userId` the issue's delegate. */
  delegateIssue(issueId: string, userId: string): Promise<void>
}
