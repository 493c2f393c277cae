import { describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { agentSecretEnvs, parseConfig } from '../lib/config.ts'
import { agentContext } from '../lib/context.ts'
import { logger } from '../lib/log.ts'
import { stdioHooks } from '../lib/stdio.ts'
import { fixture, ROOT, tempDir } from './helpers.ts'

/** What `fn` writes to stderr (the logs), captured. */
function stderrOf(fn: () => void): string {
  const write = process.stderr.write
  let out = ''
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString()
    return true
  }) as typeof process.stderr.write
  // The logger writes on fd 2 itself (lib/stdio.ts): captured at its seam too.
  stdioHooks[2] = (text) => void (out += text)
  try {
    fn()
  } finally {
    process.stderr.write = write
    delete stdioHooks[2]
  }
  return out
}

describe('log', () => {
  test("an agent's own token variables (any name) are redacted from everything logged once its context exists", () => {
    const script = `
      import { parseConfig } from ${JSON.stringify(join(ROOT, 'lib/config.ts'))}
      import { agentContext } from ${JSON.stringify(join(ROOT, 'lib/context.ts'))}
      const yaml = 'agents:\\n  - name: a\\n    engine: console\\n    tracker: { mode: api_key, token_env: ACME_LINEAR }\\n    repo: { url: /tmp/x }\\n    github: { token_env: ACME_GH }\\n'
      const config = parseConfig(yaml, 'x.yaml')
      const ctx = agentContext({ config, configPath: 'x.yaml', agent: config.agents[0] })
      ctx.log.error('push to https://x:' + process.env.ACME_GH + '@github.com failed with key ' + process.env.ACME_LINEAR)
    `
    const home = tempDir()
    const res = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ACME_LINEAR: 'linear-secret-value-123', ACME_GH: 'github-secret-value-456', FACTORY_HOME: home },
    })
    rmSync(home, { recursive: true, force: true })
    expect(res.stderr).toContain('push to https://x:***@github.com failed with key ***')
    expect(res.stderr).not.toContain('secret-value')
  })

  test('two agents with different custom token_env values built in one process (env passed in) both have every token redacted', () => {
    const home = tempDir()
    const yaml = [
      'agents:',
      '  - name: one',
      '    engine: console',
      '    tracker: { mode: api_key, token_env: ONE_LINEAR }',
      '    repo: { url: /tmp/x }',
      '  - name: two',
      '    engine: console',
      '    tracker: { mode: api_key, token_env: TWO_LINEAR }',
      '    repo: { url: /tmp/y }',
      '    github: { token_env: TWO_GH }',
      '',
    ].join('\n')
    const env = {
      FACTORY_HOME: home,
      ONE_LINEAR: 'one-linear-secret-111',
      TWO_LINEAR: 'two-linear-secret-222',
      TWO_GH: 'two-github-secret-333',
    }
    const config = parseConfig(yaml, 'x.yaml', env)
    const [one, two] = config.agents.map((agent) => agentContext({ config, configPath: 'x.yaml', agent, env, tag: agent.name }))
    const all = `${env.ONE_LINEAR} ${env.TWO_LINEAR} ${env.TWO_GH}`
    const out = stderrOf(() => {
      one!.log.error(`key ${env.ONE_LINEAR} refused; saw ${all}`)
      two!.log.error(`key ${env.TWO_LINEAR} refused, push with ${env.TWO_GH} failed; saw ${all}`)
    })
    rmSync(home, { recursive: true, force: true })
    expect(out).toContain('[one] error: key *** refused; saw *** *** ***')
    expect(out).toContain('[two] error: key *** refused, push with *** failed; saw *** *** ***')
    expect(out).not.toContain('secret')
    // The redactor travels with the context (built from its env, not process.env).
    expect(one!.redact(`a ${all}`)).toBe('a *** *** ***')
    expect(two!.redact(`b ${all}`)).toBe('b *** *** ***')
    expect(one!.redact('nothing secret here')).toBe('nothing secret here')
  })

  test('every logger prints through the one process logger with its own tag, to stderr', () => {
    const out = stderrOf(() => {
      logger('claim').info('claimed')
      logger('report').warn('no PR')
    })
    expect(out).toMatch(/^\d\d:\d\d:\d\d \[claim\] claimed\n\d\d:\d\d:\d\d \[report\] warn: no PR\n$/)
  })

  test("the agent's secret variables are its Linear and GitHub token_env", () => {
    const config = parseConfig(
      'agents:\n  - name: a\n    engine: console\n    tracker: { mode: api_key, token_env: K }\n    repo: { url: /x }\n    github: { token_env: G }\n',
      'x.yaml',
      { K: '1' },
    )
    expect(agentSecretEnvs(config.agents[0]!)).toEqual(['K', 'G'])
  })

  test('with two agents with their own token_env names, both tokens stay redacted when the first agent logged before the second existed', () => {
    const script = `
      import { parseConfig } from ${JSON.stringify(join(ROOT, 'lib/config.ts'))}
      import { agentContext } from ${JSON.stringify(join(ROOT, 'lib/context.ts'))}
      const agent = (name, k, g) => '  - name: ' + name + '\\n    engine: console\\n    tracker: { mode: api_key, token_env: ' + k + ' }\\n    repo: { url: /tmp/x }\\n    github: { token_env: ' + g + ' }\\n'
      const config = parseConfig('agents:\\n' + agent('a', 'ACME_LINEAR', 'ACME_GH') + agent('b', 'BETA_LINEAR', 'BETA_GH'), 'x.yaml')
      const a = agentContext({ config, configPath: 'x.yaml', agent: config.agents[0] })
      a.log.info('agent a polled with ' + process.env.ACME_LINEAR)
      const b = agentContext({ config, configPath: 'x.yaml', agent: config.agents[1] })
      const all = [process.env.ACME_LINEAR, process.env.ACME_GH, process.env.BETA_LINEAR, process.env.BETA_GH].join(' ')
      a.log.info('a sees ' + all)
      b.log.error('b sees ' + all)
    `
    const home = tempDir()
    const res = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        ACME_LINEAR: 'acme-linear-secret-1',
        ACME_GH: 'acme-github-secret-2',
        BETA_LINEAR: 'beta-linear-secret-3',
        BETA_GH: 'beta-github-secret-4',
        FACTORY_HOME: home,
      },
    })
    rmSync(home, { recursive: true, force: true })
    expect(res.stderr).toContain('agent a polled with ***')
    expect(res.stderr).toContain('a sees *** *** *** ***')
    expect(res.stderr).toContain('b sees *** *** *** ***')
    expect(res.stderr).not.toContain('-secret-')
  })
})

