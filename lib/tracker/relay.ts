/**
 * Linear through the relay (agent_session mode): the worker holds no Linear token, only the
 * relay's worker token; every GraphQL request goes to `${relay_url}/linear/graphql` with that token
 * as a bearer and the workspace in `X-Linear-Organization`, and the relay sends it on with the
 * app's token (lib/relay/passthrough.ts). The api_key tracker's documents and steps work unchanged
 * over it; only the failures that are the relay's own get their own codes.
 */
import { LinearError } from '@linear/sdk'
import { FactoryError } from '../errors.ts'
import { createLinearTracker, type LinearTrackerOptions } from './linear.ts'
import type { Tracker } from './types.ts'

/** The pass-through's URL for a relay base URL. */
export function relayGraphqlUrl(relayUrl: string): string {
  return `${relayUrl.replace(/\/+$/, '')}/linear/graphql`
}

/** The headers of every pass-through request: the worker token and the workspace (none: the relay's only one). */
export function relayHeaders(token: string, orgId: string): Record<string, string> {
  return orgId ? { authorization: `Bearer ${token}`, 'x-linear-organization': orgId } : { authorization: `Bearer ${token}` }
}

/**
 * A failure the relay itself answered (its GraphQL-shaped `RELAY_*` codes, or its 401 for a wrong
 * worker token) as a FactoryError; undefined when the failure is Linear's own.
 */
export function relayFailure(input: {
  status: number
  code?: string
  message: string
  relayUrl: string
  orgId: string
}): FactoryError | undefined {
  const where = `the relay at ${input.relayUrl.replace(/\/+$/, '')}`
  switch (input.code) {
    case 'RELAY_UNKNOWN_ORGANIZATION':
    case 'RELAY_INSTALL_REVOKED':
    case 'RELAY_INSTALL_REFUSED':
      return new FactoryError('relay_not_installed', `${where} has no usable Linear install for workspace ${input.orgId}: ${input.message}`)
    case 'RELAY_UPSTREAM_UNREACHABLE':
    case 'RELAY_TOKEN_UNAVAILABLE':
      return new FactoryError('tracker_unreachable', `${where} cannot reach Linear: ${input.message}`, {
        fix: 'the relay retries; check its /status lastErrors if it persists',
      })
    case 'RELAY_NO_ORGANIZATION':
    case 'RELAY_BODY_TOO_LARGE':
      return new FactoryError('relay_refused', `${where} refused the request: ${input.message}`)
  }
  if (input.status === 0)
    return new FactoryError('relay_unreachable', `${where} did not answer: ${input.message}`, {
      fix: 'check tracker.relay_url and that the relay runs (GET /healthz); the worker retries with backoff',
    })
  if (input.status === 401) return new FactoryError('relay_auth', `${where} refused the worker token (HTTP 401): ${input.message}`)
  if (input.status === 503 && input.code === undefined)
    return new FactoryError('relay_refused', `${where} cannot pass requests to Linear: ${input.message}`, {
      fix: 'configure the Linear app on the relay (LINEAR_CLIENT_ID, LINEAR_CLIENT_SECRET)',
    })
  return undefined
}

/** The relay's `{error: {code, message}}` or GraphQL `{errors: [{message, extensions: {code}}]}`, read leniently. */
export function relayErrorOf(body: unknown): { code?: string; message: string } {
  const b = body as { error?: { code?: string; message?: string }; errors?: { message?: string; extensions?: { code?: string } }[] } | null
  if (b?.errors?.[0]) return { code: b.errors[0].extensions?.code, message: b.errors[0].message ?? 'error' }
  if (b?.error) return { message: b.error.message ?? b.error.code ?? 'error' }
  return { message: 'no readable error' }
}

/**
 * The api_key tracker pointed at the relay's pass-through: poll, getIssue, moveIssue, comments and
 * attachments as before, authenticated with the worker token for workspace `orgId`.
 */
export function createRelayTracker(
  opts: { relayUrl: string; token: string; orgId: string } & Omit<
    LinearTrackerOptions,
    'apiKey' | 'apiUrl' | 'bearer' | 'headers' | 'mapError'
  >,
): Tracker & { requests: () => number } {
  const { relayUrl, token, orgId, ...rest } = opts
  return createLinearTracker({
    ...rest,
    apiKey: token,
    apiUrl: relayGraphqlUrl(relayUrl),
    bearer: true,
    headers: orgId ? { 'x-linear-organization': orgId } : {},
    mapError(e) {
      const cause = e.cause
      if (!(cause instanceof LinearError)) return e
      const response = (cause.raw as { response?: unknown } | undefined)?.response
      const read = relayErrorOf(response)
      // No HTTP status: the relay did not answer at all (refused, reset, timed out).
      const message = cause.status === undefined ? cause.message : read.message
      return relayFailure({ status: cause.status ?? 0, code: read.code, message, relayUrl, orgId }) ?? e
    },
  })
}
