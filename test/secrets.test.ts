import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import { configSecretNames, tokenEnvNames } from '../lib/config-path.ts'
import { isSecretName, splitSecrets } from '../lib/secret-channel.ts'
import { DENIED_ENV_NAMES, DENIED_ENV_PREFIXES, isDeniedEnv, mask, redact, scrubEnv, secretValues } from '../lib/secrets.ts'
import { SECRET_ENV_NAMES } from './fakes/denied-env.ts'

const HARMLESS = {
  PATH: '/usr/bin:/bin',
  HOME: '/home/rose',
  LANG: 'C.UTF-8',
  TERM: 'xterm',
  GIT_AUTHOR_NAME: 'Rose',
  OPENAI_BASE_URL_HINT: 'kept',
  MY_LINEAR_NOTES: 'kept: the prefix is at the start only',
  CLAUDE_CONFIG_DIR: '/home/rose/.claude',
}

describe('scrubEnv', () => {
  test('removes every denied name and keeps harmless variables untouched', () => {
    const env: Record<string, string> = { ...HARMLESS }
    for (const n of DENIED_ENV_NAMES) env[n] = `secret-${n}`
    const out = scrubEnv(env)
    for (const n of DENIED_ENV_NAMES) expect(out[n], n).toBeUndefined()
    expect(out).toEqual(HARMLESS)
  })

  test('the LLM keys, Linear and GitHub tokens named by the design are on the list', () => {
    for (const n of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'FACTORY_GITHUB_TOKEN', 'GITHUB_TOKEN', 'GH_TOKEN'])
      expect(DENIED_ENV_NAMES).toContain(n)
    for (const p of ['LINEAR_', 'LANGFUSE_']) expect(DENIED_ENV_PREFIXES).toContain(p)
  })

  test("every LLM provider key and service token in a developer's shell is kept from the engine", () => {
    // Written out by hand (not read from the list) so that dropping a name from the list fails here.
    const names = SECRET_ENV_NAMES
    const env: Record<string, string> = { ...HARMLESS }
    for (const n of names) env[n] = `value-of-${n.toLowerCase()}`
    expect(scrubEnv(env)).toEqual(HARMLESS)
    expect(secretValues(env).sort()).toEqual(names.map((n) => `value-of-${n.toLowerCase()}`).sort())
  })

  test('removes anything starting with a denied prefix (LINEAR_*, LANGFUSE_*, FACTORY_SECRET_*)', () => {
    const env = {
      ...HARMLESS,
      LINEAR_API_KEY: 'lin_api_1',
      LINEAR_API_KEY_CLAUDE: 'lin_api_2',
      LINEAR_WEBHOOK_SECRET: 'whsec',
      LANGFUSE_SECRET_KEY: 'sk-lf',
      LANGFUSE_PUBLIC_KEY: 'pk-lf',
      FACTORY_SECRET_ANYTHING: 'x',
    }
    expect(scrubEnv(env)).toEqual(HARMLESS)
  })

  test('matches names whatever their case', () => {
    const env = { ...HARMLESS, openai_api_key: 'sk-1', Anthropic_Api_Key: 'sk-2', linear_api_key: 'lin', langfuse_host: 'h' }
    expect(scrubEnv(env)).toEqual(HARMLESS)
    expect(isDeniedEnv('gh_token')).toBe(true)
  })

  test("also removes the extra names it is given, such as an agent's token_env, in any case", () => {
    const env = { ...HARMLESS, ROSE_AGENT_KEY: 'lin_api_agent', Other_Token: 'tok' }
    expect(scrubEnv(env, ['rose_agent_key', 'OTHER_TOKEN'])).toEqual(HARMLESS)
    expect(scrubEnv(env)).toEqual(env)
  })

  test('returns a copy and leaves the input env alone', () => {
    const env: Record<string, string | undefined> = { ...HARMLESS, GITHUB_TOKEN: 'ghp_x', GONE: undefined }
    const out = scrubEnv(env)
    expect(env.GITHUB_TOKEN).toBe('ghp_x')
    expect('GONE' in out).toBe(false)
    out.PATH = 'changed'
    expect(env.PATH).toBe('/usr/bin:/bin')
  })
})

