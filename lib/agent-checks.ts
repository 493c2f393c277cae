/**
 * The checks of one agent against the services it needs: Linear (who the key is), the repo (`git
 * ls-remote`, the base branch), GitHub (may the token push), the engine CLI (version, its own
 * login status: no model call) and, for agent_session agents, the relay. Each takes doctor's
 * `deps` and returns what it saw and the fix; one request or one process each.
 */
import { relayGraphqlUrl } from './tracker/relay.ts'
import { type AgentConfig, agentSecretEnvs, type FactoryConfig, githubApiUrl, linearApiUrl } from './config.ts'
import type { DoctorDeps } from './doctor.ts'
import { claudeTokenHandover } from './engines/claude.ts'
import { CLAUDE_TOKEN_TARGET, engineEnv } from './engines/env.ts'
import { asFactoryError } from './errors.ts'
import { git } from './git.ts'
import { redactorFor } from './log.ts'
import { type CheckResult, engineBinCheck, githubToken, prRepo } from './preflight.ts'
import { remoteEnv } from './steps/worktree.ts'

/** What a check says (doctor adds its name and agent). */
export type Outcome = Omit<CheckResult, 'name' | 'agent'>

const firstLine = (text: string) =>
  text
    .trim()
    .split('\n')
    .find((l) => l.trim() && !/^WARNING:/.test(l)) ?? ''

/** Linear answers with the agent's key, and who the key is (one request). */
export async function linearCheck(agent: AgentConfig, { env, viewer, timeoutMs }: DoctorDeps): Promise<Outcome> {
  const key = env[agent.tracker.token_env]
  if (!key) return { status: 'warn', detail: `not tried: ${agent.tracker.token_env} is not set` }
  // agent_session: Linear through the relay's pass-through, with the worker token (never sent to Linear itself).
  const relay = agent.tracker.mode === 'agent_session' ? agent.tracker.relay_url : undefined
  let url = relay ? relayGraphqlUrl(relay) : (env.LINEAR_API_URL ?? 'Linear')
  try {
    if (!relay) url = linearApiUrl(env)
    const me = await viewer(url, key, timeoutMs, !!relay)
    return {
      status: 'ok',
      detail: relay ? `${url} answers; the app user is ${me.name} (${me.id})` : `${url} answers; the key is ${me.name} (${me.id})`,
    }
  } catch (err) {
    const e = asFactoryError(err)
    return { status: 'fail', detail: e.message.includes(url) ? e.message : `${url}: ${e.message}`, fix: e.fix }
  }
}

/** `git ls-remote` of the agents.yaml URL, hardened and with the worktree step's credentials; the base branch must be there. */
export async function repoCheck(agent: AgentConfig, home: string, deps: DoctorDeps) {
  const { url, base } = agent.repo
  const caller = { env: deps.env, redact: redactorFor(deps.env, agentSecretEnvs(agent)) }
  try {
    const env = remoteEnv({ home, agent, env: deps.env })
    const res = await git(['ls-remote', '--heads', '--', url, `refs/heads/${base}`], caller, { env, timeoutMs: deps.timeoutMs })
    const head = res.stdout.trim().split(/\s+/)[0]
    if (!head)
      return {
        status: 'fail' as const,
        detail: `${url} is reachable but has no branch ${base}`,
        fix: `push ${base} to the repository, or set repo.base of agent ${agent.name} to its default branch`,
      }
    return { status: 'ok' as const, detail: `${url} reachable; ${base} at ${head.slice(0, 12)}` }
  } catch (err) {
    const e = asFactoryError(err)
    return {
      status: 'fail' as const,
      detail: `${url} is not reachable: ${e.message}`,
      fix: `check repo.url of agent ${agent.name}, the network, and the credentials (ssh agent for git@ URLs, ${agent.github.token_env} for https)`,
    }
  }
}

/** One REST read: GET /repos/{owner}/{repo}, whose `permissions.push` says whether the token can push and open PRs. */
export async function githubCheck(agent: AgentConfig, deps: DoctorDeps) {
  const repo = prRepo(agent)
  if (!repo) return { status: 'ok' as const, detail: 'not needed: no PRs (the repo is not on GitHub)' }
  const token = githubToken(agent, deps.env)
  if (!token.value) return { status: 'warn' as const, detail: `not tried: ${token.name} is not set` }
  const slug = `${repo.owner}/${repo.name}`
  const url = `${githubApiUrl(deps.env)}/repos/${slug}`
  const res = await deps
    .fetch(url, {
      headers: {
        Authorization: `Bearer ${token.value}`,
        Accept: 'application/vnd.github+json',
        'X-GitHub-Api-Version': '2022-11-28',
        'User-Agent': 'rose-factory',
      },
      signal: AbortSignal.timeout(deps.timeoutMs),
    })
    .catch((err: unknown) => asFactoryError(err, 'github_failed'))
  if ('code' in res)
    return { status: 'fail' as const, detail: `GitHub unreachable at ${url}: ${res.message}`, fix: 'check GITHUB_API_URL and the network' }
  const body = (await res.json().catch(() => ({}))) as { permissions?: { push?: boolean }; message?: string }
  if (res.status === 401)
    return {
      status: 'fail' as const,
      detail: `GitHub refused ${token.name} (HTTP 401: ${body.message ?? 'bad credentials'})`,
      fix: `set ${token.name} to a valid token (it is invalid or expired)`,
    }
  if (!res.ok)
    return {
      status: 'fail' as const,
      detail: `GitHub answered HTTP ${res.status} for ${slug}${body.message ? `: ${body.message}` : ''}`,
      fix: `check repo.github / repo.url of agent ${agent.name}, and that ${token.name} can see ${slug}`,
    }
  if (body.permissions?.push !== true)
    return {
      status: 'fail' as const,
      detail: `${token.name} can read ${slug} but cannot push to it (permissions.push is not true): no PR could be opened`,
      fix: `give the token write access to ${slug} (contents and pull requests: read and write)`,
    }
  return { status: 'ok' as const, detail: `${token.name} can push to and open PRs on ${slug}` }
}

