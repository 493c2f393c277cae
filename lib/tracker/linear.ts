/**
 * The api_key tracker: our own documents sent as @linear/sdk's rawRequest sends them (no lazy
 * models, no N+1; tracker/transport.ts, which loads the SDK only to parse a failure). Linear's failures become FactoryErrors with codes; RATELIMITED carries the reset time
 * from Linear's headers so callers can back off exactly that long.
 */
import { backoffMs, REQUEST_RETRY } from '../backoff.ts'
import { z } from '../zod.ts'
import { FactoryError } from '../errors.ts'
import {
  ATTACH_URL_MUTATION,
  COMMENT_CREATE_MUTATION,
  COMMENT_QUERY,
  ISSUE_COMMENTS_QUERY,
  ISSUE_MOVE_MUTATION,
  ISSUE_DELEGATE_MUTATION,
  ISSUE_QUERY,
  COMMENTS_PAGE,
  MAX_COMMENT_PAGES,
  POLL_PAGE,
  POLL_QUERY,
} from './documents.ts'
import { memoryRateGate, type RateGate } from '../ratelimit.ts'
import { toTrackerError } from './errors.ts'
import { linearTransport } from './transport.ts'
import {
  commentSchema,
  normalizeIssue,
  type RawIssue,
  rawIssueSchema,
  type Tracker,
  type TrackerIssue,
  type Viewer,
  type WatchedIssue,
} from './types.ts'

export interface LinearTrackerOptions {
  apiKey: string
  apiUrl: string
  /** Per-request timeout. */
  timeoutMs?: number
  /** Retries for writes and single-issue reads (rate limits wait for the reset, capped). */
  retries?: number
  /** Longest single wait for a rate-limit reset before giving up with tracker_rate_limited. */
  maxWaitMs?: number
  sleep?: (ms: number) => Promise<void>
  now?: () => number
  /** Shared view of the rate limit (default: this process only). */
  gate?: RateGate
  /** Called after each HTTP request (counting, tests). */
  onRequest?: (info: { operation: string; ok: boolean; complexity?: number }) => void
  /** Send `apiKey` as `Authorization: Bearer` (an OAuth or relay worker token) instead of a personal API key. */
  bearer?: boolean
  /** Further headers on every request (the relay's X-Linear-Organization). */
  headers?: Record<string, string>
  /** Re-read a failure before it is thrown (the relay tracker names the relay's own failures). */
  mapError?: (e: FactoryError) => FactoryError
}

const viewerSchema = z.object({ id: z.string(), name: z.string() })
const watchedSchema = z.object({
  id: z.string(),
  identifier: z.string(),
  updatedAt: z.string(),
  state: z.object({ id: z.string(), name: z.string(), type: z.string() }),
  assignee: z.object({ id: z.string() }).nullish(),
  delegate: z.object({ id: z.string() }).nullish(),
})
const pollSchema = z.object({
  viewer: viewerSchema,
  issues: z.object({
    nodes: z.array(rawIssueSchema),
    pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullish() }),
  }),
  watched: z.object({ nodes: z.array(watchedSchema) }),
})
const issueSchema = z.object({ viewer: viewerSchema, issue: rawIssueSchema })
const commentsPageSchema = z.object({
  issue: z.object({
    comments: z.object({
      nodes: z.array(commentSchema),
      pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullish() }),
    }),
  }),
})

const PAGE_VARS = { commentsFirst: POLL_PAGE.comments, statesFirst: POLL_PAGE.states, labelsFirst: POLL_PAGE.labels }

/** The IssueFilter for one poll: assigned or delegated to the viewer, changed or commented since `cursor`. */
export function pollFilter(cursor: string | null): Record<string, unknown> {
  const mine = { or: [{ assignee: { isMe: { eq: true } } }, { delegate: { isMe: { eq: true } } }] }
  if (!cursor) return { and: [mine, { state: { type: { nin: ['completed', 'canceled'] } } }] }
  return { and: [mine, { or: [{ updatedAt: { gt: cursor } }, { comments: { some: { createdAt: { gt: cursor } } } }] }] }
}

