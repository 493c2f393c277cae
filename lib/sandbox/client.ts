/**
 * A small client for a running sandbox's admin API (/_sandbox/*), used by scripts/sandbox.ts and
 * usable by the demo. Failures are FactoryErrors: a 400 is the caller's bad value (`usage`).
 */
import { ofetch } from 'ofetch'
import { FactoryError } from '../errors.ts'

export const SANDBOX_URL_ENV = 'LINEAR_SANDBOX_URL'

/** http://HOST:PORT from a base URL or the /graphql URL (default: $LINEAR_SANDBOX_URL). */
export function sandboxBaseUrl(url: unknown): string {
  const raw = typeof url === 'string' && url ? url : process.env[SANDBOX_URL_ENV]
  if (!raw)
    throw new FactoryError('usage', 'no sandbox URL', {
      fix: `pass --url http://127.0.0.1:PORT (printed by "sandbox serve") or set ${SANDBOX_URL_ENV}`,
    })
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new FactoryError('usage', `--url ${JSON.stringify(raw)} is not a URL`, { fix: 'pass --url http://127.0.0.1:PORT' })
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/(graphql)?\/?$/, '')}`
}

/** Call `/_sandbox/<path>`; resolves with the JSON answer of a 2xx. */
export async function sandboxAdmin(url: unknown, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const base = sandboxBaseUrl(url)
  const res = await ofetch
    .raw(`${base}/_sandbox/${path}`, {
      method,
      body: method === 'POST' ? ((body ?? {}) as Record<string, unknown>) : undefined,
      timeout: 30_000,
      retry: 0,
      ignoreResponseError: true,
      parseResponse: (text) => {
        try {
          return JSON.parse(text)
        } catch {
          return { error: { message: text } }
        }
      },
    })
    .catch((err: unknown) => {
      throw new FactoryError('tracker_unreachable', `cannot reach the sandbox at ${base}: ${err instanceof Error ? err.message : err}`, {
        fix: 'start it with "bun scripts/sandbox.ts serve" and pass the URL it prints',
      })
    })
  const json = res._data as any
  if (res.ok) return json
  const message = json?.error?.message ?? `HTTP ${res.status}`
  if (res.status === 400) {
    throw new FactoryError('usage', `sandbox refused ${path}: ${message}`, {
      fix: json?.error?.field ? `fix the value of "${json.error.field}"` : 'fix the value and retry',
    })
  }
  throw new FactoryError('tracker_error', `sandbox ${path} failed: HTTP ${res.status} ${message}`, { fix: `is ${base} a Linear sandbox?` })
}

/** Where the sandbox sends AgentSessionEvent webhooks (null turns them off). */
export function sandboxSetWebhook(
  url: unknown,
  target: { url: string; secret: string; retryDelaysMs?: number[]; timeoutMs?: number } | null,
): Promise<any> {
  return sandboxAdmin(url, 'POST', 'webhook', target ?? { off: true })
}

/** A human (`user`, an email) delegates `issue` to the app user `app`: a new session and a `created` webhook. */
export function sandboxDelegate(url: unknown, input: { issue: string; user: string; app?: string }): Promise<any> {
  return sandboxAdmin(url, 'POST', 'delegate', input)
}

/** A human mentions the app in a new comment on `issue`: a new session on that comment and a `created` webhook. */
export function sandboxMention(url: unknown, input: { issue: string; user: string; app?: string; body?: string }): Promise<any> {
  return sandboxAdmin(url, 'POST', 'mention', input)
}

/** A human's follow-up in a session (`signal: 'stop'` to stop it): a `prompt` activity and a `prompted` webhook. */
export function sandboxPrompt(url: unknown, input: { session: string; body?: string; user?: string; signal?: 'stop' }): Promise<any> {
  return sandboxAdmin(url, 'POST', 'prompt', input)
}

/** Every webhook delivery so far, with its attempts and their response statuses. */
export async function sandboxDeliveries(url: unknown): Promise<any[]> {
  return (await sandboxAdmin(url, 'GET', 'deliveries')).deliveries
}

/** Send delivery `id` again under the same Linear-Delivery id. */
export function sandboxRedeliver(url: unknown, id: string): Promise<any> {
  return sandboxAdmin(url, 'POST', 'deliveries/redeliver', { id })
}

/** Send delivery `id` (default: the last) again under a new Linear-Delivery id, as Linear's duplicates come. */
export function sandboxDuplicate(url: unknown, id?: string): Promise<any> {
  return sandboxAdmin(url, 'POST', 'deliveries/duplicate', id ? { id } : {})
}

/** Agent sessions (of one issue when given) with their status and visible activities. */
export async function sandboxSessions(url: unknown, issue?: string): Promise<any[]> {
  return (await sandboxAdmin(url, 'POST', 'sessions', issue ? { issue } : {})).sessions
}