// Issue 11: the factory's own log lines are kept in $FACTORY_HOME/logs/factory.log.
describe('the factory log', () => {
  /** Run `body` (after an agent context for agent "a" exists) in a fresh bun process with FACTORY_HOME=home. */
  function inProcess(home: string, body: string, env: Record<string, string> = {}) {
    const script = `
      import { parseConfig } from ${JSON.stringify(join(ROOT, 'lib/config.ts'))}
      import { agentContext } from ${JSON.stringify(join(ROOT, 'lib/context.ts'))}
      import { logger } from ${JSON.stringify(join(ROOT, 'lib/log.ts'))}
      const yaml = 'agents:\\n  - name: a\\n    engine: console\\n    tracker: { mode: api_key, token_env: ACME_LINEAR }\\n    repo: { url: /tmp/x }\\n'
      const config = parseConfig(yaml, 'x.yaml')
      const ctx = agentContext({ config, configPath: 'x.yaml', agent: config.agents[0], tag: 'run' })
      ${body}
    `
    return spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ACME_LINEAR: 'linear-secret-value-123', FACTORY_HOME: home, ...env },
    })
  }

  test('never holds a token: the one redactor runs before the file, and the file is private (0600)', () => {
    const home = tempDir()
    try {
      const res = inProcess(home, "ctx.log.error('ENG-7: push failed with key ' + process.env.ACME_LINEAR + '\\n  fix: rotate it')")
      expect(res.status, res.stderr).toBe(0)
      const path = join(home, 'logs', 'factory.log')
      const text = readFileSync(path, 'utf8')
      expect(text).not.toContain('linear-secret-value-123')
      expect(text).toMatch(/^\S+Z error \[run\] agent=a issue=ENG-7 ENG-7: push failed with key \*\*\*\\n {2}fix: rotate it\n$/)
      expect(statSync(path).mode & 0o777).toBe(0o600)
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  test('is capped and rotated to factory.log.1 .. .3, the newest line always in factory.log', () => {
    const home = tempDir()
    try {
      const res = inProcess(home, "for (let i = 0; i < 400; i++) ctx.log.info('ENG-1: line ' + i + ' ' + 'x'.repeat(40))", {
        ROSE_LOG_MAX_BYTES: '4000',
        ROSE_LOG_LEVEL: '3',
      })
      expect(res.status, res.stderr).toBe(0)
      const path = join(home, 'logs', 'factory.log')
      for (const f of [path, `${path}.1`, `${path}.2`, `${path}.3`]) expect(statSync(f).size).toBeLessThanOrEqual(4000)
      expect(existsSync(`${path}.4`)).toBe(false)
      expect(readFileSync(path, 'utf8').trimEnd().split('\n').at(-1)).toContain('ENG-1: line 399 ')
      expect(readFileSync(`${path}.1`, 'utf8')).not.toContain('line 399 ')
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  test('start --once keeps the loop and its runs in factory.log, each line with its agent and issue', async () => {
    const fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    try {
      const res = await fx.script('start', ['--once', '--config', fx.configPath])
      expect(res.code, res.stderr).toBe(0)
      const lines = readFileSync(join(fx.home, 'logs', 'factory.log'), 'utf8')
        .trimEnd()
        .split('\n')
      expect(lines.find((l) => l.includes('[start]') && l.includes('started (pid'))).toMatch(
        / info \[start\] agent=tester issue=ENG-1 tester: ENG-1 started/,
      )
      expect(lines.find((l) => l.includes('[run]') && l.includes('engine success'))).toContain('agent=tester issue=ENG-1 ')
      expect(lines.join('\n')).not.toContain(fx.env.ROSE_TEST_LINEAR_KEY!)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)

  test('--log-format json writes JSON lines to stderr and the file, with agent and issue; an unknown format exits 2', async () => {
    const fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    try {
      const res = await fx.script('start', ['--once', '--log-format', 'json', '--config', fx.configPath])
      expect(res.code, res.stderr).toBe(0)
      const events = res.stderr
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(events.find((e) => e.tag === 'run' && e.msg.includes('engine success'))).toMatchObject({
        level: 'info',
        agent: 'tester',
        issue: 'ENG-1',
        time: expect.stringMatching(/Z$/),
      })
      const file = readFileSync(join(fx.home, 'logs', 'factory.log'), 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(file.some((e) => e.tag === 'start' && e.agent === 'tester' && e.issue === 'ENG-1')).toBe(true)
      const bad = await fx.script('status', ['--log-format', 'xml'])
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain('--log-format xml is not a log format')
    } finally {
      await fx.cleanup()
    }
  }, 60_000)
})