describe('secretValues and redact', () => {
  test('every denied value of 8 characters or more is redacted from a log line', () => {
    const env = {
      ...HARMLESS,
      OPENAI_API_KEY: 'sk-proj-abcdef123456',
      LINEAR_API_KEY: 'lin_api_zyxwvu987',
      AGENT_KEY: 'lin_api_agentkey1',
      GH_TOKEN: 'short',
    }
    const secrets = secretValues(env, ['AGENT_KEY'])
    expect(secrets.sort()).toEqual(['lin_api_agentkey1', 'lin_api_zyxwvu987', 'sk-proj-abcdef123456'])
    const line = `calling with sk-proj-abcdef123456 and Bearer lin_api_zyxwvu987 twice lin_api_zyxwvu987, agent lin_api_agentkey1, home ${HARMLESS.HOME}`
    const out = redact(line, secrets)
    for (const s of secrets) expect(out).not.toContain(s)
    expect(out).toBe(`calling with *** and Bearer *** twice ***, agent ***, home ${HARMLESS.HOME}`)
  })

  test('a secret that contains another secret is hidden completely', () => {
    const long = 'ghp_abcdefgh12345678ZZZZ'
    const short = 'ghp_abcdefgh'
    for (const secrets of [
      [short, long],
      [long, short],
    ]) {
      const out = redact(`token=${long} and ${short}`, secrets)
      expect(out, JSON.stringify(secrets)).not.toContain('12345678')
      expect(out).not.toContain('abcdefgh')
    }
  })

  test('a token is redacted in every form a log line carries it: URL, header, JSON, glued, repeated, across lines', () => {
    const token = 'ghp_R0seFactoryT0ken42'
    const secrets = secretValues({ ...HARMLESS, GITHUB_TOKEN: token })
    const line = [
      `https://x-access-token:${token}@github.com/acme/app.git`,
      `Authorization: Bearer ${token}`,
      JSON.stringify({ token, nested: { env: `GITHUB_TOKEN=${token}` } }),
      `${token}${token}`,
      `${token}\n${token}`,
    ].join('\n')
    const out = redact(line, secrets)
    expect(out).not.toContain(token)
    expect(out).not.toContain('R0seFactory')
    expect(out.split('***').length - 1).toBe(8)
    expect(out).toContain('https://x-access-token:***@github.com/acme/app.git')
  })

  test('a secret of exactly 8 characters is redacted; shorter values are too common to redact', () => {
    const env = { ...HARMLESS, GH_TOKEN: '12345678', GITHUB_TOKEN: '1234567' }
    expect(secretValues(env)).toEqual(['12345678'])
    expect(redact('a=12345678 b=1234567', secretValues(env))).toBe('a=*** b=1234567')
  })

  test('empty secrets change nothing', () => {
    expect(redact('nothing to hide', ['', ''])).toBe('nothing to hide')
  })
})

describe('mask', () => {
  test('never shows more than the first 4 characters', () => {
    for (const v of ['a', 'abcd', 'abcdefgh', 'abcdefghi', 'lin_api_0123456789abcdef', 'x'.repeat(200)]) {
      const m = mask(v)
      const revealed = m.replace(/\*+$/, '')
      expect(revealed.length, v).toBeLessThanOrEqual(4)
      expect(v.startsWith(revealed)).toBe(true)
      expect(m).not.toBe(v)
    }
  })

  test('a long value shows its first 4 characters, enough to tell two keys apart', () => {
    expect(mask('lin_api_0123456789abcdef')).toBe('lin_***')
    expect(mask('abcdefghi')).toBe('abcd***')
  })

  test('short values are fully hidden and unset values say so', () => {
    expect(mask('12345678')).toBe('***')
    expect(mask(undefined)).toBe('(unset)')
    expect(mask('')).toBe('(unset)')
  })
})

