/** What an engine process gets: its scrubbed env, its credential, its switches, and which binary. */
import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.ts'
import { FactoryError } from '../lib/errors.ts'
import { claudeEnvAdditions } from '../lib/engines/claude.ts'
import { engineEnv } from '../lib/engines/env.ts'
import { projectEngineBin, resolveEngineBin } from '../lib/engines/resolve.ts'
import { DENIED_ENV_NAMES } from '../lib/secrets.ts'
import { SECRET_ENV_NAMES } from './fakes/denied-env.ts'
import { fixture } from './helpers.ts'

const everythingDenied = Object.fromEntries(
  [...DENIED_ENV_NAMES, 'LINEAR_API_KEY', 'LANGFUSE_SECRET_KEY', 'FACTORY_SECRET_X', 'MY_AGENT_TOKEN'].map((n) => [n, `value-of-${n}`]),
)

describe('engineEnv', () => {
  for (const engine of ['claude', 'codex', 'console'] as const) {
    test(`${engine} gets none of the denied variables nor the agent's token, the basics, what engine_env names, and nothing else`, () => {
      const processEnv = { ...everythingDenied, PATH: '/usr/bin', HOME: '/home/x', LC_ALL: 'C', NAMED: 'yes', UNLISTED: 'no' }
      const env = engineEnv(engine, processEnv, ['MY_AGENT_TOKEN'], ['NAMED'])
      // Claude's credential is the one exception, under the CLI's name; its adapter hands it over on an fd (test/claude.test.ts).
      const credential = engine === 'claude' ? ['CLAUDE_CODE_OAUTH_TOKEN'] : []
      for (const name of Object.keys(everythingDenied).filter((n) => !credential.includes(n))) expect(env[name], name).toBeUndefined()
      if (engine === 'claude') expect(env.CLAUDE_CODE_OAUTH_TOKEN).toBe(everythingDenied.CLAUDE_AUTH_TOKEN)
      expect(env).toMatchObject({ PATH: '/usr/bin', HOME: '/home/x', LC_ALL: 'C', NAMED: 'yes' })
      expect(env.UNLISTED).toBeUndefined()
      // Naming a secret in engine_env does not let it through (the config refuses it too).
      expect(engineEnv(engine, processEnv, ['MY_AGENT_TOKEN'], ['MY_AGENT_TOKEN', 'GITHUB_TOKEN']).MY_AGENT_TOKEN).toBeUndefined()
    })
  }

  test("claude gets the factory's CLAUDE_AUTH_TOKEN as CLAUDE_CODE_OAUTH_TOKEN, and only claude does", () => {
    const processEnv = { CLAUDE_AUTH_TOKEN: 'fake-subscription-oauth-token', PATH: '/bin' }
    expect(engineEnv('claude', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBe('fake-subscription-oauth-token')
    expect(engineEnv('claude', processEnv).CLAUDE_AUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', { ...processEnv, CLAUDE_CODE_OAUTH_TOKEN: 'stray' }).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
  })

  test('claude without CLAUDE_AUTH_TOKEN uses a CLAUDE_CODE_OAUTH_TOKEN the user exported; no other engine gets it', () => {
    expect(engineEnv('claude', { CLAUDE_CODE_OAUTH_TOKEN: 'own' }).CLAUDE_CODE_OAUTH_TOKEN).toBe('own')
    expect(engineEnv('codex', { CLAUDE_CODE_OAUTH_TOKEN: 'own' }, [], ['CLAUDE_CODE_OAUTH_TOKEN']).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
  })

  test("each engine's own documented variables pass, and only to that engine", () => {
    const processEnv = { ANTHROPIC_BASE_URL: 'http://127.0.0.1:1', CLAUDE_CODE_MAX_RETRIES: '1', CODEX_HOME: '/c', IS_SANDBOX: '1' }
    expect(engineEnv('claude', processEnv)).toEqual({
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:1',
      CLAUDE_CODE_MAX_RETRIES: '1',
      IS_SANDBOX: '1',
    })
    expect(engineEnv('codex', processEnv)).toEqual({ CODEX_HOME: '/c' })
    expect(engineEnv('console', processEnv)).toEqual({})
  })

  test('claude runs get the quiet offline switches, and IS_SANDBOX only when bypassing permissions as root', () => {
    const quiet = { DISABLE_TELEMETRY: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1' }
    expect(claudeEnvAdditions({ permissionMode: 'acceptEdits' })).toEqual(quiet)
    const root = process.getuid?.() === 0
    expect(claudeEnvAdditions({ permissionMode: 'bypassPermissions' })).toEqual(root ? { ...quiet, IS_SANDBOX: '1' } : quiet)
  })
})

describe('resolveEngineBin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rose-resolve-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const executable = (path: string) => {
    mkdirSync(join(path, '..'), { recursive: true })
    writeFileSync(path, '#!/bin/sh\n')
    chmodSync(path, 0o755)
    return path
  }
  const onPath = executable(join(dir, 'path', 'claude'))
  const configured = executable(join(dir, 'configured', 'my-claude'))
  const fromEnv = executable(join(dir, 'env', 'claude-env'))

  test('a configured path wins over the env variable and PATH', () => {
    expect(resolveEngineBin('claude', configured, { ROSE_CLAUDE_BIN: fromEnv, PATH: join(dir, 'path') })).toBe(configured)
  })

  test('ROSE_CLAUDE_BIN / ROSE_CODEX_BIN win over PATH', () => {
    expect(resolveEngineBin('claude', undefined, { ROSE_CLAUDE_BIN: fromEnv, PATH: join(dir, 'path') })).toBe(fromEnv)
  })

  test('without either, the binary on PATH is used', () => {
    expect(resolveEngineBin('claude', undefined, { PATH: `/nonexistent:${join(dir, 'path')}` })).toBe(onPath)
  })

  test('a configured path that does not exist is an engine_missing error naming it and the fix, not a fallback', () => {
    const missing = join(dir, 'nope', 'claude')
    let err: unknown
    try {
      resolveEngineBin('claude', missing, { PATH: join(dir, 'path') })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FactoryError)
    expect((err as FactoryError).code).toBe('engine_missing')
    expect((err as FactoryError).message).toContain(missing)
    expect((err as FactoryError).fix).toContain('npm install -g @anthropic-ai/claude-code')
    expect(() => resolveEngineBin('codex', undefined, { ROSE_CODEX_BIN: missing })).toThrow(/ROSE_CODEX_BIN/)
  })

  test("with nothing on PATH it falls back to the project's engines/ install, or says how to get one", () => {
    for (const name of ['claude', 'codex'] as const) {
      let found: string | undefined
      let err: FactoryError | undefined
      try {
        found = resolveEngineBin(name, undefined, { PATH: '' })
      } catch (e) {
        err = e as FactoryError
      }
      if (found) expect(found).toBe(projectEngineBin(name))
      else expect(err?.fix).toContain('make engines')
    }
    expect(projectEngineBin('codex')).toEndWith('/engines/node_modules/.bin/codex')
  })
})

/**
 * The well-known secret names; a name no list knows (only the allow-list keeps it out); and the
 * agent's own token variables (custom names from agents.yaml).
 */
const MUST_NOT_REACH_ENGINES = [...SECRET_ENV_NAMES, 'AWS_PROFILE_SECRET_ANYTHING', 'ROSE_TEST_LINEAR_KEY', 'ACME_GH_PUSH']

describe('the environment of a real engine process', () => {
  test('has none of the secret variables, named one by one, and only the variables engine_env names besides the basics', async () => {
    const fx = await fixture({ issues: [{ team: 'ENG', title: 'Dump the env', assignee: 'agent@rose.test' }] })
    try {
      // Dumped in its worktree (its cwd): under isolation: namespace nothing else it writes reaches the host.
      const dump = `${fx.home}/worktrees/tester/ENG-1/engine-env.txt`
      const bin = `${fx.dir}/env-dumping-engine`
      writeFileSync(bin, `#!/bin/sh\nenv > engine-env.txt\nexit 1\n`)
      chmodSync(bin, 0o755)
      writeFileSync(
        fx.configPath,
        `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${fx.origin}, base: main }\n    github: { token_env: ACME_GH_PUSH }\n    engine_env: [HARMLESS_SETTING]\n    limits: { max_attempts: 1 }\n    claude: { bin: ${bin} }\n`,
      )
      const secrets = Object.fromEntries(
        MUST_NOT_REACH_ENGINES.filter((n) => n !== 'ROSE_TEST_LINEAR_KEY').map((n) => [n, `secret-of-${n}`]),
      )
      await fx.script('start', ['--once', '--config', fx.configPath], { ...secrets, HARMLESS_SETTING: 'kept', UNLISTED_SETTING: 'dropped' })
      const seen = new Set(
        readFileSync(dump, 'utf8')
          .split('\n')
          .map((l) => l.split('=')[0]),
      )
      expect(seen.has('HARMLESS_SETTING')).toBe(true)
      expect(seen.has('UNLISTED_SETTING')).toBe(false)
      expect(MUST_NOT_REACH_ENGINES.filter((n) => seen.has(n))).toEqual([])
      // No value under another name either (Claude's own credential comes on a file descriptor, not in the env).
      const values = readFileSync(dump, 'utf8')
      expect(values).not.toContain('secret-of-')
      expect(values).not.toContain(fx.env.ROSE_TEST_LINEAR_KEY!)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)
})

/**
 * A stand-in engine that does what an injected prompt could make Claude Code's shell do: dump its
 * env, its parent's and grandparent's environ (the run process, the driver), and every environ under
 * /proc it can read, into files in its worktree.
 */
const PROC_SNOOPER = `#!/bin/sh
out="$PWD"
env > "$out/leak-env.txt"
tr '\\0' '\\n' < /proc/$PPID/environ > "$out/leak-ppid.txt"
gp=$(awk '{print $4}' /proc/$PPID/stat)
tr '\\0' '\\n' < /proc/$gp/environ > "$out/leak-ppid2.txt"
for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < "$f" 2>/dev/null; echo; done > "$out/leak-all.txt"
ls /proc | grep -c '^[0-9]' > "$out/leak-count.txt"
exit 1
`

describe('the processes an engine can see', () => {
  const salt = Math.random().toString(36).slice(2, 10)
  const secrets: Record<string, string> = {
    ROSE_TEST_LINEAR_KEY: `lin_api_snoop_${salt}`,
    ACME_GH_PUSH: `ghp_custom_${salt}`,
    FACTORY_GITHUB_TOKEN: `ghp_factory_${salt}`,
    GITHUB_TOKEN: `ghp_plain_${salt}`,
    CLAUDE_AUTH_TOKEN: `claude-oauth-${salt}`,
    OTHER_AGENT_KEY: `lin_api_other_${salt}`,
    AWS_SECRET_ACCESS_KEY: `aws_${salt}`,
  }
  const leakFiles = (dir: string) =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /^leak-(env|ppid|ppid2|all)\.txt$/.test(e.name))
      .map((e) => join(e.parentPath, e.name))
  const setUp = async () => {
    const issues = [{ team: 'ENG', title: 'Snoop', assignee: 'agent@rose.test' }]
    const fx = await fixture({ issues, env: secrets, agentKey: secrets.ROSE_TEST_LINEAR_KEY })
    const bin = join(fx.dir, 'proc-snooper')
    // As if the model had learned a token some other way and printed it: the run's redactor (which
    // knows the tokens it received on its channel) must hide it in what the factory prints.
    writeFileSync(bin, PROC_SNOOPER.replace('exit 1', `echo "error: fatal: found ${secrets.ACME_GH_PUSH}" >&2\nexit 1`))
    chmodSync(bin, 0o755)
    // A second agent whose token the first agent's engine must not see either. isolation: none,
    // so the engine can see the factory's processes: what is proven here is that none of them
    // holds a token (under namespace it could not even see them).
    writeFileSync(
      fx.configPath,
      `agents:\n  - name: tester\n    engine: claude\n    isolation: none\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${fx.origin}, base: main }\n    github: { token_env: ACME_GH_PUSH }\n    limits: { max_attempts: 1 }\n    claude: { bin: ${bin} }\n` +
        `  - name: other\n    engine: console\n    tracker: { mode: api_key, token_env: OTHER_AGENT_KEY }\n    repo: { url: ${fx.origin}, base: main }\n`,
    )
    return fx
  }
  /** Every file the snooper wrote, with the secret names whose VALUE it holds. */
  const check = (fx: Awaited<ReturnType<typeof setUp>>) => {
    const files = leakFiles(fx.home)
    expect(files.map((f) => f.split('/').at(-1)).sort()).toEqual(['leak-all.txt', 'leak-env.txt', 'leak-ppid.txt', 'leak-ppid2.txt'])
    const found = files.flatMap((f) => {
      const text = readFileSync(f, 'utf8')
      return Object.entries(secrets)
        .filter(([, v]) => text.includes(v))
        .map(([k]) => `${f.split('/').at(-1)}: ${k}`)
    })
    expect(found).toEqual([])
    return Object.fromEntries(files.map((f) => [f.split('/').at(-1)!, readFileSync(f, 'utf8')]))
  }

  test('through start --once (driver -> run child -> engine): no environ it can read holds a token', async () => {
    const fx = await setUp()
    try {
      const res = await fx.script('start', ['--once', '--config', fx.configPath, '--agent', 'tester'])
      const seen = check(fx)
      // The walk did reach the run process (it got its secrets on fd 3) and the driver (FACTORY_HOME).
      expect(seen['leak-ppid.txt']).toContain('ROSE_SECRET_FD=3')
      expect(seen['leak-ppid2.txt']).toContain(`FACTORY_HOME=${fx.home}`)
      expect(seen['leak-all.txt']).toContain(`FACTORY_HOME=${fx.home}`)
      // And the factory still had every token it needed: it polled Linear with the key and ran the engine.
      expect(res.stderr).toContain('ENG-1 started')
      expect(res.stderr).toContain('error: fatal: found ***')
      for (const v of Object.values(secrets)) expect(res.stderr).not.toContain(v)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)

  test('through run by hand (tokens exported in its env): the run cleans its own environ before the engine starts', async () => {
    const fx = await setUp()
    try {
      expect((await fx.script('poll', ['--config', fx.configPath, '--agent', 'tester'])).code).toBe(0)
      const res = await fx.script('run', ['--config', fx.configPath, '--agent', 'tester', '--issue', 'ENG-1'])
      expect(res.stderr).toContain('run #1')
      expect(res.stderr).toContain('error: fatal: found ***')
      for (const v of Object.values(secrets)) expect(res.stderr).not.toContain(v)
      const seen = check(fx)
      // The engine's parent is the run process itself, started with the tokens: its environ shows their names, emptied in place.
      expect(seen['leak-ppid.txt']).toMatch(/^ROSE_TEST_LINEAR_KEY=$/m)
      expect(seen['leak-ppid.txt']).toMatch(/^ACME_GH_PUSH=$/m)
      expect(seen['leak-ppid.txt']).toContain(`FACTORY_HOME=${fx.home}`)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)
})

describe('engine_env in agents.yaml', () => {
  const yaml = (extra: string) =>
    `agents:\n  - name: alpha\n    engine: codex\n    tracker: { mode: api_key, token_env: ROSE_KEY_A }\n    repo: { url: /srv/git/app.git }\n${extra}`
  const env = { ROSE_KEY_A: 'lin_api_a' }
  const fails = (text: string) => {
    try {
      parseConfig(text, '/etc/agents.yaml', env)
    } catch (e) {
      return e as FactoryError
    }
    throw new Error('parsed')
  }

  test('names further variables for the engine; absent, the list is empty', () => {
    expect(parseConfig(yaml('    engine_env: [FAKE_KEY, HTTPS_PROXY]\n'), '/etc/agents.yaml', env).agents[0]!.engine_env).toEqual([
      'FAKE_KEY',
      'HTTPS_PROXY',
    ])
    expect(parseConfig(yaml(''), '/etc/agents.yaml', env).agents[0]!.engine_env).toEqual([])
  })

  test('a secret named there (deny-listed, or any agent token_env) is config_invalid naming the entry and the fix', () => {
    for (const [name, i] of [
      ['GITHUB_TOKEN', 0],
      ['ROSE_KEY_A', 0],
      ['CODEX_API_KEY', 0],
    ] as const) {
      const err = fails(yaml(`    engine_env: [${name}]\n`))
      expect(err.code).toBe('config_invalid')
      expect(err.message).toContain(`agents[0].engine_env[${i}]: ${name} holds a secret`)
      expect(err.fix).toContain(`remove ${name} from engine_env`)
    }
  })

  test('a value that is not a variable name is an error naming the path', () => {
    expect(fails(yaml('    engine_env: ["A=B"]\n')).message).toContain('agents[0].engine_env[0]: must be an environment variable name')
  })
})
