/**
 * The rose-factory command's own verbs: --version, help <verb>, the verb listing, shell completion
 * generated from the command tree (run in a real bash), and --agent left out when the config has
 * one agent.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { contextFromArgs } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { printsOnly } from '../lib/secret-channel.ts'
import { helpArgs, wantsListing } from '../lib/toplevel.ts'
import { ROOT, tempDir } from './helpers.ts'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts', 'cli.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  })

describe('top-level words', () => {
  test('--version, -v and version print the version from package.json', () => {
    for (const arg of ['--version', '-v', 'version']) {
      const r = cli([arg])
      expect(r.status).toBe(0)
      expect(r.stdout).toBe(`${pkg.version}\n`)
    }
  })

  test('help <verb> is <verb> --help; help alone lists the verbs; help of an unknown verb is a usage error (2)', () => {
    expect(helpArgs(['config', 'check'])).toEqual(['config', 'check', '--help'])
    expect(wantsListing(['--help'])).toBe(true)
    expect(wantsListing(['--help', 'start'])).toBe(false)
    expect(cli(['help']).stdout).toContain('install-daemon')
    const r = cli(['help', 'claim'])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('--issue')
    const bad = cli(['help', 'nope'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('nope')
  })

  test('the listing names demo, install-daemon, uninstall-daemon and completion', () => {
    const r = cli(['--help'])
    expect(r.status).toBe(0)
    for (const verb of ['demo', 'install-daemon', 'uninstall-daemon', 'completion', 'help', 'version']) expect(r.stdout).toContain(verb)
  })
})

/** What bash completes for the words typed so far (the last one being completed), with the generated script loaded. */
function complete(script: string, words: string[]): string[] {
  const dir = tempDir('rose-compl-')
  dirs.push(dir)
  writeFileSync(join(dir, 'c.bash'), script)
  const quoted = words.map((w) => `'${w}'`).join(' ')
  const r = spawnSync(
    'bash',
    [
      '-c',
      `source '${join(dir, 'c.bash')}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _rose_factory; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  )
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout.split('\n').filter(Boolean)
}

describe('print-only command lines', () => {
  test('skip the re-exec without secrets (they start no engine); anything else, or a flag after --, does not', () => {
    for (const args of [['--help'], ['start', '--help'], ['-v'], ['version'], ['help', 'start'], ['completion', 'bash']])
      expect(printsOnly(args)).toBe(true)
    for (const args of [
      ['start', '--once'],
      ['install-daemon', '--', 'start', '--help'],
      ['run', '--issue', 'ENG-1'],
    ])
      expect(printsOnly(args)).toBe(false)
  })
})

describe('completion', () => {
  const bash = cli(['completion', 'bash']).stdout

  test('bash completes verbs, subcommands and each verb its own flags, generated from the commands', () => {
    expect(complete(bash, ['rose-factory', 'con'])).toEqual(['config'])
    expect(complete(bash, ['rose-factory', 'install-'])).toEqual(['install-daemon'])
    expect(complete(bash, ['rose-factory', 'config', ''])).toEqual(['check', 'schema'])
    expect(complete(bash, ['rose-factory', 'start', '--on'])).toEqual(['--once'])
    expect(complete(bash, ['rose-factory', 'install-daemon', '--'])).toContain('--env-file')
    expect(complete(bash, ['rose-factory', 'claim', '--'])).toContain('--issue')
    // After a flag that takes a value, the shell's own (file) completion applies.
    expect(complete(bash, ['rose-factory', 'start', '--config', ''])).toEqual([])
  })

  test('zsh gets a compdef script for the same tree (syntax-checked by zsh when installed)', () => {
    const zsh = cli(['completion', 'zsh'])
    expect(zsh.status).toBe(0)
    expect(zsh.stdout).toStartWith('#compdef rose-factory')
    expect(zsh.stdout).toContain('install-daemon')
    const has = spawnSync('sh', ['-c', 'command -v zsh']).status === 0
    if (!has) return console.warn('skipped zsh -n: zsh is not installed')
    const dir = tempDir('rose-compl-')
    dirs.push(dir)
    writeFileSync(join(dir, 'c.zsh'), zsh.stdout)
    expect(spawnSync('zsh', ['-n', join(dir, 'c.zsh')]).status).toBe(0)
  })

  test('an unknown shell is a usage error (2) naming it', () => {
    const r = cli(['completion', 'fish'])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('fish')
  })
})

describe('--agent', () => {
  const config = (agents: string[]) => {
    const dir = tempDir('rose-verbs-')
    dirs.push(dir)
    const path = join(dir, 'agents.yaml')
    writeFileSync(
      path,
      `agents:\n${agents.map((a) => `  - name: ${a}\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_VERBS_KEY }\n    repo: { url: /srv/none.git }\n`).join('')}`,
    )
    return { path, env: { FACTORY_HOME: join(dir, 'home'), ROSE_VERBS_KEY: 'lin_api_verbs_1', PATH: process.env.PATH ?? '' } }
  }

  test('may be left out when the config has exactly one agent', async () => {
    const { path, env } = config(['solo'])
    const ctx = await contextFromArgs({ config: path }, 'test', { env, redact: (t) => t })
    expect(ctx.agent.name).toBe('solo')
  })

  test('is required with two agents, and the fix lists them', async () => {
    const { path, env } = config(['one', 'two'])
    const err = await contextFromArgs({ config: path }, 'test', { env, redact: (t) => t }).catch((e: FactoryError) => e)
    expect(err).toBeInstanceOf(FactoryError)
    expect((err as FactoryError).fix).toContain('--agent one|two')
  })
})
