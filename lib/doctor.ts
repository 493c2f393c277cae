/**
 * `doctor`: every check of a set-up, each a small function of a few side effects (`deps`) that
 * says ok, warn or fail, what it saw and the fix. planChecks() lists them (pure); runChecks() runs
 * them side by side and keeps their order. One request per service: Linear's viewer, GitHub's
 * repository, the relay's /healthz; git and the engine CLIs are run for real (their version,
 * `git ls-remote`, the CLIs' own login status: no model call).
 */
import { statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { type AgentConfig, agentSecretEnvs, type FactoryConfig, factoryHome, githubApiUrl, linearApiUrl } from './config.ts'
import { claudeTokenHandover } from './engines/claude.ts'
import { CLAUDE_TOKEN_TARGET, engineEnv } from './engines/env.ts'
import { asFactoryError, type FactoryError } from './errors.ts'
import { git } from './git.ts'
import { redactorFor } from './log.ts'
import { ensureHome } from './paths.ts'
import { cheapChecks, type CheckResult, engineBinCheck, githubToken, prRepo } from './preflight.ts'
import { run, type RunOptions, type RunResult } from './proc.ts'
import { remoteEnv } from './steps/worktree.ts'
import { VIEWER_QUERY } from './tracker/documents.ts'

export type { CheckResult } from './preflight.ts'

export interface DoctorDeps {
  env: NodeJS.ProcessEnv
  /** HTTP for GitHub and the relay. */
  fetch: typeof fetch
  /** Linear's viewer for a key (one GraphQL request), or a FactoryError thrown. */
  viewer: (apiUrl: string, key: string, timeoutMs: number) => Promise<{ id: string; name: string }>
  /** A process: git, the engine CLIs. */
  run: (argv: string[], opts: RunOptions) => Promise<RunResult>
  /** Free bytes for an unprivileged user on the filesystem holding `path`. */
  freeBytes: (path: string) => number
  timeoutMs: number
}

/** One check: its name, the agent it is about, and how to run it. */
export interface Check {
  name: string
  agent?: string
  run: (deps: DoctorDeps) => Promise<Omit<CheckResult, 'name' | 'agent'>> | Omit<CheckResult, 'name' | 'agent'>
}

const GiB = 2 ** 30
const MiB = 2 ** 20

/** The real side effects. */
export function realDoctorDeps(env: NodeJS.ProcessEnv): DoctorDeps {
  return {
    env,
    fetch: globalThis.fetch,
    viewer: linearViewer,
    run,
    freeBytes: (path) => {
      const s = statfsSync(path)
      return s.bavail * s.bsize
    },
    timeoutMs: 15_000,
  }
}

/** Linear's viewer through @linear/sdk's transport (the tracker's error mapping: refused key, unreachable, not GraphQL). */
async function linearViewer(apiUrl: string, key: string, timeoutMs: number): Promise<{ id: string; name: string }> {
  const [{ LinearClient, LinearGraphQLClient }, { toTrackerError }] = await Promise.all([
    import('@linear/sdk'),
    import('./tracker/errors.ts'),
  ])
  const client = new LinearClient({ apiKey: key, apiUrl })
  const transport = new LinearGraphQLClient(client.options.apiUrl, { ...client.options, signal: AbortSignal.timeout(timeoutMs) })
  try {
    const res = await transport.rawRequest<{ viewer: { id: string; name: string } }, Record<string, never>>(VIEWER_QUERY, {})
    return res.data!.viewer
  } catch (err) {
    throw toTrackerError(err, 'viewer', Date.now(), apiUrl)
  }
}

const fail = (e: FactoryError) => ({ status: 'fail' as const, detail: e.message, fix: e.fix })
const firstLine = (text: string) =>
  text
    .trim()
    .split('\n')
    .find((l) => l.trim() && !/^WARNING:/.test(l)) ?? ''

/** The machine's checks: git, FACTORY_HOME writable, disk space. */
function machineChecks(home: string): Check[] {
  return [
    {
      name: 'git',
      run: async ({ run: spawn, env, timeoutMs }) => {
        const res = await spawn(['git', '--version'], { env: { PATH: env.PATH ?? '' }, timeoutMs }).catch((e: unknown) => asFactoryError(e))
        if ('code' in res || res.exitCode !== 0)
          return { status: 'fail', detail: 'git not found on PATH', fix: 'install git (Debian: apt-get install git)' }
        return { status: 'ok', detail: res.stdout.trim() }
      },
    },
    {
      name: 'home',
      run: () => {
        const probe = join(home, `.doctor-${process.pid}`)
        try {
          ensureHome(home)
          writeFileSync(probe, 'ok')
          unlinkSync(probe)
          return { status: 'ok', detail: `${home} is writable` }
        } catch (err) {
          return fail(asFactoryError(err, 'home_unusable'))
        }
      },
    },
    {
      name: 'disk',
      run: ({ freeBytes }) => {
        let at = home
        for (let i = 0; i < 64; i++) {
          try {
            const free = freeBytes(at)
            const detail = `${(free / GiB).toFixed(1)} GiB free at ${at}`
            const fix = 'free space there (old worktrees: $FACTORY_HOME/worktrees; logs: $FACTORY_HOME/logs)'
            if (free < 100 * MiB) return { status: 'fail', detail, fix }
            if (free < GiB) return { status: 'warn', detail, fix }
            return { status: 'ok', detail }
          } catch {
            if (dirname(at) === at) break
            at = dirname(at) // the home may not exist yet: its nearest existing parent holds it
          }
        }
        return {
          status: 'warn',
          detail: `cannot read the free space of ${home}`,
          fix: 'check that FACTORY_HOME is on a mounted filesystem',
        }
      },
    },
  ]
}

/** One agent's checks, in table order. */
function agentChecks(config: FactoryConfig, agent: AgentConfig, home: string): Check[] {
  const about = (name: string, fn: Check['run']): Check => ({ name, agent: agent.name, run: fn })
  const cheap = (env: NodeJS.ProcessEnv, name: string) => cheapChecks(agent, env).find((c) => c.name === name)!
  const checks: Check[] = [
    about('linear token', ({ env }) => cheap(env, 'linear token')),
    about('linear', async ({ env, viewer, timeoutMs }) => {
      const key = env[agent.tracker.token_env]
      if (!key) return { status: 'warn', detail: `not tried: ${agent.tracker.token_env} is not set` }
      let url = env.LINEAR_API_URL ?? 'Linear'
      try {
        url = linearApiUrl(env)
        const me = await viewer(url, key, timeoutMs)
        return { status: 'ok', detail: `${url} answers; the key is ${me.name} (${me.id})` }
      } catch (err) {
        const e = asFactoryError(err)
        return { status: 'fail', detail: e.message.includes(url) ? e.message : `${url}: ${e.message}`, fix: e.fix }
      }
    }),
    about('repo', async (deps) => repoCheck(agent, home, deps)),
    about('github token', ({ env }) => cheap(env, 'github token')),
    about('github', async (deps) => githubCheck(agent, deps)),
    about('engine', async (deps) => engineCheck(config, agent, deps)),
  ]
  if (agent.engine !== 'console') checks.push(about('engine login', async (deps) => loginCheck(config, agent, deps)))
  if (agent.tracker.mode === 'agent_session') checks.push(about('relay', async (deps) => relayCheck(agent, deps)))
  return checks
}

/** Every check for `agents` of `config` (null: the config did not load; `configError` says why). Pure. */
export function planChecks(input: {
  config: FactoryConfig | null
  configPath: string
  configError?: FactoryError
  agents: readonly AgentConfig[]
  env: NodeJS.ProcessEnv
}): Check[] {
  const { config, configPath, configError } = input
  const home = factoryHome(input.env)
  const configCheck: Check = {
    name: 'config',
    run: () =>
      config
        ? { status: 'ok', detail: `${configPath}: ${config.agents.length} agent(s): ${config.agents.map((a) => a.name).join(', ')}` }
        : fail(configError!),
  }
  return [configCheck, ...machineChecks(home), ...(config ? input.agents.flatMap((a) => agentChecks(config, a, home)) : [])]
}

/** Run the checks side by side; results in the checks' order, a check that throws is a fail. Secrets never appear in the text. */
export async function runChecks(checks: readonly Check[], deps: DoctorDeps, secretNames: readonly string[] = []): Promise<CheckResult[]> {
  const hide = redactorFor(deps.env, secretNames)
  return Promise.all(
    checks.map(async (c) => {
      const r = await Promise.resolve()
        .then(() => c.run(deps))
        .catch((err: unknown) => fail(asFactoryError(err)))
      const out: CheckResult = { name: c.name, ...(c.agent ? { agent: c.agent } : {}), ...r }
      return { ...out, detail: hide(out.detail), ...(out.fix ? { fix: hide(out.fix) } : {}) }
    }),
  )
}

/** `git ls-remote` of the agents.yaml URL, hardened and with the worktree step's credentials; the base branch must be there. */
async function repoCheck(agent: AgentConfig, home: string, deps: DoctorDeps) {
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
async function githubCheck(agent: AgentConfig, deps: DoctorDeps) {
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
async function engineCheck(config: FactoryConfig, agent: AgentConfig, deps: DoctorDeps) {
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
async function loginCheck(config: FactoryConfig, agent: AgentConfig, deps: DoctorDeps) {
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
async function relayCheck(agent: AgentConfig, deps: DoctorDeps) {
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

const MARK = { ok: '✓', warn: '!', fail: '✗' } as const

/** The table a human reads: one line per check (✓ ok, ! warn, ✗ fail), the fix under each warn or fail. */
export function renderChecks(results: readonly CheckResult[]): string {
  const label = (r: CheckResult) => (r.agent ? `${r.agent}: ${r.name}` : r.name)
  const width = Math.max(...results.map((r) => label(r).length))
  const lines = results.flatMap((r) => [
    `${MARK[r.status]} ${label(r).padEnd(width)}  ${r.detail}`,
    ...(r.status !== 'ok' && r.fix ? [`  ${' '.repeat(width)}  fix: ${r.fix}`] : []),
  ])
  const count = (s: CheckResult['status']) => results.filter((r) => r.status === s).length
  lines.push('', `${count('ok')} ok, ${count('warn')} warning(s), ${count('fail')} failure(s)`)
  return `${lines.join('\n')}\n`
}
