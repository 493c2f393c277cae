/**
 * The cheap checks of an agent's set-up (no network, no process): its Linear token variable, its
 * engine binary, its GitHub token when PRs go to GitHub. `start` runs them once and refuses an
 * agent that fails one before touching any of its issues; `doctor` shows them beside the slow ones.
 */
import type { ConsolaInstance } from 'consola'
import type { AgentConfig } from './config.ts'
import { INSTALL_FIX, resolveEngineBin } from './engines/resolve.ts'
import { asFactoryError } from './errors.ts'
import { isLocalRemote } from './git.ts'
import { type GitHubRepo, parseGitHubUrl } from './github.ts'
import type { SecretStatus } from './secret-sources.ts'

export type CheckStatus = 'ok' | 'warn' | 'fail'

/** One line of doctor's table (and of start's refusal). */
export interface CheckResult {
  name: string
  status: CheckStatus
  detail: string
  /** What to do about a warn or fail. */
  fix?: string
  /** The agent the check is about (absent: the machine). */
  agent?: string
}

/** The GitHub repository the agent's PRs go to (repo.github, else a github.com URL), or null (local path, other host). */
export function prRepo(agent: AgentConfig): GitHubRepo | null {
  if (agent.repo.github) {
    const [owner, name] = agent.repo.github.split('/')
    return { owner: owner!, name: name! }
  }
  return isLocalRemote(agent.repo.url) ? null : parseGitHubUrl(agent.repo.url)
}

/** Every GitHub repository the agent's PRs may go to: one per `repos` entry on GitHub. */
export function prRepos(agent: AgentConfig): GitHubRepo[] {
  return agent.repos.flatMap((repo) => prRepo({ ...agent, repo }) ?? [])
}

/** The GitHub token the agent's pushes and PRs use (github.token_env, else GITHUB_TOKEN), and where it came from. */
export function githubToken(agent: AgentConfig, env: NodeJS.ProcessEnv): { value?: string; name: string } {
  if (env[agent.github.token_env]) return { value: env[agent.github.token_env], name: agent.github.token_env }
  if (env.GITHUB_TOKEN) return { value: env.GITHUB_TOKEN, name: 'GITHUB_TOKEN' }
  return { name: agent.github.token_env }
}

/** Where a set variable came from, for a check's detail: ` (env)` or ` (gcp: projects/P/secrets/NAME)`. */
function origin(from: SecretStatus | undefined): string {
  return from?.source === 'gcp' ? ` (gcp: ${from.secret})` : ' (env)'
}

/** A secret Secret Manager refused (403, not found, disabled): a failed check with Google's reason and the fix. */
function refused(base: { name: string; agent: string }, from: SecretStatus | undefined): CheckResult | undefined {
  if (from?.source === 'missing' && from.error) return { ...base, status: 'fail', detail: from.error.message, fix: from.error.fix }
  return undefined
}

/** The agent's Linear token variable is set (`from`: where it came from, when secrets were resolved). */
export function trackerTokenCheck(agent: AgentConfig, env: NodeJS.ProcessEnv, from?: SecretStatus): CheckResult {
  const name = agent.tracker.token_env
  if (env[name]) return { name: 'linear token', agent: agent.name, status: 'ok', detail: `${name} is set${origin(from)}` }
  const gcp = refused({ name: 'linear token', agent: agent.name }, from)
  if (gcp) return gcp
  return {
    name: 'linear token',
    agent: agent.name,
    status: 'fail',
    detail: `${name} is not set`,
    fix: `export ${name}=<the Linear API key of agent ${agent.name}'s user> (Linear: Settings > Security & access > Personal API keys)`,
  }
}

/** The engine binary exists (console is built in); `path` is what doctor runs for the version. */
export function engineBinCheck(agent: AgentConfig, env: NodeJS.ProcessEnv): CheckResult & { path?: string } {
  const base = { name: 'engine', agent: agent.name }
  if (agent.engine === 'console') return { ...base, status: 'ok', detail: 'console (built in, offline)' }
  try {
    const path = resolveEngineBin(agent.engine, agent[agent.engine]?.bin, env)
    return { ...base, status: 'ok', detail: `${agent.engine} at ${path}`, path }
  } catch (err) {
    const e = asFactoryError(err)
    return { ...base, status: 'fail', detail: e.message, fix: e.fix ?? INSTALL_FIX[agent.engine] }
  }
}

/** A GitHub token is set when the agent's PRs go to GitHub (without one a run would end in review with no PR). */
export function githubTokenCheck(agent: AgentConfig, env: NodeJS.ProcessEnv, from?: SecretStatus): CheckResult {
  const base = { name: 'github token', agent: agent.name }
  // Any repository of the agent on GitHub needs it (several repositories: named together).
  const slugs = prRepos(agent).map((r) => `${r.owner}/${r.name}`)
  if (!slugs.length)
    return {
      ...base,
      status: 'ok',
      detail: `not needed: ${agent.repos.length > 1 ? 'no repository of the agent' : agent.repo.url} is not on GitHub (no PRs)`,
    }
  const slug = slugs.join(', ')
  const token = githubToken(agent, env)
  const via = token.name === agent.github.token_env ? origin(from) : ' (env)'
  if (token.value) return { ...base, status: 'ok', detail: `${token.name} is set${via} (PRs to ${slug})` }
  const gcp = refused(base, from)
  if (gcp) return gcp
  return {
    ...base,
    status: 'fail',
    detail: `${agent.github.token_env} is not set (nor GITHUB_TOKEN): no PR could be opened on ${slug}`,
    fix: `export ${agent.github.token_env}=<a GitHub token that can push to and open pull requests on ${slug}>`,
  }
}

/** The cheap checks of one agent, in table order (`secrets`: where each secret came from, when resolved). */
export function cheapChecks(agent: AgentConfig, env: NodeJS.ProcessEnv, secrets: readonly SecretStatus[] = []): CheckResult[] {
  const from = (name: string) => secrets.find((s) => s.name === name)
  return [
    trackerTokenCheck(agent, env, from(agent.tracker.token_env)),
    engineBinCheck(agent, env),
    githubTokenCheck(agent, env, from(agent.github.token_env)),
  ]
}

/**
 * Which agents `start` may run: those whose cheap checks all pass. The others are refused with
 * their failed checks (the caller logs them and never touches their issues).
 */
export function preflight(
  agents: readonly AgentConfig[],
  env: NodeJS.ProcessEnv,
): { runnable: AgentConfig[]; refused: { agent: string; problems: CheckResult[] }[] } {
  const runnable: AgentConfig[] = []
  const refused: { agent: string; problems: CheckResult[] }[] = []
  for (const agent of agents) {
    const problems = cheapChecks(agent, env).filter((c) => c.status === 'fail')
    if (problems.length) refused.push({ agent: agent.name, problems })
    else runnable.push(agent)
  }
  return { runnable, refused }
}

/** preflight() for start: each refused agent logged with its problems and fixes; the runnable ones returned. */
export function admitAgents(agents: readonly AgentConfig[], env: NodeJS.ProcessEnv, log: ConsolaInstance): AgentConfig[] {
  const { runnable, refused } = preflight(agents, env)
  for (const r of refused)
    log.error(
      `${r.agent}: not started, its issues are left alone: ${r.problems.map((p) => `${p.name}: ${p.detail}${p.fix ? ` (fix: ${p.fix})` : ''}`).join('; ')}`,
    )
  return runnable
}
