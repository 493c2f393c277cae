/**
 * How Linear's failures become FactoryErrors: RATELIMITED with the reset time from Linear's
 * headers (clamped), outages and timeouts as tracker_unreachable, a wrong endpoint as a config
 * error naming LINEAR_API_URL, a refused key as tracker_auth, "Entity not found" as final.
 */
import type { LinearError, RatelimitedLinearError } from '@linear/sdk'
import { FactoryError } from '../errors.ts'
import { clampResetAt } from '../ratelimit.ts'

/**
 * A LinearError of the SDK, by shape: this module must not import the SDK (its import costs more
 * than an idle tick; tracker/transport.ts loads it only to build these errors).
 */
function isLinearError(err: unknown): err is LinearError {
  return err instanceof Error && typeof (err as LinearError).type === 'string' && 'raw' in err && 'errors' in err
}

/** The SDK's RatelimitedLinearError, by its type. */
function isRatelimited(err: unknown): err is RatelimitedLinearError {
  return isLinearError(err) && err.type === 'Ratelimited'
}

/**
 * True when the server answered but not as a GraphQL endpoint: no GraphQL errors, and a 404/405
 * or a body without `data`/`errors` (a wrong path such as LINEAR_API_URL without /graphql; the
 * SDK reports any bare 4xx as an AuthenticationError, which would blame the key).
 */
function notGraphQLEndpoint(err: LinearError): boolean {
  if (err.errors?.length) return false
  const response = (err.raw as { response?: Record<string, unknown> } | undefined)?.response
  if (!response) return false
  if (err.status === 404 || err.status === 405) return true
  return err.status !== undefined && err.status < 300 && !('data' in response) && !('errors' in response)
}

/** Translate an SDK/transport error into a FactoryError with a code and a fix (`apiUrl` names the endpoint). */
export function toTrackerError(err: unknown, operation: string, now = Date.now(), apiUrl?: string): FactoryError {
  if (err instanceof FactoryError) return err
  if (isLinearError(err) && notGraphQLEndpoint(err)) {
    const url = apiUrl?.replace(/\/+$/, '')
    return new FactoryError(
      'config_invalid',
      `LINEAR_API_URL is not a GraphQL endpoint: ${url ?? 'the server'} answered the ${operation} request with HTTP ${err.status} and no GraphQL response`,
      {
        fix:
          url && !url.endsWith('/graphql')
            ? `end LINEAR_API_URL with /graphql (${url}/graphql), or unset it to use Linear's`
            : "set LINEAR_API_URL to the GraphQL endpoint (Linear's or your proxy's, ending with /graphql), or unset it to use Linear's",
        cause: err,
      },
    )
  }
  if (isRatelimited(err)) {
    // Clamped: a reset far in the future (a bad header) must not stop the agent for good; ask again within the hour.
    const resetAt = clampResetAt(
      err.requestsResetAt ?? err.complexityResetAt ?? (err.retryAfter ? now + err.retryAfter * 1000 : now + 60_000),
      now,
    )
    return new FactoryError(
      'tracker_rate_limited',
      `Linear rate limit hit during ${operation}; resets at ${new Date(resetAt).toISOString()}`,
      {
        fix: 'wait for the reset (the factory backs off by itself); poll less often or use fewer agents per key',
        details: { resetAt },
        cause: err,
      },
    )
  }
  if (isLinearError(err)) {
    const msg = err.errors?.[0]?.message ?? err.message
    if (err.type === 'AuthenticationError' || err.status === 401) {
      return new FactoryError('tracker_auth', `Linear refused the API key during ${operation}: ${msg}`, {
        fix: "check the agent's token_env variable holds a valid Linear API key of the agent user",
        cause: err,
      })
    }
    if (/not found|could not find/i.test(msg)) {
      return new FactoryError('tracker_not_found', `Linear: ${msg} (${operation})`, { fix: 'check the issue id or identifier', cause: err })
    }
    if (err.type === 'NetworkError' || err.type === 'InternalError' || (err.status ?? 0) >= 500 || err.status === undefined) {
      return new FactoryError(
        'tracker_unreachable',
        `Linear is unreachable or failing during ${operation}: ${msg}${err.status ? ` (HTTP ${err.status})` : ''}`,
        {
          fix: 'check LINEAR_API_URL and the network; the factory retries with backoff',
          cause: err,
        },
      )
    }
    return new FactoryError('tracker_error', `Linear error during ${operation}: ${msg}`, {
      fix: 'see the message; report it if it persists',
      cause: err,
    })
  }
  const e = err as Error & { name?: string }
  const timedOut = e?.name === 'TimeoutError' || e?.name === 'AbortError'
  return new FactoryError(
    'tracker_unreachable',
    `Linear is unreachable during ${operation}: ${timedOut ? 'request timed out' : (e?.message ?? String(err))}`,
    {
      fix: 'check LINEAR_API_URL and the network; the factory retries with backoff',
      cause: err,
    },
  )
}
