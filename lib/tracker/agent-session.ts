/**
 * A worker's agent-session calls to Linear through the relay's pass-through (lib/tracker/relay.ts):
 * post an activity with a client-chosen id, update the session (its PR link, its plan), read it
 * back. Invariant "idempotent-writes": an activity id that already exists counts as posted (a
 * retried create whose first attempt landed). A GraphQL error with `userError: true` (the session
 * is gone, the input is refused) is final: `tracker_refused`, never retried. RATELIMITED waits for
 * the reset the relay gives (lib/ratelimit.ts), outages back off (lib/backoff.ts).
 */
import { z } from '../zod.ts'
import { backoffMs, REQUEST_RETRY } from '../backoff.ts'
import { FactoryError } from '../errors.ts'
import { clampResetAt, memoryRateGate, type RateGate } from '../ratelimit.ts'
import {
  AGENT_ACTIVITY_CREATE_MUTATION,
  AGENT_ACTIVITY_QUERY,
  AGENT_SESSION_QUERY,
  AGENT_SESSION_UPDATE_MUTATION,
  REPOSITORY_SUGGESTIONS_QUERY,
  SESSION_ACTIVITIES_PAGE,
} from './documents.ts'
import { relayErrorOf, relayFailure, relayGraphqlUrl, relayHeaders } from './relay.ts'

/** An activity's content as Linear takes it (`ephemeral` only on thought and action). */
export type ActivityContent =
  | { type: 'thought' | 'response' | 'error' | 'elicitation'; body: string }
  | { type: 'action'; action: string; parameter: string; result?: string }

export type PlanStatus = 'pending' | 'inProgress' | 'completed' | 'canceled'
/** One step of a session's plan; Linear takes the whole list on every update. */
export interface PlanItem {
  content: string
  status: PlanStatus
}

const sessionSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  externalLinks: z.array(z.object({ label: z.string(), url: z.string() })).nullish(),
  issue: z.looseObject({ id: z.string(), identifier: z.string(), title: z.string() }).nullish(),
  activities: z.object({
    nodes: z.array(
      z.looseObject({
        id: z.string(),
        createdAt: z.string(),
        ephemeral: z.boolean().nullish(),
        signal: z.string().nullish(),
        content: z.looseObject({ type: z.string() }),
      }),
    ),
  }),
})
const suggestionsSchema = z.object({
  suggestions: z.array(z.looseObject({ repositoryFullName: z.string(), hostname: z.string().nullish(), confidence: z.number() })),
})
/** Linear's ranked repositories for an issue. */
export type RepositorySuggestion = z.infer<typeof suggestionsSchema>['suggestions'][number]

/** A `select` elicitation's options (Linear shows them as choices; the answer comes back as a prompt). */
export interface SelectSignal {
  signal: 'select'
  signalMetadata: { options: { label: string; value: string }[] }
}

/** A session as a worker resuming it reads it (newest activities first). */
export type AgentSessionView = z.infer<typeof sessionSchema>

export interface AgentSessionDeps {
  fetch: (url: string, init: RequestInit) => Promise<Response>
  sleep: (ms: number) => Promise<void>
  now: () => number
}

export interface AgentSessionClient {
  /** Post one activity under `id`; `posted: false` when Linear already had it. Throws tracker_refused when Linear refuses it for good. */
  postActivity(input: {
    id: string
    sessionId: string
    content: ActivityContent
    ephemeral?: boolean
    select?: SelectSignal['signalMetadata']
  }): Promise<{ posted: boolean }>
  /** Linear's confidence in each candidate repository for the issue (`issueRepositorySuggestions`). */
  repositorySuggestions(
    issueId: string,
    sessionId: string,
    candidates: { hostname: string; repositoryFullName: string }[],
  ): Promise<RepositorySuggestion[]>
  /** Add links (the PR) and/or replace the plan of a session. */
  updateSession(sessionId: string, patch: { addedExternalUrls?: { label: string; url: string }[]; plan?: PlanItem[] }): Promise<void>
  /** The session, its issue and its newest activities. */
  getSession(sessionId: string): Promise<AgentSessionView>
  /** HTTP requests sent so far. */
  requests(): number
}

type Reply = { data?: Record<string, unknown> | null; errors?: { message?: string; extensions?: Record<string, unknown> }[] }

