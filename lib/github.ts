/**
 * GitHub pull requests over REST (ofetch). Find the open PR for the head branch first, so a rerun
 * updates it instead of opening another (invariant "idempotent-steps"). The token goes in one header per request.
 */
import type { FetchError, ofetch } from 'ofetch'
import { z } from './zod.ts'
import { FactoryError } from './errors.ts'

export interface GitHubRepo {
  owner: string
  name: string
}

/** owner/name from a github.com URL (https, ssh, scp-like), or null for anything else. */
export function parseGitHubUrl(url: string): GitHubRepo | null {
  const m =
    url.match(/^(?:https?:\/\/|ssh:\/\/|git:\/\/)(?:[^@/]+@)?github\.com(?::\d+)?[:/]([\w.-]+)\/([\w.-]+?)(?:\.git)?\/?$/i) ??
    url.match(/^git@github\.com:([\w.-]+)\/([\w.-]+?)(?:\.git)?$/i)
  return m ? { owner: m[1]!, name: m[2]! } : null
}

export interface PullRequestPlan {
  repo: GitHubRepo
  head: string
  base: string
  title: string
  body: string
}

export interface PullRequest {
  number: number
  url: string
  created: boolean
}

export interface GitHubDeps {
  apiUrl: string
  token: string
  fetch?: typeof ofetch
  /** Deadline per call, the whole response body included (default httpTimeoutMs()). */
  timeoutMs?: number
}

/** Default deadline of one GitHub call. */
export const HTTP_TIMEOUT_MS = 30_000

/** The GitHub deadline: ROSE_HTTP_TIMEOUT_MS when set to a positive number (tests), else HTTP_TIMEOUT_MS. The one place it is read. */
export function httpTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.ROSE_HTTP_TIMEOUT_MS)
  return Number.isFinite(v) && v > 0 ? v : HTTP_TIMEOUT_MS
}

/** The pull request fields the factory uses; anything else in GitHub's answer is ignored. */
const pullSchema = z.object({ number: z.number().int().positive(), html_url: z.string().url() })
const pullListSchema = z.array(pullSchema)

function isTimeout(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (e.name === 'TimeoutError' || /aborted due to timeout|timed? ?out/i.test(String((e as Error).message ?? ''))) return true
  }
  return false
}

function ghError(err: unknown, what: string, timeoutMs: number): FactoryError {
  if (isTimeout(err)) {
    return new FactoryError(
      'github_failed',
      `GitHub ${what} failed: timed out after ${timeoutMs} ms without a complete answer (ROSE_HTTP_TIMEOUT_MS)`,
      { fix: 'check GITHUB_API_URL and the network (a proxy that holds the connection open?); the run is retried', cause: err },
    )
  }
  // By name, not instanceof: ofetch is loaded only for a real call (a start-up without a PR to open never loads it).
  const fetchError = err instanceof Error && err.name === 'FetchError' ? (err as FetchError) : undefined
  const status = fetchError?.status
  const msg = fetchError ? ((fetchError.data as { message?: string })?.message ?? fetchError.message) : String(err)
  const fix =
    status === 401
      ? 'the GitHub token is invalid or expired: set FACTORY_GITHUB_TOKEN (or the agent github.token_env) to a token with repo scope'
      : status === 403 || status === 404
        ? 'the token cannot see or write the repository: grant it pull-request write access'
        : status === 422
          ? 'GitHub rejected the PR (is the branch pushed and different from base?)'
          : 'check GITHUB_API_URL and the network'
  return new FactoryError('github_failed', `GitHub ${what} failed${status ? ` (HTTP ${status})` : ''}: ${msg}`, { fix, cause: err })
}

/** GitHub's answer checked against `schema`; anything else (an HTML page from a proxy, a JSON error) is github_failed naming what came. */
function validated<T>(schema: z.ZodType<T>, res: { status: number; headers: Headers; _data?: unknown }, what: string): T {
  const parsed = schema.safeParse(res._data)
  if (parsed.success) return parsed.data
  const type = res.headers.get('content-type') ?? 'no content-type'
  const sample = (typeof res._data === 'string' ? res._data : JSON.stringify(res._data ?? null)).replace(/\s+/g, ' ').slice(0, 120)
  const issue = parsed.error.issues[0]
  throw new FactoryError(
    'github_failed',
    `GitHub ${what} answered HTTP ${res.status} (${type}) with an unexpected body: ${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message ?? 'invalid'}; body starts ${JSON.stringify(sample)}`,
    { fix: 'check GITHUB_API_URL points at the GitHub REST API (not a proxy login page or a web URL); the run is retried' },
  )
}

/** Open the PR for `plan.head`, or update the open one with the same head. Every call has a deadline and a checked answer. */
export async function upsertPullRequest(plan: PullRequestPlan, deps: GitHubDeps): Promise<PullRequest> {
  const api = deps.fetch ?? (await import('ofetch')).ofetch
  const timeoutMs = deps.timeoutMs ?? httpTimeoutMs()
  const headers = {
    Authorization: `Bearer ${deps.token}`,
    Accept: 'application/vnd.github+json',
    'X-GitHub-Api-Version': '2022-11-28',
    'User-Agent': 'rose-factory',
  }
  // The signal, not ofetch's `timeout` (cleared once the headers arrive), so a body that trickles forever is cut too.
  const call = <T>(
    schema: z.ZodType<T>,
    what: string,
    url: string,
    opts: { method?: 'GET' | 'PATCH' | 'POST'; query?: Record<string, string>; body?: Record<string, unknown>; retry: number },
  ) =>
    api
      .raw(url, { ...opts, headers, signal: AbortSignal.timeout(timeoutMs), retryDelay: 500 })
      .then((res) => validated(schema, res, what))
      .catch((err: unknown) => {
        throw err instanceof FactoryError ? err : ghError(err, what, timeoutMs)
      })
  const base = `${deps.apiUrl}/repos/${plan.repo.owner}/${plan.repo.name}/pulls`
  // Reads and the PATCH (same title and body again) are safe to retry on a 5xx; the POST is not.
  const existing = await call(pullListSchema, 'PR lookup', base, {
    query: { head: `${plan.repo.owner}:${plan.head}`, state: 'open' },
    retry: 2,
  })
  if (existing.length > 0) {
    const pr = existing[0]!
    await call(pullSchema, `PR #${pr.number} update`, `${base}/${pr.number}`, {
      method: 'PATCH',
      body: { title: plan.title, body: plan.body },
      retry: 1,
    })
    return { number: pr.number, url: pr.html_url, created: false }
  }
  const pr = await call(pullSchema, 'PR creation', base, {
    method: 'POST',
    body: { title: plan.title, body: plan.body, head: plan.head, base: plan.base },
    retry: 0,
  })
  return { number: pr.number, url: pr.html_url, created: true }
}