/** Create the api_key tracker. */
export function createLinearTracker(opts: LinearTrackerOptions): Tracker & { requests: () => number } {
  const transport = linearTransport(opts.apiKey, opts.apiUrl, { bearer: opts.bearer, headers: opts.headers })
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)))
  const now = opts.now ?? Date.now
  const gate = opts.gate ?? memoryRateGate()
  let count = 0

  async function once(operation: string, query: string, variables: Record<string, unknown>): Promise<unknown> {
    // Never send while any process of this agent has been told to wait (Linear's reset header).
    const wait = gate.waitMs(now())
    if (wait > 0) {
      throw new FactoryError(
        'tracker_rate_limited',
        `Linear rate limit in force for ${Math.ceil(wait / 1000)} s more (${operation} not sent)`,
        {
          fix: 'wait for the reset (the factory backs off by itself)',
          details: { resetAt: now() + wait },
        },
      )
    }
    count++
    try {
      const res = await transport.request(query, variables, AbortSignal.timeout(opts.timeoutMs ?? 30_000))
      opts.onRequest?.({ operation, ok: true, complexity: Number(res.headers?.get('x-complexity')) || undefined })
      return res.data
    } catch (err) {
      opts.onRequest?.({ operation, ok: false })
      const mapped = toTrackerError(err, operation, now(), transport.apiUrl)
      const e = opts.mapError ? opts.mapError(mapped) : mapped
      if (e.code === 'tracker_rate_limited') gate.block(Number(e.details?.resetAt), now())
      throw e
    }
  }

  /** Retry rate limits (until the reset) and outages (exponential) up to `retries` times. */
  async function withRetry(
    operation: string,
    query: string,
    variables: Record<string, unknown>,
    retries = opts.retries ?? 4,
    waitRateLimit = true,
  ): Promise<unknown> {
    for (let attemptNo = 0; ; attemptNo++) {
      try {
        return await once(operation, query, variables)
      } catch (err) {
        const e = err as FactoryError
        const retryable =
          (waitRateLimit && e.code === 'tracker_rate_limited') || e.code === 'tracker_unreachable' || e.code === 'relay_unreachable'
        if (!retryable || attemptNo >= retries) throw e
        const wait =
          e.code === 'tracker_rate_limited'
            ? Math.max(0, Number(e.details?.resetAt ?? 0) - now()) + 50
            : backoffMs(attemptNo + 1, REQUEST_RETRY)
        if (wait > (opts.maxWaitMs ?? 120_000)) throw e
        await sleep(wait)
      }
    }
  }

  function parse<T>(schema: z.ZodType<T>, data: unknown, operation: string): T {
    const parsed = schema.safeParse(data)
    if (!parsed.success) {
      throw new FactoryError(
        'tracker_error',
        `unexpected response shape from Linear for ${operation}: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`,
        {
          fix: 'the API may have changed; report this with the message',
        },
      )
    }
    return parsed.data
  }

  /**
   * Read every comment since `since` (the last run's newest; null = all), so none is lost between
   * runs. Only an issue whose first page is full costs more requests: newest-first pages are
   * followed until they reach `since`; oldest-first pages (Linear does not document the order)
   * hold the newest comments last, so they are followed to the end. At most MAX_COMMENT_PAGES
   * more pages per issue; beyond that the issue says its omitted count is a lower bound.
   */
  async function completeComments(raw: RawIssue, since: string | null): Promise<TrackerIssue> {
    const first = raw.comments.nodes
    let after = raw.comments.pageInfo?.hasNextPage ? (raw.comments.pageInfo.endCursor ?? null) : null
    const newestFirst = first.length < 2 || first[0]!.createdAt >= first.at(-1)!.createdAt
    const reached = (nodes: RawIssue['comments']['nodes']) =>
      newestFirst && since !== null && nodes.length > 0 && nodes.at(-1)!.createdAt <= since
    if (!after || reached(first)) return normalizeIssue(raw, { since })
    const nodes = [...first]
    let pages = 0
    while (after && pages < MAX_COMMENT_PAGES) {
      const page: z.infer<typeof commentsPageSchema>['issue']['comments'] = parse(
        commentsPageSchema,
        await withRetry('issueComments', ISSUE_COMMENTS_QUERY, { id: raw.id, first: COMMENTS_PAGE, after }),
        'issueComments',
      ).issue.comments
      pages++
      nodes.push(...page.nodes)
      after = page.pageInfo.hasNextPage && page.nodes.length > 0 ? (page.pageInfo.endCursor ?? null) : null
      if (reached(page.nodes)) after = null
    }
    return normalizeIssue({ ...raw, comments: { nodes } }, { since, more: after !== null })
  }

  return {
    requests: () => count,

    async poll(cursor, pollOpts = {}) {
      const issues: TrackerIssue[] = []
      let watched: WatchedIssue[] = []
      let viewer: Viewer | undefined
      let after: string | null = null
      let pages = 0
      const startCount = count
      const first = cursor ? POLL_PAGE.issuesWithCursor : POLL_PAGE.issues
      const watch = (pollOpts.watch ?? []).slice(0, 50)
      // Paginate only when a page is full: an idle tick is exactly one request. A transient
      // failure gets two quick retries; a rate limit is left to the caller's backoff.
      do {
        const w = pages === 0 ? watch : []
        const data = await withRetry(
          'poll',
          POLL_QUERY,
          { filter: pollFilter(cursor), first, after, ...PAGE_VARS, watchFilter: { id: { in: w } }, watchFirst: w.length },
          2,
          false,
        )
        const page = parse(pollSchema, data, 'poll')
        if (pages === 0) {
          watched = page.watched.nodes.map((n) => ({
            id: n.id,
            identifier: n.identifier,
            updatedAt: n.updatedAt,
            state: n.state,
            assigneeId: n.assignee?.id ?? null,
            delegateId: n.delegate?.id ?? null,
          }))
        }
        pages++
        viewer = page.viewer
        for (const raw of page.issues.nodes) issues.push(await completeComments(raw, pollOpts.commentsSince?.[raw.id] ?? null))
        after = page.issues.pageInfo.hasNextPage && page.issues.nodes.length >= first ? (page.issues.pageInfo.endCursor ?? null) : null
      } while (after)
      return { viewer: viewer!, issues, watched, requests: count - startCount }
    },

    async getIssue(idOrKey, issueOpts = {}) {
      const data = await withRetry('issue', ISSUE_QUERY, { id: idOrKey, ...PAGE_VARS })
      const parsed = parse(issueSchema, data, 'issue')
      return { viewer: parsed.viewer, issue: await completeComments(parsed.issue, issueOpts.commentsSince ?? null) }
    },

    async moveIssue(issueId, stateId) {
      const data = (await withRetry('issueUpdate', ISSUE_MOVE_MUTATION, { id: issueId, stateId })) as {
        issueUpdate?: { success?: boolean }
      }
      if (!data?.issueUpdate?.success)
        throw new FactoryError('tracker_error', `Linear did not move issue ${issueId}`, {
          fix: 'check the workflow state exists in the issue team',
        })
    },

    async createComment(input) {
      try {
        await withRetry('commentCreate', COMMENT_CREATE_MUTATION, input)
        return { created: true }
      } catch (err) {
        // A retried create whose first attempt landed: the id exists, so nothing is duplicated.
        const existing = await once('comment', COMMENT_QUERY, { id: input.id }).catch(() => null)
        if (existing) return { created: false }
        throw err
      }
    },

    async attachUrl(input) {
      await withRetry('attachmentLinkURL', ATTACH_URL_MUTATION, input)
    },

    async delegateIssue(issueId, delegateId) {
      await withRetry('issueUpdate', ISSUE_DELEGATE_MUTATION, { id: issueId, delegateId })
    },
  }
}
