/**
 * runCli in-process (usage, help, exit codes, redaction of failures) and the real bin paths
 * spawned (bun scripts/cli.ts <verb>, bun scripts/<verb>.ts) for configuration mistakes.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defineCommand } from 'citty'
import { contextFromArgs, runCli, useColor } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { ROOT, runScript, tempDir } from './helpers.ts'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) {
    chmodSync(d, 0o700)
    rmSync(d, { recursive: true, force: true })
  }
})

/** A temp dir with an agents.yaml (one console agent whose key is in ROSE_CLI_KEY) and the env to use it. */
function setup(): { dir: string; config: string; env: Record<string, string> } {
  const dir = tempDir('rose-cli-')
  dirs.push(dir)
  const config = join(dir, 'agents.yaml')
  writeFileSync(
    config,
    'agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_CLI_KEY }\n    repo: { url: /srv/none.git }\n',
  )
  return {
    dir,
    config,
    env: { PATH: process.env.PATH ?? '', HOME: dir, FACTORY_HOME: join(dir, 'home'), ROSE_CLI_KEY: 'lin_api_cli_secret_1' },
  }
}

/** Spawn `bun scripts/<script>.ts args` the way a user runs it. */
function spawnScript(script: string, args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, [join(ROOT, 'scripts', `${script}.ts`), ...args], { env, encoding: 'utf8', timeout: 30_000 })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr }
}

const capture = () => {
  const io = { stdout: '', stderr: '' }
  return { io, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) }
}

describe('runCli in-process', () => {
  test('--help prints the usage of the subcommand with its required flag and returns 0', async () => {
    const res = await runScript('cli', ['claim', '--help'])
    expect(res.code).toBe(0)
    expect(res.stdout).toContain('rose-factory claim')
    expect(res.stdout).toContain('--issue')
    expect(res.stdout).toContain('(Required)')
    expect(res.stderr).toBe('')
  })

  test('a missing required --issue is a usage error (2) naming the flag and how to pass it, for every step on one issue', async () => {
    const { config, env } = setup()
    for (const verb of ['claim', 'worktree', 'run-engine', 'report', 'run']) {
      const res = await runScript('cli', [verb, '--config', config, '--agent', 'tester'], env)
      expect(res.code, verb).toBe(2)
      expect(res.stderr, verb).toContain('usage: missing --issue')
      expect(res.stderr, verb).toContain('fix: pass --issue ENG-12')
    }
    const empty = await runScript('claim', ['--config', config, '--agent', 'tester', '--issue'], env)
    expect(empty.code).toBe(2)
    expect(empty.stderr).toContain('missing --issue (given without a value)')
  })

  test('an unknown verb or no verb is a usage error listing the verbs', async () => {
    for (const args of [['frobnicate'], []]) {
      const res = await runScript('cli', args)
      expect(res.code).toBe(2)
      expect(res.stderr).toContain('usage: ')
      expect(res.stderr).toContain('fix: use one of: start, poll, claim')
    }
    const sub = await runScript('config', [])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('use one of: check')
  })

  test('a sandbox verb without its required flags is a usage error naming the first missing one', async () => {
    const res = await runScript('sandbox', ['comment', '--url', 'http://127.0.0.1:9', '--issue', 'ENG-1'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('missing --user')
  })

  test('a FactoryError prints code, message and fix and gives its exit code; a returned number is the exit code', async () => {
    const failing = (code: 'engine_failed' | 'config_invalid') =>
      defineCommand({
        meta: { name: 'x' },
        run() {
          throw new FactoryError(code, 'the thing broke', { fix: 'do the other thing' })
        },
      })
    for (const [code, exit] of [
      ['engine_failed', 1],
      ['config_invalid', 2],
    ] as const) {
      const c = capture()
      expect((await runCli(failing(code), [], c)).code).toBe(exit)
      expect(c.io.stderr).toBe(`${code}: the thing broke\n  fix: do the other thing\n`)
    }
    const c = capture()
    const crash = defineCommand({
      meta: { name: 'x' },
      run() {
        throw new TypeError('undefined is not a function')
      },
    })
    expect((await runCli(crash, [], c)).code).toBe(1)
    expect(c.io.stderr).toContain('internal: undefined is not a function')
    expect((await runCli(defineCommand({ meta: { name: 'x' }, run: () => 3 }), [], capture())).code).toBe(3)
  })

  test("a failure after the agent's context exists is printed with that agent's custom token redacted", async () => {
    const { config, env } = setup()
    const leaky = defineCommand({
      meta: { name: 'leaky' },
      args: { config: { type: 'string' }, agent: { type: 'string' } },
      async run({ args, data }) {
        const ctx = await contextFromArgs(args, 'leaky', data)
        throw new FactoryError('git_failed', `push to https://x:${ctx.env.ROSE_CLI_KEY}@example.com refused`)
      },
    })
    const c = capture()
    expect((await runCli(leaky, ['--config', config, '--agent', 'tester'], { ...c, env })).code).toBe(1)
    expect(c.io.stderr).toContain('push to https://x:***@example.com refused')
    expect(c.io.stderr).not.toContain('cli_secret')
  })

  test('nothing in lib/ exits the process: only the scripts’ entry lines do', () => {
    const offenders: string[] = []
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name)
        if (e.isDirectory()) walk(p)
        else if (p.endsWith('.ts') && /process\.exit\(/.test(readFileSync(p, 'utf8'))) offenders.push(p)
      }
    }
    walk(join(ROOT, 'lib'))
    expect(offenders).toEqual([])
    for (const f of readdirSync(join(ROOT, 'scripts')).filter((n) => n.endsWith('.ts')))
      // The entries that can start an engine first move the tokens out of their environ (lib/secret-channel.ts).
      expect(readFileSync(join(ROOT, 'scripts', f), 'utf8'), f).toMatch(
        /if \(isEntry\(import\.meta\.url\)\) (process\.exit\(\(await runCli\(command\)\)\.code\)|\{\n( {2}\/\/.*\n)* {2}await enterWithoutSecrets\(\)\n {2}process\.exit\(\(await runCli\(command\)\)\.code\)\n\})/,
      )
  })
})

