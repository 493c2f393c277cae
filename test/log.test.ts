import { describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { agentSecretEnvs, parseConfig } from '../lib/config.ts'
import { ROOT, tempDir } from './helpers.ts'

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