/** The agent-session client of workspace `orgId` through the relay at `relayUrl`, authenticated with the worker `token`. */
export function agentSessionClient(opts: {
  relayUrl: string
  token: string
  orgId: string
  deps?: Partial<AgentSessionDeps>
  gate?: RateGate
  /** Retries of outages and rate limits per call (default 4). */
  retries?: number
  /** Longest single wait for a rate-limit reset (default 2 min); longer gives up with tracker_rate_limited. */
  maxWaitMs?: number
  timeoutMs?: number
}): AgentSessionClient {
  const deps: AgentSessionDeps = { fetch: (u, i) => fetch(u, i), sleep: (ms) => Bun.sleep(ms), now: Date.now, ...opts.deps }
  const gate = opts.gate ?? memoryRateGate()
  const url = relayGraphqlUrl(opts.relayUrl)
  let count = 0

  async function once(operation: string, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
    const wait = gate.waitMs(deps.now())
    if (wait > 0)
      throw new FactoryError(
        'tracker_rate_limited',
        `Linear rate limit in force for ${Math.ceil(wait / 1000)} s more (${operation} not sent)`,
        {
          details: { resetAt: deps.now() + wait },
        },
      )
    count++
    let res: Response
    let body: Reply | null
    try {
      res = await deps.fetch(url, {
        method: 'POST',
        headers: { ...relayHeaders(opts.token, opts.orgId), 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      })
      body = (await res.json().catch(() => null)) as Reply | null
    } catch (err) {
      const why = (err as Error)?.name === 'TimeoutError' ? 'no answer in time' : err instanceof Error ? err.message : String(err)
      throw relayFailure({ status: 0, message: why, relayUrl: opts.relayUrl, orgId: opts.orgId })!
    }
    const error = body?.errors?.[0]
    if (error?.extensions?.code === 'RATELIMITED' || error?.extensions?.type === 'ratelimited') {
      const header = Number(res.headers.get('x-ratelimit-requests-reset'))
      const retryAfter = Number(error.extensions?.retryAfterMs)
      const resetAt = clampResetAt(
        Number.isFinite(header) && header > 0 ? header : deps.now() + (Number.isFinite(retryAfter) ? retryAfter : 60_000),
        deps.now(),
      )
      gate.block(resetAt, deps.now())
      throw new FactoryError(
        'tracker_rate_limited',
        `Linear rate limit hit during ${operation}; resets at ${new Date(resetAt).toISOString()}`,
        {
          details: { resetAt },
        },
      )
    }
    const read = relayErrorOf(body)
    const relay = relayFailure({ status: res.status, code: read.code, message: read.message, relayUrl: opts.relayUrl, orgId: opts.orgId })
    if (relay) throw relay
    if (error?.extensions?.userError === true)
      throw new FactoryError('tracker_refused', `Linear refused ${operation}: ${error.message ?? 'a user error'}`)
    if (res.status >= 500 || (!body && !res.ok))
      throw new FactoryError(
        'tracker_unreachable',
        `Linear is failing during ${operation} (HTTP ${res.status}${error ? `: ${error.message}` : ''})`,
        {
          fix: 'the worker retries with backoff',
        },
      )
    if (error || !body?.data)
      throw new FactoryError('tracker_error', `Linear error during ${operation}: ${error?.message ?? `HTTP ${res.status}, no data`}`)
    return body.data
  }

  async function withRetry(operation: string, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once(operation, query, variables)
      } catch (err) {
        const e = err as FactoryError
        const retryable = e.code === 'tracker_rate_limited' || e.code === 'tracker_unreachable' || e.code === 'relay_unreachable'
        if (!retryable || attempt >= (opts.retries ?? 4)) throw e
        const wait =
          e.code === 'tracker_rate_limited'
            ? Math.max(0, Number(e.details?.resetAt ?? 0) - deps.now()) + 50
            : backoffMs(attempt + 1, REQUEST_RETRY)
        if (wait > (opts.maxWaitMs ?? 120_000)) throw e
        await deps.sleep(wait)
      }
    }
  }

  return {
    requests: () => count,

    async postActivity(input) {
      const variables = {
        input: {
          id: input.id,
          agentSessionId: input.sessionId,
          content: input.content,
          ...(input.ephemeral ? { ephemeral: true } : {}),
          ...(input.select ? { signal: 'select', signalMetadata: input.select } : {}),
        },
      }
      let failure: unknown
      try {
        const data = await withRetry('agentActivityCreate', AGENT_ACTIVITY_CREATE_MUTATION, variables)
        if ((data.agentActivityCreate as { success?: boolean } | undefined)?.success) return { posted: true }
        failure = new FactoryError('tracker_error', `Linear did not create activity ${input.id} (success: false)`)
      } catch (err) {
        failure = err
      }
      // Refused or ambiguous: an earlier attempt may have landed it (a duplicate id is a userError too).
      const existing = await once('agentActivity', AGENT_ACTIVITY_QUERY, { id: input.id }).catch(() => null)
      if ((existing?.agentActivity as { id?: string } | undefined)?.id === input.id) return { posted: false }
      throw failure
    },

    async updateSession(sessionId, patch) {
      const data = await withRetry('agentSessionUpdate', AGENT_SESSION_UPDATE_MUTATION, { id: sessionId, input: patch })
      if (!(data.agentSessionUpdate as { success?: boolean } | undefined)?.success)
        throw new FactoryError('tracker_error', `Linear did not update agent session ${sessionId} (success: false)`)
    },

    async repositorySuggestions(issueId, sessionId, candidates) {
      const data = await withRetry('issueRepositorySuggestions', REPOSITORY_SUGGESTIONS_QUERY, {
        issueId,
        agentSessionId: sessionId,
        candidates,
      })
      const parsed = suggestionsSchema.safeParse(data.issueRepositorySuggestions)
      if (!parsed.success)
        throw new FactoryError('tracker_error', `unexpected issueRepositorySuggestions shape: ${parsed.error.issues[0]?.message}`)
      return parsed.data.suggestions
    },

    async getSession(sessionId) {
      const data = await withRetry('agentSession', AGENT_SESSION_QUERY, { id: sessionId, activitiesFirst: SESSION_ACTIVITIES_PAGE })
      const parsed = sessionSchema.safeParse(data.agentSession)
      if (!parsed.success) {
        const issue = parsed.error.issues[0]
        throw new FactoryError('tracker_error', `unexpected agentSession shape: ${issue?.path.join('.')} ${issue?.message}`, {
          fix: 'the API may have changed; report this with the message',
        })
      }
      return parsed.data
    },
  }
}
