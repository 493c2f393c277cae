/**
 * The relay's own first answer to a new agent session: a `thought` posted on `created`, so Linear
 * shows the agent as responsive (its deadline is ~10 s) even when no worker is online. Its id is
 * derived from the session, so a retried post (or a redelivered `created`) cannot duplicate it;
 * an id Linear already has counts as posted. Attempts stop before the 10 s deadline; a `userError`
 * (the session is gone) is final.
 */
import { stableUuid } from '../comments.ts'
import { AGENT_ACTIVITY_CREATE_MUTATION, AGENT_ACTIVITY_QUERY } from '../tracker/documents.ts'
import type { TokenKeeper } from './tokens.ts'

export const FIRST_THOUGHT = 'Received: queued for a worker'

/** The first thought's activity id for a session (the same on every attempt and every relay instance). */
export function firstThoughtId(sessionId: string): string {
  return stableUuid(`rose-factory/relay/first-thought/${sessionId}`)
}

export interface FirstThoughtDeps {
  fetch: (url: string, init: RequestInit) => Promise<Response>
  sleep: (ms: number) => Promise<void>
  now: () => number
}

const defaults: FirstThoughtDeps = { fetch: (url, init) => fetch(url, init), sleep: (ms) => Bun.sleep(ms), now: Date.now }

/** Waits before each attempt; the total stays inside Linear's 10 s. */
const WAITS_MS = [0, 500, 1_500, 3_000] as const
const DEADLINE_MS = 8_000

type GraphqlReply = { data?: Record<string, unknown> | null; errors?: { message?: string; extensions?: { userError?: boolean } }[] }

/** A poster of first thoughts through `keeper` (the one way to a token) to Linear's GraphQL at `apiUrl`. */
export function firstThoughtPoster(opts: {
  keeper: Pick<TokenKeeper, 'callWithToken'>
  apiUrl: string
  deps?: Partial<FirstThoughtDeps>
}): (orgId: string, sessionId: string) => Promise<void> {
  const deps = { ...defaults, ...opts.deps }
  const call = async (orgId: string, query: string, variables: Record<string, unknown>): Promise<GraphqlReply> => {
    const res = await opts.keeper.callWithToken(orgId, (token) =>
      deps.fetch(opts.apiUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(3_000),
      }),
    )
    return (await res.json().catch(() => ({ errors: [{ message: `HTTP ${res.status}, not JSON` }] }))) as GraphqlReply
  }
  return async (orgId, sessionId) => {
    const id = firstThoughtId(sessionId)
    const started = deps.now()
    let last = 'not attempted'
    for (const wait of WAITS_MS) {
      if (deps.now() - started + wait > DEADLINE_MS) break
      await deps.sleep(wait)
      try {
        const reply = await call(orgId, AGENT_ACTIVITY_CREATE_MUTATION, {
          input: { id, agentSessionId: sessionId, content: { type: 'thought', body: FIRST_THOUGHT } },
        })
        if ((reply.data?.agentActivityCreate as { success?: boolean } | undefined)?.success) return
        // Refused or ambiguous: an earlier attempt (or another instance) may have landed it.
        const exists = await call(orgId, AGENT_ACTIVITY_QUERY, { id }).catch(() => null)
        if ((exists?.data?.agentActivity as { id?: string } | undefined)?.id === id) return
        const error = reply.errors?.[0]
        last = error?.message ?? 'agentActivityCreate did not succeed'
        if (error?.extensions?.userError) throw new FinalError(last)
      } catch (e) {
        if (e instanceof FinalError) throw e
        last = e instanceof Error ? e.message : String(e)
      }
    }
    throw new Error(last)
  }
}

class FinalError extends Error {}
