/**
 * `doctor`: every check of a set-up, each a small function of a few side effects (`deps`) that
 * says ok, warn or fail, what it saw and the fix. planChecks() lists them (pure); runChecks() runs
 * them side by side and keeps their order. One request per service: Linear's viewer, GitHub's
 * repository, the relay's /healthz; git and the engine CLIs are run for real (their version,
 * `git ls-remote`, the CLIs' own login status: no model call).
 */
import { repoName } from './route.ts'
import { statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { engineCheck, githubCheck, linearCheck, loginCheck, type Outcome, relayCheck, repoCheck } from './agent-checks.ts'
import { type AgentConfig, type FactoryConfig, factoryHome } from './config.ts'
import { asFactoryError, type FactoryError } from './errors.ts'
import { redactorFor } from './log.ts'
import { ensureHome } from './paths.ts'
import { cheapChecks, type CheckResult } from './preflight.ts'
import { run, type RunOptions, type RunResult } from './proc.ts'
import type { SecretStatus } from './secret-sources.ts'
import { VIEWER_QUERY } from './tracker/documents.ts'

export type { CheckResult } from './preflight.ts'

export interface DoctorDeps {
  env: NodeJS.ProcessEnv
  /** HTTP for GitHub and the relay. */
  fetch: typeof fetch
  /** Linear's viewer for a key (one GraphQL request), or a FactoryError thrown. */
  viewer: (apiUrl: string, key: string, timeoutMs: number, bearer?: boolean) => Promise<{ id: string; name: string }>
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
  run: (deps: DoctorDeps) => Promise<Outcome> | Outcome
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
async function linearViewer(apiUrl: string, key: string, timeoutMs: number, bearer = false): Promise<{ id: string; name: string }> {
  const [{ LinearClient, LinearGraphQLClient }, { toTrackerError }] = await Promise.all([
    import('@linear/sdk'),
    import('./tracker/errors.ts'),
  ])
  const client = new LinearClient(bearer ? { accessToken: key, apiUrl } : { apiKey: key, apiUrl })
  const transport = new LinearGraphQLClient(client.options.apiUrl, { ...client.options, signal: AbortSignal.timeout(timeoutMs) })
  try {
    const res = await transport.rawRequest<{ viewer: { id: string; name: string } }, Record<string, never>>(VIEWER_QUERY, {})
    return res.data!.viewer
  } catch (err) {
    throw toTrackerError(err, 'viewer', Date.now(), apiUrl)
  }
}

const fail = (e: FactoryError) => ({ status: 'fail' as const, detail: e.message, fix: e.fix })
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

/** One check per repository of the agent (the agent as each repository's run sees it). */
function perRepo(agent: AgentConfig, make: (a: AgentConfig) => Check): Check[] {
  return agent.repos.map((repo) => make({ ...agent, repo }))
}

/** `repo`, or `repo acme/api` when the agent has several. */
function repoLabel(agent: AgentConfig, a: AgentConfig, name: string): string {
  return agent.repos.length > 1 ? `${name} ${repoName(a.repo)}` : name
}

/** One agent's checks, in table order. */
function agentChecks(config: FactoryConfig, agent: AgentConfig, home: string, secrets: readonly SecretStatus[]): Check[] {
  const about = (name: string, fn: Check['run']): Check => ({ name, agent: agent.name, run: fn })
  const cheap = (env: NodeJS.ProcessEnv, name: string) => cheapChecks(agent, env, secrets).find((c) => c.name === name)!
  const checks: Check[] = [
    about('linear token', ({ env }) => cheap(env, 'linear token')),
    about('linear', async (deps) => linearCheck(agent, deps)),
    // Several repositories: each one's reachability and push rights (the check names it).
    ...perRepo(agent, (a) => about(repoLabel(agent, a, 'repo'), async (deps) => repoCheck(a, home, deps))),
    about('github token', ({ env }) => cheap(env, 'github token')),
    ...perRepo(agent, (a) => about(repoLabel(agent, a, 'github'), async (deps) => githubCheck(a, deps))),
    about('engine', async (deps) => engineCheck(config, agent, deps)),
  ]
  if (agent.engine !== 'console') checks.push(about('engine login', async (deps) => loginCheck(config, agent, deps)))
  if (agent.tracker.mode === 'agent_session') checks.push(about('relay', async (deps) => relayCheck(agent, deps)))
  return checks
}

/**
 * Every check for `agents` of `config` (null: the config did not load; `configError` says why).
 * `secrets`: where each secret came from (lib/secret-sources.ts), for the token checks. Pure.
 */
export function planChecks(input: {
  config: FactoryConfig | null
  configPath: string
  configError?: FactoryError
  agents: readonly AgentConfig[]
  env: NodeJS.ProcessEnv
  secrets?: readonly SecretStatus[]
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
  return [
    configCheck,
    ...machineChecks(home),
    ...(config ? input.agents.flatMap((a) => agentChecks(config, a, home, input.secrets ?? [])) : []),
  ]
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
