/**
 * doctor against a real sandbox, a fake GitHub, a real git origin and (when installed) the real
 * engine CLIs: every check ok on a good set-up; each broken piece is one failing line that names
 * the fix. And start's preflight: an agent whose engine or credentials are missing is refused
 * before any of its issues is touched.
 */
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { relayCheck } from '../lib/agent-checks.ts'
import { type AgentConfig, parseConfig } from '../lib/config.ts'
import { type CheckResult, type DoctorDeps, planChecks, realDoctorDeps, runChecks } from '../lib/doctor.ts'
import { projectEngineBin } from '../lib/engines/resolve.ts'
import { githubTokenCheck } from '../lib/preflight.ts'
import { planSecrets } from '../lib/secret-sources.ts'
import { type FakeSecret, startFakeGcp } from './fakes/gcp.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { type Fixture, fixture } from './helpers.ts'

let fx: Fixture | undefined
let gh: Awaited<ReturnType<typeof startFakeGitHub>> | undefined
/** The fake Secret Manager's project proj-one (tests add what they need). */
const gcpHeld: Record<string, FakeSecret> = {}
const gcp = startFakeGcp({ 'proj-one': gcpHeld })
afterAll(() => gcp.stop())
afterEach(async () => {
  await fx?.cleanup()
  await gh?.stop()
  fx = gh = undefined
})

const GH_TOKEN = 'gh-doctor-test-token'
const ISSUE = [{ team: 'ENG', title: 'Add a health check', assignee: 'agent@rose.test' }]

/** One agent's YAML (console engine, the fixture's origin, PRs to acme/app on the fake GitHub). */
const agentYaml = (origin: string, over: { name?: string; engine?: string; base?: string; url?: string; extra?: string } = {}) =>
  `  - name: ${over.name ?? 'tester'}\n    engine: ${over.engine ?? 'console'}\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${over.url ?? origin}, base: ${over.base ?? 'main'}, github: acme/app }\n${over.extra ?? ''}`

async function setUp(agents: (origin: string) => string, opts: { push?: boolean } = {}) {
  gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: () => true, permissions: { push: opts.push ?? true } })
  fx = await fixture({ issues: ISSUE, agentYaml: (o) => `poll_interval_seconds: 1\nagents:\n${agents(o)}` })
  return { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: GH_TOKEN }
}

/** doctor --json, spawned; its checks by `agent: name`. */
async function doctor(env: Record<string, string>, args: string[] = []) {
  const res = await fx!.script('doctor', ['--json', '--config', fx!.configPath, ...args], env)
  let checks: CheckResult[] = []
  try {
    checks = JSON.parse(res.stdout) as CheckResult[]
  } catch {}
  const by = Object.fromEntries(checks.map((c) => [c.agent ? `${c.agent}: ${c.name}` : c.name, c]))
  return { ...res, checks, by }
}

const claudeBin = [projectEngineBin('claude')].find(existsSync)
const codexBin = [projectEngineBin('codex')].find(existsSync)

