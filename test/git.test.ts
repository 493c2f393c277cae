import { afterEach, describe, expect, test } from 'bun:test'
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { askpassScript, authEnv, git, isLocalRemote } from '../lib/git.ts'
import { tempDir } from './helpers.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('git', () => {
  test('the askpass helper answers git with the token from its env, and the token is in no file', () => {
    const home = tempDir()
    dirs.push(home)
    const token = 'ghs_secret_token_value_42'
    const env = authEnv(home, token, process.env)
    expect(env.GIT_ASKPASS).toBe(askpassScript(home))
    expect(readFileSync(env.GIT_ASKPASS!, 'utf8')).not.toContain(token)
    const ask = (prompt: string) => execFileSync(env.GIT_ASKPASS!, [prompt], { env, encoding: 'utf8' }).trim()
    expect(ask("Username for 'https://github.com': ")).toBe('x-access-token')
    expect(ask("Password for 'https://x-access-token@github.com': ")).toBe(token)
    expect(authEnv(home, undefined, process.env).GIT_ASKPASS).toBeUndefined()
  })

  test('a failing git command is a git_failed error carrying the command and its stderr', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const err = await git(['rev-parse', '--verify', 'no-such-ref'], { env: process.env }, { cwd: dir }).catch((e) => e)
    expect(err.code).toBe('git_failed')
    expect(err.message).toContain('git rev-parse --verify no-such-ref failed')
    expect(err.message).toMatch(/not a git repository|fatal/)
  })

  test("a git failure is redacted by the caller's redactor and never shows the askpass token, command line included", async () => {
    const dir = tempDir()
    dirs.push(dir)
    const custom = 'custom-agent-token-0123'
    const caller = { env: { ...process.env, ACME_KEY: custom }, redact: (t: string) => t.split(custom).join('***') }
    const err = await git(['checkout', `branch-${custom}`], caller, { cwd: dir }).catch((e) => e)
    expect(err.code).toBe('git_failed')
    expect(err.message).toContain('git checkout branch-*** failed')
    expect(err.message).not.toContain(custom)
    const askpass = 'ghs_askpass_token_value_77'
    const env = authEnv(dir, askpass, process.env)
    const push = await git(['checkout', askpass], { env: process.env }, { cwd: dir, env }).catch((e) => e)
    expect(push.code).toBe('git_failed')
    expect(push.message).not.toContain(askpass)
  })

  test('local paths and file URLs are local remotes; ssh and https are not', () => {
    expect(['/srv/repo.git', './r', '../r', 'file:///srv/r'].every(isLocalRemote)).toBe(true)
    expect(['git@github.com:a/b.git', 'https://github.com/a/b'].some(isLocalRemote)).toBe(false)
  })
})
