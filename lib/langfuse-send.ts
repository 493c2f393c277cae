/**
 * Sending one ingestion batch to Langfuse (`POST {LANGFUSE_HOST}/api/public/ingestion`, Basic auth
 * public key : secret key; the answer is 207 `{ successes, errors }`, see lib/langfuse.ts): one
 * retry on a network error or a 5xx, both attempts within one time budget (~5 s), so a Langfuse
 * outage never holds a run longer than that. Never throws: what went wrong comes back as a value.
 */
import type { IngestionEvent } from './langfuse.ts'
import type { LangfuseSettings } from './langfuse-settings.ts'

/** The side effects of sending: fetch, a wait between attempts, the time budget (both attempts together). */
export interface SendDeps {
  fetch: (url: URL, init: RequestInit) => Promise<Response>
  sleep: (ms: number) => Promise<void>
  timeoutMs: number
}

export const realSendDeps: SendDeps = {
  fetch: (url, init) => fetch(url, init),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  timeoutMs: 5_000,
}

/** What became of a batch: sent (some events may have been refused: `refused`), or a problem naming the host. */
export type SendResult = { sent: true; refused: { id: string; status: number; message?: string }[] } | { sent: false; problem: string }

/** POST one batch; one retry on a network error or 5xx, all within deps.timeoutMs. Never throws. */
export async function sendBatch(settings: LangfuseSettings, batch: { batch: IngestionEvent[] }, deps: SendDeps): Promise<SendResult> {
  let url: URL
  try {
    url = new URL(`${settings.host.replace(/\/+$/, '')}/api/public/ingestion`)
  } catch {
    return { sent: false, problem: `LANGFUSE_HOST is not a URL (fix: export LANGFUSE_HOST=https://<your Langfuse>)` }
  }
  const where = url.origin
  const signal = AbortSignal.timeout(deps.timeoutMs)
  const auth = `Basic ${Buffer.from(`${settings.publicKey}:${settings.secretKey}`).toString('base64')}`
  let problem = ''
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const res = await deps.fetch(url, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify(batch),
        signal,
      })
      const text = await res.text()
      if (res.ok) {
        const answer = parseAnswer(text)
        if (answer) return { sent: true, refused: answer.errors ?? [] }
        problem = `${where} answered HTTP ${res.status} without Langfuse's { successes, errors } (is LANGFUSE_HOST the Langfuse URL?)`
        break
      }
      problem = `${where} answered HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)' : ''}`
      if (res.status < 500) break
    } catch (err) {
      problem = signal.aborted ? `${where} did not answer within ${deps.timeoutMs} ms` : `${where} unreachable: ${(err as Error).message}`
      if (signal.aborted) break
    }
    if (attempt === 1) await deps.sleep(250)
  }
  return { sent: false, problem }
}

/** The 207 answer's JSON, or undefined when the body is not an object (a proxy's login page). */
function parseAnswer(text: string): { errors?: { id: string; status: number; message?: string }[] } | undefined {
  try {
    const v = JSON.parse(text) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined
  } catch {
    return undefined
  }
}
