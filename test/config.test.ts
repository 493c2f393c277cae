import { afterAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  configJsonSchema,
  configPath,
  configSchemaText,
  factoryHome,
  githubApiUrl,
  linearApiUrl,
  loadConfig,
  parseConfig,
  pickAgent,
  selectAgents,
} from '../lib/config.ts'
import { FactoryError } from '../lib/errors.ts'
import { parse as parseYaml } from 'yaml'
import { type FakeSecret, startFakeGcp } from './fakes/gcp.ts'
import { ROOT, tempDir, failure } from './helpers.ts'

const ENV = { ROSE_KEY_A: 'lin_api_a', ROSE_KEY_B: 'lin_api_b' }
const FILE = '/etc/rose/agents.yaml'

const MINIMAL = `agents:
  - name: alpha
    engine: console
    tracker: { mode: api_key, token_env: ROSE_KEY_A }
    repo: { url: /srv/git/app.git }
`

const TWO = `agents:
  - name: alpha
    engine: console
    tracker: { mode: api_key, token_env: ROSE_KEY_A }
    repo: { url: /srv/git/app.git }
  - name: beta
    engine: claude
    tracker: { mode: api_key, token_env: ROSE_KEY_B }
    repo: { url: https://github.com/acme/app.git }
`

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('parseConfig', () => {
  test('a minimal config gets the documented defaults', () => {
    const c = parseConfig(MINIMAL, FILE, ENV)
    expect(c.poll_interval_seconds).toBe(30)
    expect(c.max_concurrency).toBe(4)
    const a = c.agents[0]!
    expect(a.name).toBe('alpha')
    expect(a.concurrency).toBe(2)
    expect(a.repo.base).toBe('main')
    expect(a.repo.bootstrap_timeout_seconds).toBe(300)
    expect(a.runtime).toEqual({ provider: 'none' })
    expect(a.limits).toEqual({ stall_seconds: 300, timeout_minutes: 60, max_attempts: 3 })
    expect(a.github).toEqual({ token_env: 'FACTORY_GITHUB_TOKEN' })
    expect(a.tracker.allow_commenters).toBeUndefined()
  })

  test('engine sections get their own defaults when present', () => {
    const text = `${TWO}    claude: {}\n`
    const c = parseConfig(text, FILE, ENV)
    expect(c.agents[1]!.claude).toEqual({ permission_mode: 'bypassPermissions' })
    const codex = parseConfig(MINIMAL.replace('engine: console', 'engine: codex') + '    codex: {}\n', FILE, ENV)
    expect(codex.agents[0]!.codex).toEqual({ sandbox: 'workspace-write' })
  })

  test('an unknown top-level key is an error naming it and the file', () => {
    const err = failure(() => parseConfig(`pol_interval_seconds: 5\n${MINIMAL}`, FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain(FILE)
    expect(err.message).toContain('pol_interval_seconds: unknown key "pol_interval_seconds"')
    expect(err.fix).toContain('agents.example.yaml')
  })

  test('an unknown key in an agent names the agent index and the key', () => {
    const err = failure(() => parseConfig(`${TWO}    concurency: 3\n`, FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('agents[1].concurency: unknown key "concurency"')
  })

  test('an unknown nested key names the full path, like agents[1].repo.branch', () => {
    const text = TWO.replace(
      'repo: { url: https://github.com/acme/app.git }',
      'repo: { url: https://github.com/acme/app.git, branch: dev }',
    )
    const err = failure(() => parseConfig(text, FILE, ENV))
    expect(err.message).toContain('agents[1].repo.branch: unknown key "branch"')
    expect(err.message).not.toContain('agents[0]')
  })

  test('a wrongly typed value names its path', () => {
    const err = failure(() => parseConfig(`max_concurrency: lots\n${MINIMAL}`, FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('max_concurrency:')
  })

  test('an empty file asks for at least one agent', () => {
    const err = failure(() => parseConfig('', FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('agents')
  })

  test('bad YAML names the file and the line of the mistake', () => {
    // Line 4 is indented one space less than the agent's other keys.
    const text = 'poll_interval_seconds: 5\nagents:\n  - name: alpha\n   engine: console\n'
    const err = failure(() => parseConfig(text, FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain(`${FILE} (line 4, column`)
    expect(err.message).toContain('not valid YAML')
    expect(err.fix).toContain('YAML')
  })

  test('an unknown engine is refused and the allowed engines are named', () => {
    const err = failure(() => parseConfig(MINIMAL.replace('engine: console', 'engine: gemini'), FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('agents[0].engine')
    expect(err.message).toContain('claude')
    expect(err.message).toContain('codex')
  })

  test('an agent name with capitals or spaces is refused with an example of a good one', () => {
    const err = failure(() => parseConfig(MINIMAL.replace('name: alpha', 'name: Benoit Codex'), FILE, ENV))
    expect(err.message).toContain('agents[0].name')
    expect(err.message).toContain('benoit-codex')
  })

  test('two agents with the same name are refused, naming the second one', () => {
    const err = failure(() => parseConfig(TWO.replace('name: beta', 'name: alpha'), FILE, ENV))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('agents[1].name')
    expect(err.message).toContain('"alpha" is used twice')
    expect(err.fix).toContain('unique')
  })

  test('agent_session mode needs a relay_url, takes the activity limits, and api_key refuses a relay_url', () => {
    const session = MINIMAL.replace('{ mode: api_key, token_env: ROSE_KEY_A }', '{ mode: agent_session, token_env: ROSE_KEY_A }')
    const missing = failure(() => parseConfig(session, FILE, ENV))
    expect(missing.code).toBe('config_invalid')
    expect(missing.message).toContain('agents[0].tracker.relay_url')
    expect(missing.fix).toContain('relay_url: https://')
    const ok = parseConfig(
      session.replace('token_env: ROSE_KEY_A }', 'token_env: ROSE_KEY_A, relay_url: http://127.0.0.1:8787, max_activities: 10 }'),
      FILE,
      ENV,
    )
    expect(ok.agents[0]!.tracker).toMatchObject({
      mode: 'agent_session',
      relay_url: 'http://127.0.0.1:8787',
      activity_interval_seconds: 3,
      max_activities: 10,
    })
    const notUrl = failure(() =>
      parseConfig(session.replace('token_env: ROSE_KEY_A }', 'token_env: ROSE_KEY_A, relay_url: ftp://x }'), FILE, ENV),
    )
    expect(notUrl.message).toContain('relay_url')
    const apiKey = failure(() =>
      parseConfig(MINIMAL.replace('token_env: ROSE_KEY_A }', 'token_env: ROSE_KEY_A, relay_url: http://127.0.0.1:8787 }'), FILE, ENV),
    )
    expect(apiKey.message).toContain('only for mode: agent_session')
  })

  test('an unset token_env names the variable and how to set it', () => {
    const err = failure(() => parseConfig(TWO, FILE, { ROSE_KEY_A: 'x' }))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('agents[1].tracker.token_env')
    expect(err.message).toContain('ROSE_KEY_B is not set')
    expect(err.fix).toContain('export ROSE_KEY_B=')
    expect(err.fix).toContain('beta')
  })

  test('an empty token variable counts as unset', () => {
    const err = failure(() => parseConfig(MINIMAL, FILE, { ROSE_KEY_A: '' }))
    expect(err.message).toContain('ROSE_KEY_A is not set')
  })

  test('config errors exit with code 2', () => {
    const errors = [
      failure(() => parseConfig('agents: [', FILE, ENV)),
      failure(() => parseConfig(`bogus: 1\n${MINIMAL}`, FILE, ENV)),
      failure(() => parseConfig(MINIMAL, FILE, {})),
      failure(() => loadConfig('/nonexistent/rose-factory/agents.yaml', ENV)),
      failure(() => pickAgent(parseConfig(MINIMAL, FILE, ENV), 'zeta')),
    ]
    for (const e of errors) expect(e.exitCode).toBe(2)
    expect(new FactoryError('engine_failed', 'x').exitCode).toBe(1)
  })

  test('agents.example.yaml at the repo root is a valid config', () => {
    const file = join(ROOT, 'agents.example.yaml')
    const c = parseConfig(readFileSync(file, 'utf8'), file, { LINEAR_API_KEY: 'lin_api_x', LINEAR_API_KEY_CLAUDE: 'lin_api_y' })
    expect(c.agents.map((a) => a.name)).toEqual(['benoit-codex', 'benoit-claude'])
    expect(c.agents.map((a) => a.engine)).toEqual(['codex', 'claude'])
  })
})

describe('loadConfig', () => {
  test('a missing file is config_missing naming the path, with a fix', () => {
    const dir = tempDir()
    dirs.push(dir)
    const path = join(dir, 'agents.yaml')
    const err = failure(() => loadConfig(path, ENV))
    expect(err.code).toBe('config_missing')
    expect(err.message).toContain(path)
    expect(err.fix).toContain('agents.example.yaml')
    expect(err.fix).toContain('--config')
  })

  test('without --config it reads $FACTORY_HOME/agents.yaml', () => {
    const dir = tempDir()
    dirs.push(dir)
    writeFileSync(join(dir, 'agents.yaml'), MINIMAL)
    const { config, path } = loadConfig(undefined, { ...ENV, FACTORY_HOME: dir })
    expect(path).toBe(join(resolve(dir), 'agents.yaml'))
    expect(config.agents[0]!.name).toBe('alpha')
  })

  test('errors in a loaded file name that file', () => {
    const dir = tempDir()
    dirs.push(dir)
    const path = join(dir, 'agents.yaml')
    writeFileSync(path, `${MINIMAL}    extra: 1\n`)
    const err = failure(() => loadConfig(path, ENV))
    expect(err.message).toContain(path)
    expect(err.message).toContain('agents[0].extra')
  })
})

describe('factory home', () => {
  test('defaults to ~/rose-factory', () => {
    expect(factoryHome({})).toBe(join(homedir(), 'rose-factory'))
    expect(configPath(undefined, {})).toBe(join(homedir(), 'rose-factory', 'agents.yaml'))
  })

  test('FACTORY_HOME overrides it, resolved to an absolute path', () => {
    expect(factoryHome({ FACTORY_HOME: '/srv/factory' })).toBe('/srv/factory')
    expect(factoryHome({ FACTORY_HOME: 'rel/home' })).toBe(resolve('rel/home'))
    expect(configPath(undefined, { FACTORY_HOME: '/srv/factory' })).toBe('/srv/factory/agents.yaml')
  })

  test('an explicit --config path wins over FACTORY_HOME', () => {
    expect(configPath('/tmp/x.yaml', { FACTORY_HOME: '/srv/factory' })).toBe('/tmp/x.yaml')
  })
})

describe('agent selection', () => {
  const config = parseConfig(TWO, FILE, ENV)

  test('no --agent selects every agent, a name selects that one', () => {
    expect(selectAgents(config).map((a) => a.name)).toEqual(['alpha', 'beta'])
    expect(selectAgents(config, 'beta').map((a) => a.name)).toEqual(['beta'])
    expect(pickAgent(config, 'alpha').engine).toBe('console')
  })

  test('an unknown agent name is a usage error listing the known names', () => {
    for (const fn of [() => pickAgent(config, 'gamma'), () => selectAgents(config, 'gamma')]) {
      const err = failure(fn)
      expect(err.code).toBe('usage')
      expect(err.message).toContain('"gamma"')
      expect(err.fix).toContain('alpha, beta')
    }
  })
})

describe('endpoint URLs', () => {
  test('unset LINEAR_API_URL and GITHUB_API_URL give the public endpoints; set ones are used (GitHub without a trailing slash)', () => {
    expect(linearApiUrl({})).toBe('https://api.linear.app/graphql')
    expect(githubApiUrl({})).toBe('https://api.github.com')
    expect(linearApiUrl({ LINEAR_API_URL: 'http://127.0.0.1:4100/graphql' })).toBe('http://127.0.0.1:4100/graphql')
    expect(githubApiUrl({ GITHUB_API_URL: 'https://ghe.example.com/api/v3/' })).toBe('https://ghe.example.com/api/v3')
  })

  test('an invalid URL in LINEAR_API_URL or GITHUB_API_URL is config_invalid (exit 2) naming the variable and its value', () => {
    const cases = [
      [() => linearApiUrl({ LINEAR_API_URL: 'localhost:4100/graphql' }), 'LINEAR_API_URL', 'localhost:4100/graphql'],
      [() => linearApiUrl({ LINEAR_API_URL: 'ftp://example.com/graphql' }), 'LINEAR_API_URL', 'ftp://example.com/graphql'],
      [() => githubApiUrl({ GITHUB_API_URL: 'api.github.com' }), 'GITHUB_API_URL', 'api.github.com'],
    ] as const
    for (const [fn, name, value] of cases) {
      const err = failure(fn)
      expect(err.code).toBe('config_invalid')
      expect(err.exitCode).toBe(2)
      expect(err.message).toBe(`${name}="${value}" is not a valid http(s) URL`)
      expect(err.fix).toContain(`set ${name} to a full URL such as https://`)
    }
  })
})

describe('config errors a user can act on', () => {
  test('an unknown key names its line and column and the key it most likely meant', () => {
    const err = failure(() => parseConfig(`pol_interval_seconds: 5\n${TWO}    concurency: 3\n`, FILE, ENV))
    expect(err.message).toContain(
      'pol_interval_seconds: unknown key "pol_interval_seconds" (line 1, column 1); did you mean "poll_interval_seconds"?',
    )
    // Line 11 of the file (TWO is 9 lines after the first), where the agent's keys start (column 5).
    expect(err.message).toContain('agents[1].concurency: unknown key "concurency" (line 11, column 5); did you mean "concurrency"?')
  })

  test('a nested unknown key in a flow map points at the key itself; a key far from every known one gets no guess', () => {
    const text = TWO.replace(
      'repo: { url: https://github.com/acme/app.git }',
      'repo: { url: https://github.com/acme/app.git, colour: red }',
    )
    const err = failure(() => parseConfig(text, FILE, ENV))
    const line = text.split('\n').findIndex((l) => l.includes('colour')) + 1
    const col = text.split('\n')[line - 1]!.indexOf('colour') + 1
    expect(err.message).toContain(`agents[1].repo.colour: unknown key "colour" (line ${line}, column ${col})`)
    expect(err.message).not.toContain('did you mean')
  })

  test('a wrong value names the line of that value', () => {
    const err = failure(() => parseConfig(MINIMAL.replace('engine: console', 'engine: gemini'), FILE, ENV))
    expect(err.message).toMatch(/agents\[0\]\.engine: .* \(line 3, column 13\)/)
  })

  test('every unset token variable is reported at once, each with its fix', () => {
    const err = failure(() => parseConfig(TWO, FILE, {}))
    expect(err.message).toContain('agents[0].tracker.token_env: environment variable ROSE_KEY_A is not set')
    expect(err.message).toContain('agents[1].tracker.token_env: environment variable ROSE_KEY_B is not set')
    expect(err.fix).toContain('export ROSE_KEY_A=')
    expect(err.fix).toContain('export ROSE_KEY_B=')
  })

  test('requireEnv: false leaves the token variables to the caller', () => {
    expect(parseConfig(TWO, FILE, {}, { requireEnv: false }).agents).toHaveLength(2)
  })
})

describe('the JSON Schema of agents.yaml', () => {
  test('agents.schema.json is what `config schema` prints today (regenerate it with: bun scripts/config.ts schema > agents.schema.json)', () => {
    const res = spawnSync(process.execPath, [join(ROOT, 'scripts', 'cli.ts'), 'config', 'schema'], { encoding: 'utf8' })
    expect(res.status, res.stderr).toBe(0)
    expect(res.stdout).toBe(configSchemaText())
    expect(readFileSync(join(ROOT, 'agents.schema.json'), 'utf8')).toBe(configSchemaText())
  })

  test('agents.example.yaml names it in its yaml-language-server modeline', () => {
    expect(readFileSync(join(ROOT, 'agents.example.yaml'), 'utf8').split('\n')[0]).toBe(
      '# yaml-language-server: $schema=./agents.schema.json',
    )
  })

  test('the schema knows every key, the defaults, and that an unknown key is not allowed', () => {
    const schema = configJsonSchema() as any
    expect(schema.additionalProperties).toBe(false)
    expect(schema.properties.poll_interval_seconds.default).toBe(30)
    const agent = schema.properties.agents.items
    expect(agent.required).toEqual(['name', 'engine', 'tracker'])
    expect(agent.oneOf).toEqual([{ required: ['repo'] }, { required: ['repos'] }])
    expect(agent.properties.repos.items.properties.match.additionalProperties).toBe(false)
    expect(agent.properties.engine.enum).toEqual(['claude', 'codex', 'console'])
    expect(agent.additionalProperties).toBe(false)
  })
})

describe('config check: where each secret comes from (env, GCP Secret Manager, missing), never its value', () => {
  /** Values only Secret Manager holds (proj-one), and the ones in the environment: none may be printed. */
  const held: Record<string, FakeSecret> = {
    ALPHA_GH_TOKEN: 'gh-from-gcp-value-7731',
    NOTES_KEY: 'notes-from-gcp-value-2290',
    RELAY_WORKER_TOKEN: 'worker-from-gcp-value-5512',
    LANGFUSE_SECRET_KEY: 'langfuse-from-gcp-value-8841',
    CLAUDE_AUTH_TOKEN: { refuse: 'disabled' },
    FORBIDDEN_LINEAR_KEY: { refuse: 403 },
  }
  const inEnv = { ROSE_KEY_A: 'lin_api_env_value_0042', LANGFUSE_PUBLIC_KEY: 'pk-lf-env-value-3317' }
  const gcp = startFakeGcp({ 'proj-one': held })
  const dir = tempDir('config-secrets-')
  afterAll(() => {
    gcp.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const yaml = (linearKey: string, project = 'secrets: { gcp_project: proj-one }\n') =>
    `${project}agents:
  - name: alpha
    engine: claude
    tracker: { mode: api_key, token_env: ${linearKey} }
    repo: { url: https://github.com/acme/app.git }
    github: { token_env: ALPHA_GH_TOKEN }
    mcp_servers:
      notes: { command: notes-mcp, env: { NOTES_KEY: '\${NOTES_KEY}', MODE: plain } }
  - name: relayed
    engine: console
    tracker: { mode: agent_session, token_env: RELAY_WORKER_TOKEN, relay_url: 'http://127.0.0.1:9' }
    repo: { url: /srv/none.git }
`
  /** `bun scripts/config.ts check ...` as a real process (async: the fake answers from this one). */
  async function check(config: string, args: string[] = [], env: Record<string, string> = {}) {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(path, config)
    const child = Bun.spawn([process.execPath, join(ROOT, 'scripts', 'config.ts'), 'check', '--config', path, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: dir, FACTORY_HOME: dir, NO_COLOR: '1', ...gcp.env, ...inEnv, ...env },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
    const values = [...Object.values(held), ...Object.values(inEnv)].filter((v): v is string => typeof v === 'string')
    for (const v of values) expect(stdout + stderr).not.toContain(v)
    return { code, stdout, stderr }
  }

  test('each secret is one line: env, gcp with its resource name, or missing with what needs it and the fix; exit 0 when every required one is there', async () => {
    const res = await check(yaml('ROSE_KEY_A'))
    expect(res.code, res.stderr).toBe(0)
    const lines = res.stdout.split('\n').filter((l) => l.startsWith('#   '))
    expect(lines.map((l) => l.slice(4).split(' ')[0])).toEqual([
      'ROSE_KEY_A:',
      'ALPHA_GH_TOKEN:',
      'NOTES_KEY:',
      'CLAUDE_AUTH_TOKEN:',
      'RELAY_WORKER_TOKEN:',
      'LANGFUSE_PUBLIC_KEY:',
      'LANGFUSE_SECRET_KEY:',
      'SENTRY_DSN:',
    ])
    expect(lines).toContain('#   ROSE_KEY_A: env')
    expect(lines).toContain('#   ALPHA_GH_TOKEN: gcp (projects/proj-one/secrets/ALPHA_GH_TOKEN)')
    expect(lines).toContain('#   NOTES_KEY: gcp (projects/proj-one/secrets/NOTES_KEY)')
    expect(lines).toContain('#   RELAY_WORKER_TOKEN: gcp (projects/proj-one/secrets/RELAY_WORKER_TOKEN)')
    expect(lines).toContain('#   LANGFUSE_PUBLIC_KEY: env')
    expect(lines).toContain('#   LANGFUSE_SECRET_KEY: gcp (projects/proj-one/secrets/LANGFUSE_SECRET_KEY)')
    const claude = lines.find((l) => l.startsWith('#   CLAUDE_AUTH_TOKEN: missing (optional, for alpha: '))!
    expect(claude).toContain('is in DISABLED state')
    expect(claude).toContain(
      'fix: export CLAUDE_AUTH_TOKEN, or enable it (gcloud secrets versions enable 2 --secret CLAUDE_AUTH_TOKEN --project proj-one)',
    )
    const sentry = lines.find((l) => l.startsWith('#   SENTRY_DSN: missing (optional, for Sentry error reports; '))!
    expect(sentry).toContain('404 NOT_FOUND')
    expect(res.stdout.split('\n')[0]).toMatch(/: valid$/)
    // The rest is still the resolved config, readable as YAML (the source lines are comments).
    expect(() => parseYaml(res.stdout)).not.toThrow()
  }, 30_000)

  test('--json gives the same as data: name, source, the Secret Manager resource, required, what needs it', async () => {
    const res = await check(yaml('ROSE_KEY_A'), ['--json'])
    expect(res.code, res.stderr).toBe(0)
    const sources = (JSON.parse(res.stdout) as { secret_sources: Record<string, unknown>[] }).secret_sources
    const by = Object.fromEntries(sources.map((s) => [s.name, s]))
    expect(by.ROSE_KEY_A).toEqual({
      name: 'ROSE_KEY_A',
      source: 'env',
      secret: 'projects/proj-one/secrets/ROSE_KEY_A',
      required: true,
      needs: ['alpha: Linear API key (tracker.token_env)'],
    })
    expect(by.NOTES_KEY).toMatchObject({
      source: 'gcp',
      required: true,
      needs: ['alpha: MCP server notes (mcp_servers.notes.env.NOTES_KEY)'],
    })
    expect(by.RELAY_WORKER_TOKEN).toMatchObject({ source: 'gcp', needs: ['relayed: relay worker token (tracker.token_env)'] })
    expect(by.CLAUDE_AUTH_TOKEN).toMatchObject({ source: 'missing', required: false })
    expect(by.CLAUDE_AUTH_TOKEN!.fix).toContain('gcloud secrets versions enable 2')
    expect(by.CLAUDE_AUTH_TOKEN!.error).toContain('HTTP 400 FAILED_PRECONDITION')
  }, 30_000)

  test('a required secret Secret Manager refuses (403) exits 2 naming it, the project and the IAM fix; the lines are still printed', async () => {
    const res = await check(yaml('FORBIDDEN_LINEAR_KEY'))
    expect(res.code).toBe(2)
    expect(res.stdout.split('\n')[0]).toContain('valid, but secrets are missing')
    expect(res.stdout).toContain('#   FORBIDDEN_LINEAR_KEY: missing (required by alpha: Linear API key (tracker.token_env); ')
    expect(res.stderr).toContain('FORBIDDEN_LINEAR_KEY is missing (alpha: Linear API key (tracker.token_env))')
    expect(res.stderr).toContain('HTTP 403 PERMISSION_DENIED')
    expect(res.stderr).toContain('roles/secretmanager.secretAccessor on secret FORBIDDEN_LINEAR_KEY in project proj-one')
  }, 30_000)

  test('without a GCP project nothing is fetched: an unset token is missing with the export fix and exits 2, as it always did', async () => {
    gcp.reset()
    const res = await check(yaml('ROSE_KEY_UNSET', ''))
    expect(res.code).toBe(2)
    expect(res.stdout).toContain(
      "#   ROSE_KEY_UNSET: missing (required by alpha: Linear API key (tracker.token_env); fix: export ROSE_KEY_UNSET=<the Linear API key of agent alpha's user>",
    )
    expect(res.stdout).toContain('#   NOTES_KEY: missing (required by alpha: MCP server notes')
    expect(res.stdout).toContain('#   LANGFUSE_PUBLIC_KEY: env')
    expect(res.stdout).not.toContain('SENTRY_DSN')
    expect(res.stderr).toContain('ROSE_KEY_UNSET is missing')
    expect(res.stderr).toContain('export NOTES_KEY=')
    expect(gcp.calls).toEqual({ metadata: 0, token: 0, access: [] })
  }, 30_000)
})
