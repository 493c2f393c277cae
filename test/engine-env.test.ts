/** What an engine process gets: its scrubbed env, its credential, its switches, and which binary. */
import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FactoryError } from '../lib/errors.ts'
import { claudeEnvAdditions } from '../lib/engines/claude.ts'
import { engineEnv } from '../lib/engines/env.ts'
import { projectEngineBin, resolveEngineBin } from '../lib/engines/resolve.ts'
import { DENIED_ENV_NAMES } from '../lib/secrets.ts'
import { fixture } from './helpers.ts'

const everythingDenied = Object.fromEntries(
  [...DENIED_ENV_NAMES, 'LINEAR_API_KEY', 'LANGFUSE_SECRET_KEY', 'FACTORY_SECRET_X', 'MY_AGENT_TOKEN'].map((n) => [n, `value-of-${n}`]),
)

describe('engineEnv', () => {
  for (const engine of ['claude', 'codex', 'console'] as const) {
    test(`${engine} gets none of the denied variables nor the agent's token, and keeps harmless ones`, () => {
      const env = engineEnv(engine, { ...everythingDenied, PATH: '/usr/bin', HOME: '/home/x', HARMLESS: 'yes' }, ['MY_AGENT_TOKEN'])
      for (const name of Object.keys(everythingDenied)) expect(env[name]).toBeUndefined()
      expect(env).toMatchObject({ PATH: '/usr/bin', HOME: '/home/x', HARMLESS: 'yes' })
    })
  }

  test("claude gets the factory's CLAUDE_AUTH_TOKEN as CLAUDE_CODE_OAUTH_TOKEN, and only claude does", () => {
    const processEnv = { CLAUDE_AUTH_TOKEN: 'fake-subscription-oauth-token', PATH: '/bin' }
    expect(engineEnv('claude', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBe('fake-subscription-oauth-token')
    expect(engineEnv('claude', processEnv).CLAUDE_AUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', { ...processEnv, CLAUDE_CODE_OAUTH_TOKEN: 'stray' }).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
  })

  test('claude without CLAUDE_AUTH_TOKEN keeps a CLAUDE_CODE_OAUTH_TOKEN the user exported', () => {
    expect(engineEnv('claude', { CLAUDE_CODE_OAUTH_TOKEN: 'own' }).CLAUDE_CODE_OAUTH_TOKEN).toBe('own')
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

/** Written out by hand (not derived from lib/secrets.ts): every one must stay out of an engine process. */
const MUST_NOT_REACH_ENGINES = [
  'OPENAI_API_KEY',
  'OPENAI_ORG_ID',
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'AZURE_OPENAI_API_KEY',
  'GEMINI_API_KEY',
  'GOOGLE_API_KEY',
  'GOOGLE_GENERATIVE_AI_API_KEY',
  'MISTRAL_API_KEY',
  'GROQ_API_KEY',
  'DEEPSEEK_API_KEY',
  'XAI_API_KEY',
  'OPENROUTER_API_KEY',
  'TOGETHER_API_KEY',
  'FIREWORKS_API_KEY',
  'PERPLEXITY_API_KEY',
  'COHERE_API_KEY',
  'HF_TOKEN',
  'HUGGINGFACE_API_KEY',
  'AWS_BEARER_TOKEN_BEDROCK',
  'FACTORY_GITHUB_TOKEN',
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'FACTORY_RELAY_WORKER_TOKEN',
  'CLAUDE_AUTH_TOKEN',
  'SENTRY_AUTH_TOKEN',
  'SUPABASE_ACCESS_TOKEN',
  'LINEAR_API_KEY',
  'LINEAR_WEBHOOK_SECRET',
  'LANGFUSE_SECRET_KEY',
  'FACTORY_SECRET_ANYTHING',
  // The agent's own token variables (custom names from agents.yaml).
  'ROSE_TEST_LINEAR_KEY',
  'ACME_GH_PUSH',
]

describe('the environment of a real engine process', () => {
  test('has none of the secret variables, named one by one, and keeps harmless ones', async () => {
    const fx = await fixture({ issues: [{ team: 'ENG', title: 'Dump the env', assignee: 'agent@rose.test' }] })
    try {
      // Dumped in its worktree (its cwd): under isolation: namespace nothing else it writes reaches the host.
      const dump = `${fx.home}/worktrees/tester/ENG-1/engine-env.txt`
      const bin = `${fx.dir}/env-dumping-engine`
      writeFileSync(bin, `#!/bin/sh\nenv > engine-env.txt\nexit 1\n`)
      chmodSync(bin, 0o755)
      writeFileSync(
        fx.configPath,
        `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${fx.origin}, base: main }\n    github: { token_env: ACME_GH_PUSH }\n    limits: { max_attempts: 1 }\n    claude: { bin: ${bin} }\n`,
      )
      const secrets = Object.fromEntries(
        MUST_NOT_REACH_ENGINES.filter((n) => n !== 'ROSE_TEST_LINEAR_KEY').map((n) => [n, `secret-of-${n}`]),
      )
      await fx.script('start', ['--once', '--config', fx.configPath], { ...secrets, HARMLESS_SETTING: 'kept' })
      const seen = new Set(
        readFileSync(dump, 'utf8')
          .split('\n')
          .map((l) => l.split('=')[0]),
      )
      expect(seen.has('HARMLESS_SETTING')).toBe(true)
      expect(MUST_NOT_REACH_ENGINES.filter((n) => seen.has(n))).toEqual([])
      // No value under another name either (CLAUDE_AUTH_TOKEN is Claude's own credential, handed over on purpose).
      const values = readFileSync(dump, 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith('CLAUDE_CODE_OAUTH_TOKEN='))
        .join('\n')
      expect(values).not.toContain('secret-of-')
      expect(values).not.toContain(fx.env.ROSE_TEST_LINEAR_KEY!)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)
})
