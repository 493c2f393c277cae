/**
 * GitHub pull requests over REST (ofetch). Find the open PR for the head branch first, so a rerun
 * updates it instead of opening another (invariant "idempotent-steps"). The token goes in one header per request.
 */
import { ofetch, FetchError } from 'ofetch'
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
}

function ghError(err: unknown, what: string): FactoryError {
  const status = err instanceof FetchError ? err.status : undefined
  const msg = err instanceof FetchError ? ((err.data as { message?: string })?.message ?? err.message) : String(err)
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

/** Open the PR for `plan.head`, or update the open one with the same head. */
export async function upsertPullRequest(plan: PullRequestPlan, deps: GitHubDeps): Promise<PullRequest> {
  const api = deps.fetch ?? ofetch
  const headers = {
    Authorization: `Bearer ${deps.token}`,
    Accept: 'application/vnd.github+json',
    'X-GitHub-Api-Version': '2022-11-28',
    'User-Agent': 'rose-factory',
  }
  const base = `${deps.apiUrl}/repos/${plan.repo.owner}/${plan.repo.name}/pulls`
  let existing: Array<{ number: number; html_url: string }>
  try {
    existing = await api(base, { headers, query: { head: `${plan.repo.owner}:${plan.head}`, state: 'open' } })
  } catch (err) {
    throw ghError(err, 'PR lookup')
  }
  if (existing.length > 0) {
    const pr = existing[0]!
    try {
      await api(`${base}/${pr.number}`, { method: 'PATCH', headers, body: { title: plan.title, body: plan.body } })
    } catch (err) {
      throw ghError(err, `PR #${pr.number} update`)
    }
    return { number: pr.number, url: pr.html_url, created: false }
  }
  try {
    const pr = await api<{ number: number; html_url: string }>(base, {
      method: 'POST',
      headers,
      body: { title: plan.title, body: plan.body, head: plan.head, base: plan.base },
    })
    return { number: pr.number, url: pr.html_url, created: true }
  } catch (err) {
    throw ghError(err, 'PR creation')
  }
}