/** The engine binary and its version (`<bin> --version`). */
export async function engineCheck(config: FactoryConfig, agent: AgentConfig, deps: DoctorDeps) {
  const found = engineBinCheck(agent, deps.env)
  if (found.status !== 'ok' || !found.path || agent.engine === 'console') return found
  // No token for a version: the Claude token engineEnv adds is left out.
  const { [CLAUDE_TOKEN_TARGET]: _, ...env } = engineEnv(agent.engine, deps.env, config.agents.flatMap(agentSecretEnvs))
  const res = await deps.run([found.path, '--version'], { env, timeoutMs: deps.timeoutMs })
  if (res.exitCode !== 0)
    return {
      status: 'fail' as const,
      detail: `${found.path} --version failed (exit ${res.exitCode}): ${firstLine(res.stderr || res.stdout)}`,
      fix: `reinstall the ${agent.engine} CLI`,
    }
  return { status: 'ok' as const, detail: `${agent.engine} ${firstLine(res.stdout)} at ${found.path}` }
}

/** The CLI's own login status, no model call: `claude auth status --json` (with the token the factory hands it), `codex login status`. */
export async function loginCheck(config: FactoryConfig, agent: AgentConfig, deps: DoctorDeps) {
  const found = engineBinCheck(agent, deps.env)
  if (!found.path) return { status: 'warn' as const, detail: `not tried: no ${agent.engine} binary` }
  const env = engineEnv(agent.engine, deps.env, config.agents.flatMap(agentSecretEnvs))
  if (agent.engine === 'codex') {
    const res = await deps.run([found.path, 'login', 'status'], { env, timeoutMs: deps.timeoutMs })
    const said = firstLine(`${res.stdout}\n${res.stderr}`)
    if (res.exitCode === 0) return { status: 'ok' as const, detail: `codex login status: ${said}` }
    return {
      status: 'fail' as const,
      detail: `codex login status: ${said || `exit ${res.exitCode}`}`,
      fix: 'run `codex login` once on this machine, as the user the factory runs as',
    }
  }
  // The token goes in as in a run: on a file descriptor, never in the CLI's environ.
  const token = claudeTokenHandover(env[CLAUDE_TOKEN_TARGET])
  const { [CLAUDE_TOKEN_TARGET]: _, ...clean } = env
  const res = await deps.run([found.path, 'auth', 'status', '--json'], {
    env: { ...clean, ...token.env },
    fds: token.fds,
    timeoutMs: deps.timeoutMs,
  })
  let status: { loggedIn?: boolean; authMethod?: string } | undefined
  try {
    status = JSON.parse(res.stdout) as typeof status
  } catch {}
  const via = deps.env.CLAUDE_AUTH_TOKEN ? 'CLAUDE_AUTH_TOKEN is set' : 'CLAUDE_AUTH_TOKEN is not set'
  const fix = 'run `claude setup-token` and export the token it prints as CLAUDE_AUTH_TOKEN'
  if (!status)
    return {
      status: 'warn' as const,
      detail: `cannot tell: \`claude auth status\` gave no answer this CLI version understands; ${via}`,
      fix,
    }
  if (status.loggedIn)
    return { status: 'ok' as const, detail: `claude auth status: logged in (${status.authMethod ?? 'unknown method'}); ${via}` }
  return { status: 'fail' as const, detail: `claude auth status: not logged in; ${via}`, fix }
}

/** agent_session agents: the relay answers GET /healthz with the worker token. */
export async function relayCheck(agent: AgentConfig, deps: DoctorDeps) {
  const relay = (agent.tracker as { relay_url?: string }).relay_url
  if (!relay)
    return {
      status: 'warn' as const,
      detail: 'no tracker.relay_url configured',
      fix: 'set tracker.relay_url to the relay this agent takes its sessions from',
    }
  const url = `${relay.replace(/\/+$/, '')}/healthz`
  const token = deps.env[agent.tracker.token_env]
  const res = await deps
    .fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(deps.timeoutMs) })
    .catch((err: unknown) => asFactoryError(err))
  if ('code' in res)
    return {
      status: 'fail' as const,
      detail: `relay unreachable at ${url}: ${res.message}`,
      fix: 'start the relay, or correct tracker.relay_url',
    }
  if (!res.ok)
    return {
      status: 'fail' as const,
      detail: `relay answered HTTP ${res.status} at ${url}`,
      fix:
        res.status === 401 || res.status === 403
          ? `check ${agent.tracker.token_env} (the relay's worker token)`
          : 'check the relay and tracker.relay_url',
    }
  return { status: 'ok' as const, detail: `relay ${url} answers with the worker token` }
}