describe('doctor', () => {
  test('a good set-up is all ok: Linear names the key’s user in one request, git, repo and base branch, GitHub push, engine, home, disk', async () => {
    const env = await setUp((o) => agentYaml(o))
    fx!.sandbox.resetStats()
    const res = await doctor(env)
    expect(res.code, res.stderr + res.stdout).toBe(0)
    expect(res.checks.filter((c) => c.status !== 'ok')).toEqual([])
    expect(Object.keys(res.by)).toEqual([
      'config',
      'git',
      'home',
      'disk',
      'tester: linear token',
      'tester: linear',
      'tester: repo',
      'tester: github token',
      'tester: github',
      'tester: engine',
    ])
    expect(res.by['tester: linear']!.detail).toContain('the key is Factory Agent')
    expect(res.by['tester: repo']!.detail).toContain('main at ')
    expect(res.by['tester: github']!.detail).toContain('can push to and open PRs on acme/app')
    expect(res.by.git!.detail).toMatch(/^git version /)
    // One Linear request, no mutation; one GitHub read.
    expect(fx!.sandbox.stats().requests).toBe(1)
    expect(fx!.sandbox.stats().mutations).toBe(0)
    expect(gh!.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /repos/acme/app'])
    expect(res.stdout + res.stderr).not.toContain(GH_TOKEN)
    expect(res.stdout + res.stderr).not.toContain(fx!.env.ROSE_TEST_LINEAR_KEY!)

    const table = await fx!.script('doctor', ['--config', fx!.configPath], env)
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/^✓ tester: linear +https?:\/\/.*Factory Agent/m)
    expect(table.stdout).toContain('0 warning(s), 0 failure(s)')
  }, 60_000)

  test.skipIf(!claudeBin || !codexBin)(
    'the real Claude and Codex CLIs: version found and login reported by their own status commands, no model call (skipped when `make engines` has not installed them)',
    async () => {
      const env = await setUp((o) => agentYaml(o, { name: 'claudia', engine: 'claude' }) + agentYaml(o, { name: 'cody', engine: 'codex' }))
      const codexHome = join(fx!.dir, 'codex-home')
      mkdirSync(codexHome)
      const loggedOut = await doctor({ ...env, CODEX_HOME: codexHome })
      expect(loggedOut.code).toBe(1)
      expect(loggedOut.by['claudia: engine']!.detail).toMatch(/^claude \d+\.\d+\.\d+/)
      expect(loggedOut.by['cody: engine']!.detail).toMatch(/^codex codex-cli \d+/)
      expect(loggedOut.by['claudia: engine login']).toMatchObject({ status: 'fail' })
      expect(loggedOut.by['claudia: engine login']!.fix).toContain('claude setup-token')
      expect(loggedOut.by['cody: engine login']).toMatchObject({ status: 'fail' })
      expect(loggedOut.by['cody: engine login']!.fix).toContain('codex login')

      // Log Codex in with a made-up API key (stored locally, checked only at the first request).
      const login = spawnSync(codexBin!, ['login', '--with-api-key'], {
        input: 'doctor-fake-openai-key\n',
        env: { PATH: process.env.PATH, HOME: fx!.dir, CODEX_HOME: codexHome },
        encoding: 'utf8',
      })
      expect(login.status, login.stderr).toBe(0)
      const loggedIn = await doctor({ ...env, CODEX_HOME: codexHome, CLAUDE_AUTH_TOKEN: 'doctor-fake-claude-oauth' })
      expect(
        loggedIn.checks.filter((c) => c.status !== 'ok'),
        loggedIn.stdout,
      ).toEqual([])
      expect(loggedIn.by['claudia: engine login']!.detail).toContain('logged in (oauth_token); CLAUDE_AUTH_TOKEN is set')
      expect(loggedIn.stdout).not.toContain('doctor-fake-claude-oauth')
    },
    60_000,
  )

  test('an unset token variable fails and says what to export; Linear is then not tried', async () => {
    const env = await setUp((o) => agentYaml(o))
    const res = await doctor({ ...env, ROSE_TEST_LINEAR_KEY: '' })
    expect(res.code).toBe(1)
    expect(res.by['tester: linear token']).toMatchObject({ status: 'fail', detail: 'ROSE_TEST_LINEAR_KEY is not set' })
    expect(res.by['tester: linear token']!.fix).toContain('export ROSE_TEST_LINEAR_KEY=')
    expect(res.by['tester: linear']!.status).toBe('warn')
    expect(fx!.sandbox.stats().requests).toBe(0)
  }, 60_000)

  test('with secrets.gcp_project the token checks say a token came from Secret Manager (never its value), and Linear and GitHub accept it', async () => {
    const env = await setUp((o) => agentYaml(o))
    gcpHeld.ROSE_TEST_LINEAR_KEY = fx!.env.ROSE_TEST_LINEAR_KEY!
    gcpHeld.GH_DOCTOR_KEY = GH_TOKEN
    writeFileSync(
      fx!.configPath,
      `secrets: { gcp_project: proj-one }\nagents:\n${agentYaml(fx!.origin, { extra: '    github: { token_env: GH_DOCTOR_KEY }\n' })}`,
    )
    const res = await doctor({ ...env, ...gcp.env, ROSE_TEST_LINEAR_KEY: '', FACTORY_GITHUB_TOKEN: '' })
    expect(res.code, res.stderr + res.stdout).toBe(0)
    expect(res.by['tester: linear token']!.detail).toBe('ROSE_TEST_LINEAR_KEY is set (gcp: projects/proj-one/secrets/ROSE_TEST_LINEAR_KEY)')
    expect(res.by['tester: linear']!.detail).toContain('the key is Factory Agent')
    expect(res.by['tester: github token']!.detail).toBe(
      'GH_DOCTOR_KEY is set (gcp: projects/proj-one/secrets/GH_DOCTOR_KEY) (PRs to acme/app)',
    )
    expect(res.by['tester: github']!.status).toBe('ok')
    expect(res.stdout + res.stderr).not.toContain(GH_TOKEN)
    expect(res.stdout + res.stderr).not.toContain(fx!.env.ROSE_TEST_LINEAR_KEY!)

    const fromEnv = await doctor({ ...env, ...gcp.env, GH_DOCTOR_KEY: GH_TOKEN })
    expect(fromEnv.by['tester: linear token']!.detail).toBe('ROSE_TEST_LINEAR_KEY is set (env)')
    expect(fromEnv.by['tester: github token']!.detail).toBe('GH_DOCTOR_KEY is set (env) (PRs to acme/app)')
  }, 60_000)

  test('a token Secret Manager refuses (403) or whose newest version is disabled is a failed check with the fix for it', async () => {
    const env = await setUp((o) => agentYaml(o))
    gcpHeld.DENIED_LINEAR_KEY = { refuse: 403 }
    gcpHeld.DISABLED_GH_KEY = { refuse: 'disabled' }
    const agent = agentYaml(fx!.origin, { extra: '    github: { token_env: DISABLED_GH_KEY }\n' }).replace(
      'ROSE_TEST_LINEAR_KEY',
      'DENIED_LINEAR_KEY',
    )
    writeFileSync(fx!.configPath, `secrets: { gcp_project: proj-one }\nagents:\n${agent}`)
    const res = await doctor({ ...env, ...gcp.env, FACTORY_GITHUB_TOKEN: '' })
    expect(res.code).toBe(1)
    const linear = res.by['tester: linear token']!
    expect(linear.status).toBe('fail')
    expect(linear.detail).toContain(
      'DENIED_LINEAR_KEY is not in the environment and GCP Secret Manager (project proj-one, secret DENIED_LINEAR_KEY',
    )
    expect(linear.detail).toContain('HTTP 403 PERMISSION_DENIED')
    expect(linear.fix).toBe(
      'export DENIED_LINEAR_KEY, or grant this service account roles/secretmanager.secretAccessor on secret DENIED_LINEAR_KEY in project proj-one',
    )
    expect(res.by['tester: linear']!.status).toBe('warn')
    const github = res.by['tester: github token']!
    expect(github.status).toBe('fail')
    expect(github.detail).toContain('its latest version is disabled; version 2 is the newest')
    expect(github.detail).toContain('HTTP 400 FAILED_PRECONDITION')
    expect(github.fix).toContain('gcloud secrets versions enable 2 --secret DISABLED_GH_KEY --project proj-one')

    const table = await fx!.script('doctor', ['--config', fx!.configPath], { ...env, ...gcp.env, FACTORY_GITHUB_TOKEN: '' })
    expect(table.stdout).toMatch(/^✗ tester: linear token +DENIED_LINEAR_KEY is not in the environment and GCP Secret Manager/m)
    expect(table.stdout).toMatch(/^ +fix: export DENIED_LINEAR_KEY, or grant this service account roles\/secretmanager\.secretAccessor/m)
    expect(table.stdout).toMatch(/^ +fix: export DISABLED_GH_KEY, or enable it \(gcloud secrets versions enable 2 /m)
  }, 60_000)

  test('an unreachable Linear fails naming LINEAR_API_URL', async () => {
    const env = await setUp((o) => agentYaml(o))
    const res = await doctor({ ...env, LINEAR_API_URL: 'http://127.0.0.1:9/graphql' })
    expect(res.code).toBe(1)
    expect(res.by['tester: linear']!.status).toBe('fail')
    expect(res.by['tester: linear']!.detail).toContain('127.0.0.1:9')
    expect(res.by['tester: linear']!.fix).toContain('LINEAR_API_URL')
  }, 60_000)

  test('a key Linear refuses fails naming the token variable', async () => {
    const env = await setUp((o) => agentYaml(o))
    const res = await doctor({ ...env, ROSE_TEST_LINEAR_KEY: 'lin_api_nobody' })
    expect(res.code).toBe(1)
    expect(res.by['tester: linear']!.status).toBe('fail')
    expect(res.by['tester: linear']!.fix).toContain('token_env')
  }, 60_000)

  test('a missing engine binary fails with how to install it', async () => {
    const env = await setUp((o) => agentYaml(o, { engine: 'claude', extra: '    claude: { bin: /nonexistent/claude }\n' }))
    const res = await doctor(env)
    expect(res.code).toBe(1)
    expect(res.by['tester: engine']!.status).toBe('fail')
    expect(res.by['tester: engine']!.detail).toContain('/nonexistent/claude')
    expect(res.by['tester: engine']!.fix).toContain('@anthropic-ai/claude-code')
    expect(res.by['tester: engine login']!.status).toBe('warn')
  }, 60_000)

  test('an unreachable repo fails naming repo.url; a missing base branch fails naming repo.base', async () => {
    let env = await setUp((o) => agentYaml(o, { url: '/nonexistent/app.git' }))
    let res = await doctor(env)
    expect(res.code).toBe(1)
    expect(res.by['tester: repo']).toMatchObject({ status: 'fail' })
    expect(res.by['tester: repo']!.detail).toContain('/nonexistent/app.git is not reachable')
    expect(res.by['tester: repo']!.fix).toContain('check repo.url of agent tester')
    await fx!.cleanup()
    await gh!.stop()

    env = await setUp((o) => agentYaml(o, { base: 'develop' }))
    res = await doctor(env)
    expect(res.code).toBe(1)
    expect(res.by['tester: repo']!.detail).toContain('has no branch develop')
    expect(res.by['tester: repo']!.fix).toContain('set repo.base of agent tester')
  }, 60_000)

  test('an agent with several repositories gets a repo and a github check for each, named; only the unreachable one fails', async () => {
    const env = await setUp(
      (o) =>
        `  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repos:\n` +
        `      - { url: ${o}, base: main, github: acme/app, match: { labels: [backend] } }\n` +
        `      - { url: /nonexistent/web.git, base: main, github: acme/web }\n`,
    )
    const res = await doctor(env)
    expect(res.code).toBe(1)
    expect(res.by['tester: repo acme/app']).toMatchObject({ status: 'ok' })
    expect(res.by['tester: repo acme/web']).toMatchObject({ status: 'fail' })
    expect(res.by['tester: repo acme/web']!.detail).toContain('/nonexistent/web.git is not reachable')
    expect(res.by['tester: github acme/app']).toMatchObject({ status: 'ok' })
    expect(res.by['tester: github acme/web']).toBeDefined()
    expect(res.by['tester: repo']).toBeUndefined()
  }, 60_000)

  test('a GitHub token is needed when any repository of the agent is on GitHub, not only its default one', () => {
    const config = parseConfig(
      'agents:\n  - name: multi\n    engine: console\n    tracker: { mode: api_key, token_env: KEY }\n    repos:\n' +
        '      - { url: /srv/local.git }\n      - { url: /srv/web.git, github: acme/web, match: { labels: [web] } }\n',
      'agents.yaml',
      { KEY: 'x' },
    )
    const agent = config.agents[0]!
    expect(agent.repo.url).toBe('/srv/local.git')
    const check = githubTokenCheck(agent, {})
    expect(check).toMatchObject({ status: 'fail' })
    expect(check.detail).toContain('no PR could be opened on acme/web')
    expect(planSecrets(config, config.agents, {}).find((n) => n.name === 'FACTORY_GITHUB_TOKEN')?.needs).toEqual([
      'multi: pushes and PRs to acme/web (github.token_env)',
    ])
  })

  test('a GitHub token without push fails: no PR could be opened; no token at all fails saying what to export', async () => {
    const env = await setUp((o) => agentYaml(o), { push: false })
    const res = await doctor(env)
    expect(res.code).toBe(1)
    expect(res.by['tester: github']!.status).toBe('fail')
    expect(res.by['tester: github']!.detail).toContain('cannot push to it')
    expect(res.by['tester: github']!.fix).toContain('write access to acme/app')

    const none = await doctor({ ...env, FACTORY_GITHUB_TOKEN: '' })
    expect(none.by['tester: github token']!.status).toBe('fail')
    expect(none.by['tester: github token']!.fix).toContain('export FACTORY_GITHUB_TOKEN=')
  }, 60_000)

  test('an unwritable FACTORY_HOME fails naming it (a path under a regular file: even root cannot make it)', async () => {
    const env = await setUp((o) => agentYaml(o))
    const file = join(fx!.dir, 'not-a-dir')
    writeFileSync(file, 'x')
    const res = await doctor({ ...env, FACTORY_HOME: join(file, 'home') })
    expect(res.code).toBe(1)
    expect(res.by.home!.status).toBe('fail')
    expect(res.by.home!.detail).toContain(join(file, 'home'))
    expect(res.by.home!.fix).toContain('FACTORY_HOME')
  }, 60_000)

  test('a broken config is one failing line with the key path, and exit 2; an unknown --agent is bad usage', async () => {
    const env = await setUp((o) => agentYaml(o, { extra: '    concurency: 3\n' }))
    const res = await doctor(env)
    expect(res.code).toBe(2)
    expect(res.by.config!.status).toBe('fail')
    expect(res.by.config!.detail).toContain('did you mean "concurrency"?')
    expect(res.by.git!.status).toBe('ok')
    const bad = await fx!.script('doctor', ['--config', fx!.configPath, '--agent', 'nope'], env)
    expect(bad.code).toBe(2)
  }, 60_000)
})

describe('start refuses an agent whose engine or credentials are missing', () => {
  test('without touching its issues: no Linear request at all, the issue stays in Todo, exit 1 when no agent can run', async () => {
    for (const [extra, env, says] of [
      ['    claude: { bin: /nonexistent/claude }\n', {}, '/nonexistent/claude'],
      ['', { FACTORY_GITHUB_TOKEN: '' }, 'FACTORY_GITHUB_TOKEN is not set'],
      ['', { ROSE_TEST_LINEAR_KEY: '' }, 'ROSE_TEST_LINEAR_KEY is not set'],
    ] as const) {
      const ghEnv = await setUp((o) => agentYaml(o, { engine: extra ? 'claude' : 'console', extra }))
      const res = await fx!.script('start', ['--once', '--config', fx!.configPath], { ...ghEnv, ...env })
      expect(res.code, res.stderr).toBe(1)
      expect(res.stderr).toContain('tester: not started, its issues are left alone')
      expect(res.stderr).toContain(says)
      expect(res.stderr).toContain('fix: ')
      expect(res.stderr).toContain('no agent can run')
      expect(fx!.sandbox.stats().requests).toBe(0)
      expect(fx!.sandbox.stats().mutations).toBe(0)
      expect(fx!.issue('ENG-1').state).toBe('Todo')
      expect(existsSync(join(fx!.home, 'state.json'))).toBe(false)
      await fx!.cleanup()
      await gh!.stop()
      fx = gh = undefined
    }
  }, 90_000)

  test('the other agents keep running: the good agent’s issue reaches In Review, the refused one’s is untouched', async () => {
    gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: () => true })
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'For the good agent', assignee: 'agent@rose.test' },
        { team: 'ENG', title: 'For the broken agent', assignee: 'sam@rose.test' },
      ],
      agentYaml: (o) =>
        `poll_interval_seconds: 1\nagents:\n  - name: good\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o} }\n  - name: broken\n    engine: codex\n    codex: { bin: /nonexistent/codex }\n    tracker: { mode: api_key, token_env: ROSE_SAM_KEY }\n    repo: { url: ${o} }\n`,
    })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], { ROSE_SAM_KEY: 'lin_api_test_sam_key' })
    expect(res.code, res.stderr).toBe(0)
    expect(res.stderr).toContain('broken: not started')
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.issue('ENG-2').state).toBe('Todo')
    expect(fx.issue('ENG-2').comments).toHaveLength(0)
  }, 60_000)
})

