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