describe('the bin entry, spawned', () => {
  test('bun scripts/cli.ts <verb> runs the verb and exits 0; a usage mistake exits 2', () => {
    const { config, env } = setup()
    const ok = spawnScript('cli', ['config', 'check', '--config', config], env)
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toContain('valid')
    const bad = spawnScript('cli', ['claim', '--config', config, '--agent', 'tester'], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('missing --issue')
  })

  test('an invalid LINEAR_API_URL or GITHUB_API_URL exits 2 naming the variable and its value', () => {
    const { config, env } = setup()
    for (const [name, value] of [
      ['LINEAR_API_URL', '127.0.0.1:4100/graphql'],
      ['GITHUB_API_URL', 'not a url'],
    ] as const) {
      const res = spawnScript('poll', ['--config', config, '--agent', 'tester'], { ...env, [name]: value })
      expect(res.code, res.stderr).toBe(2)
      expect(res.stderr).toContain(`config_invalid: ${name}="${value}" is not a valid http(s) URL`)
      expect(res.stderr).toContain(`fix: set ${name} to a full URL`)
    }
  })

  test('a FACTORY_HOME under a regular file exits 2 with the path and the fix, not ENOTDIR', () => {
    const { dir, config, env } = setup()
    const file = join(dir, 'not-a-dir')
    writeFileSync(file, 'x')
    const home = join(file, 'home')
    for (const script of ['poll', 'start']) {
      const args = script === 'start' ? ['--once', '--config', config] : ['--config', config, '--agent', 'tester']
      const res = spawnScript(script, args, { ...env, FACTORY_HOME: home })
      expect(res.code, `${script}: ${res.stderr}`).toBe(2)
      expect(res.stderr).toContain(`home_unusable: FACTORY_HOME ${home} cannot be a directory: ${file} is a file`)
      expect(res.stderr).toContain('fix: remove or rename')
      expect(res.stderr).not.toContain('ENOTDIR')
    }
  })

  const root = process.getuid?.() === 0
  const unwritable = 'a FACTORY_HOME that is not writable exits 2 with the path and the fix, not EACCES'
  test.skipIf(root)(root ? `${unwritable} [skipped: running as root, which writes through chmod 500]` : unwritable, () => {
    const { dir, config, env } = setup()
    const home = join(dir, 'locked')
    mkdirSync(home)
    chmodSync(home, 0o500)
    const res = spawnScript('poll', ['--config', config, '--agent', 'tester'], { ...env, FACTORY_HOME: home })
    expect(res.code, res.stderr).toBe(2)
    expect(res.stderr).toContain(`home_unusable: FACTORY_HOME ${home} is not writable (EACCES)`)
    expect(res.stderr).toContain('fix: set FACTORY_HOME to a directory you can write')
  })
})

describe('the CLI tells the truth', () => {
  test('an extra positional argument is bad usage (2) for every verb, before anything runs', async () => {
    const { config, env } = setup()
    const verbs = ['start', 'poll', 'claim', 'worktree', 'run-engine', 'report', 'run', 'status', 'doctor']
    for (const verb of verbs) {
      const args = [verb, 'extra-positional', '--config', config, '--agent', 'tester', ...(verb === 'start' ? ['--once'] : [])]
      const res = await runScript('cli', args, env)
      expect(res.code, `${verb}: ${res.stderr}`).toBe(2)
      expect(res.stderr, verb).toContain('usage: unexpected argument "extra-positional"')
    }
    // A flag's value is not a positional; a subcommand's is checked like any verb's.
    expect((await runScript('cli', ['config', 'check', '--config', config], env)).code).toBe(0)
    const sub = await runScript('cli', ['config', 'check', 'extra', '--config', config], env)
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('unexpected argument "extra"')
  })

  test('`start extra-positional`, spawned, exits 2 at once instead of starting the loop', () => {
    const { config, env } = setup()
    const res = spawnScript('start', ['extra-positional', '--config', config], env)
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('unexpected argument "extra-positional"')
    expect(res.stderr).not.toContain('polling every')
  })

  test('run --help lists no --dry-run, and run --dry-run is an unknown option', async () => {
    const help = await runScript('run', ['--help'])
    expect(help.stdout).toContain('--issue')
    expect(help.stdout).not.toContain('--dry-run')
    const { config, env } = setup()
    const res = await runScript('run', ['--config', config, '--agent', 'tester', '--issue', 'ENG-1', '--dry-run'], env)
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('unknown option --dry-run')
  })

  test('status takes --config like every script', async () => {
    const { config, env } = setup()
    const res = spawnScript('status', ['--config', config], env)
    expect(res.code, res.stderr).toBe(0)
    expect(res.stderr).not.toContain('unknown option')
  })

  test('start --json without --once is bad usage (2) that says why and what to use', async () => {
    const { config, env } = setup()
    const res = await runScript('start', ['--json', '--config', config], env)
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('--json needs --once')
    expect(res.stderr).toContain('status --json')
  })

  test('help has no colour codes when piped or with NO_COLOR; colours only on a terminal', async () => {
    const piped = spawnScript('cli', ['--help'], { PATH: process.env.PATH ?? '' })
    expect(piped.code).toBe(0)
    expect(piped.stdout).toContain('USAGE')
    expect(piped.stdout).not.toContain('\u001b[')
    const c = capture()
    expect((await runCli((await import('../scripts/cli.ts')).default, ['start', '--help'], { ...c, color: false })).code).toBe(0)
    expect(c.io.stdout).toContain('--once')
    expect(c.io.stdout).not.toContain('\u001b[')
    expect(useColor({ isTTY: true }, {})).toBe(true)
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false)
    expect(useColor({ isTTY: true }, { NO_COLOR: 'yes' })).toBe(false)
    expect(useColor({ isTTY: true }, { TERM: 'dumb' })).toBe(false)
    expect(useColor({ isTTY: false }, {})).toBe(false)
    expect(useColor({}, {})).toBe(false)
  })
})