describe('doctor checks through their deps seam', () => {
  const config = parseConfig(
    'agents:\n  - name: relayed\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_RELAY_TOKEN }\n    repo: { url: /srv/none.git }\n',
    'agents.yaml',
    {},
    { requireEnv: false },
  )
  const deps = (over: Partial<DoctorDeps> = {}): DoctorDeps => ({ ...realDoctorDeps({ PATH: process.env.PATH }), ...over })

  test('disk space: ok from 1 GiB, a warning below it, a failure below 100 MiB', async () => {
    const disk = planChecks({ config, configPath: 'agents.yaml', agents: [], env: { FACTORY_HOME: '/nonexistent/home' } }).find(
      (c) => c.name === 'disk',
    )!
    const at = async (bytes: number) => (await runChecks([disk], deps({ freeBytes: () => bytes })))[0]!
    expect((await at(2 ** 30)).status).toBe('ok')
    const low = await at(500 * 2 ** 20)
    expect(low.status).toBe('warn')
    expect(low.fix).toContain('worktrees')
    expect((await at(50 * 2 ** 20)).status).toBe('fail')
  })

  test('the relay of an agent_session agent: /healthz with the worker token is ok, a refused token fails naming it, no relay_url warns', async () => {
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req) =>
        new URL(req.url).pathname === '/healthz' && req.headers.get('authorization') === 'Bearer worker-token'
          ? new Response('ok')
          : new Response('no', { status: 401 }),
    })
    try {
      const agent = { ...config.agents[0]!, tracker: { ...config.agents[0]!.tracker, mode: 'agent_session' as const } }
      const withUrl = { ...agent, tracker: { ...agent.tracker, relay_url: `http://127.0.0.1:${server.port}/` } } as AgentConfig
      const env = { ROSE_RELAY_TOKEN: 'worker-token' }
      expect((await relayCheck(withUrl, deps({ env }))).status).toBe('ok')
      const refused = await relayCheck(withUrl, deps({ env: { ROSE_RELAY_TOKEN: 'wrong' } }))
      expect(refused.status).toBe('fail')
      expect(refused.fix).toContain('ROSE_RELAY_TOKEN')
      expect((await relayCheck(agent, deps({ env }))).status).toBe('warn')
      const planned = planChecks({ config: { ...config, agents: [withUrl] }, configPath: 'agents.yaml', agents: [withUrl], env })
      expect(planned.map((c) => c.name)).toContain('relay')
    } finally {
      await server.stop(true)
    }
  })
})
