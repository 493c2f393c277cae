/**
 * One GraphQL request to Linear, as @linear/sdk's LinearGraphQLClient.rawRequest sends it (same
 * headers, same body), without loading the SDK on the way: the SDK is ~3 MB of generated models
 * whose import alone costs more than a whole idle `start --once`. Only a failed answer loads it, to
 * turn the response into the SDK's own LinearError (parseLinearError), which tracker/errors.ts maps.
 */
import { FactoryError } from '../errors.ts'

/** What a successful request returns. */
export interface LinearResponse {
  data: unknown
  headers: Headers
  status: number
}

export interface LinearTransport {
  apiUrl: string
  request(query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<LinearResponse>
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * The transport for `apiUrl` with a personal API key (or, `bearer`, an OAuth-style token such as
 * the relay's worker token); a plain-http URL is refused unless local (as the SDK does).
 */
export function linearTransport(
  apiKey: string,
  apiUrl: string,
  opts: { bearer?: boolean; headers?: Record<string, string> } = {},
): LinearTransport {
  const { protocol, hostname } = new URL(apiUrl)
  if (protocol !== 'https:' && !(protocol === 'http:' && LOCAL_HOSTS.has(hostname)))
    throw new FactoryError('config_invalid', `LINEAR_API_URL=${JSON.stringify(apiUrl)} must use https unless it points to this machine`, {
      fix: 'use an https:// URL (or http://127.0.0.1:PORT/graphql for the sandbox), or unset LINEAR_API_URL',
    })
  const headers = {
    'Content-Type': 'application/json',
    Authorization: opts.bearer ? `Bearer ${apiKey}` : apiKey,
    'User-Agent': `${process.env.npm_package_name ?? '@linear/sdk'}@${encodeURIComponent(process.env.npm_package_version ?? 'unknown')}`,
    ...opts.headers,
  }
  return {
    apiUrl,
    async request(query, variables, signal) {
      const response = await fetch(apiUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }), signal })
      const json = (response.headers.get('Content-Type') ?? '').startsWith('application/json')
      const result = (json ? await response.json() : await response.text()) as string | { data?: unknown; errors?: unknown[] }
      if (typeof result !== 'string' && response.ok && !result.errors && result.data)
        return { data: result.data, headers: response.headers, status: response.status }
      const { GraphQLClientError, parseLinearError } = await import('@linear/sdk')
      throw parseLinearError(
        new GraphQLClientError(
          { ...(typeof result === 'string' ? { error: result } : result), status: response.status, headers: response.headers } as never,
          { query, variables },
        ),
      )
    },
  }
}