describe('splitSecrets (what leaves the environ for the secret channel)', () => {
  test('deny-listed names and the named token_envs go to the channel; the rest stays in the env', () => {
    const { clean, secrets } = splitSecrets(
      { ...HARMLESS, GITHUB_TOKEN: 'ghp_x', LINEAR_API_KEY: 'lin', My_Agent_Key: 'lin_custom', ROSE_SECRET_FD: '3', GONE: undefined },
      ['MY_AGENT_KEY'],
    )
    expect(clean).toEqual(HARMLESS)
    expect(secrets).toEqual({ GITHUB_TOKEN: 'ghp_x', LINEAR_API_KEY: 'lin', My_Agent_Key: 'lin_custom' })
  })

  test('a Linear endpoint stays in the env (no re-exec for it) unless its URL carries credentials', () => {
    const { clean, secrets } = splitSecrets({
      ...HARMLESS,
      LINEAR_API_URL: 'http://127.0.0.1:4000/graphql',
      LINEAR_OAUTH_URL: 'https://user:hunter2@proxy.test/oauth',
    })
    expect(clean).toEqual({ ...HARMLESS, LINEAR_API_URL: 'http://127.0.0.1:4000/graphql' })
    expect(secrets).toEqual({ LINEAR_OAUTH_URL: 'https://user:hunter2@proxy.test/oauth' })
  })

  test('the names issue 8 found reaching the engine are secrets now', () => {
    for (const name of [
      'CODEX_API_KEY',
      'AWS_SECRET_ACCESS_KEY',
      'AZURE_API_KEY',
      'GH_ENTERPRISE_TOKEN',
      'GITHUB_PAT',
      'GITLAB_TOKEN',
      'NPM_TOKEN',
      'OPENAI_ADMIN_KEY',
    ])
      expect(isSecretName(name), name).toBe(true)
  })
})

describe('the token names a process reads at its entry, without a YAML parser where it can', () => {
  const yamlNames = (text: string) =>
    (parse(text) as { agents: any[] }).agents.flatMap((a) => [a.tracker?.token_env, a.github?.token_env]).filter(Boolean)

  test('agents.example.yaml: every token_env the YAML holds is found without the parser', () => {
    const text = readFileSync(join(import.meta.dir, '..', 'agents.example.yaml'), 'utf8')
    const quick = tokenEnvNames(text)
    expect(quick).toBeDefined()
    for (const name of yamlNames(text)) expect(quick).toContain(name)
  })

  test('block and flow mappings, quotes and comments are read', () => {
    const text = [
      'agents:',
      '  - name: a',
      '    tracker:',
      '      token_env: "KEY_A"   # a comment',
      '  - name: b',
      "    tracker: { mode: api_key, token_env: 'KEY_B' }",
      '    github: {token_env: GH_B}',
    ].join('\n')
    expect(tokenEnvNames(text)).toEqual(['KEY_A', 'KEY_B', 'GH_B'])
  })

  test('a form it does not know is left to the YAML parser', () => {
    for (const text of [
      'x: &k KEY\ntracker: { token_env: *k }',
      'tracker:\n  token_env: &k KEY',
      'tracker: { "token_env": KEY }',
      'tracker:\n  token_env: >-\n    KEY',
      'tracker: { token_env: !!str KEY }',
      'tracker: { token_env: "K\\u0045Y" }',
      'tracker: { my_token_env: KEY }',
    ])
      expect(tokenEnvNames(text), text).toBeUndefined()
  })

  test('configSecretNames falls back to the YAML parser and finds an aliased name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rose-names-'))
    try {
      const path = join(dir, 'agents.yaml')
      writeFileSync(path, 'keys: { a: &k ALIASED_KEY }\nagents:\n  - name: a\n    tracker: { mode: api_key, token_env: *k }\n')
      expect(await configSecretNames(['--config', path])).toEqual(['ALIASED_KEY', 'FACTORY_GITHUB_TOKEN'])
      writeFileSync(path, 'agents:\n  - name: a\n    tracker: { mode: api_key, token_env: PLAIN_KEY }\n')
      expect(await configSecretNames([`--config=${path}`])).toEqual(['PLAIN_KEY', 'FACTORY_GITHUB_TOKEN'])
      expect(await configSecretNames(['--config', join(dir, 'missing.yaml')])).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
