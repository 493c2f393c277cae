import { afterEach, describe, expect, test } from 'bun:test'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { askpassScript, authEnv, git, gitEnv, isLocalRemote } from '../lib/git.ts'
import { gitSync, makeOrigin, tempDir } from './helpers.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('git', () => {
  test('the askpass helper answers git with the token from its env, and the token is in no file', () => {
    const home = tempDir()
    dirs.push(home)
    const token = 'ghs_secret_token_value_42'
    const env = authEnv(home, token, process.env, 'https://github.com/acme/app.git')
    expect(env.GIT_ASKPASS).toBe(askpassScript(home))
    expect(readFileSync(env.GIT_ASKPASS!, 'utf8')).not.toContain(token)
    const ask = (prompt: string) => execFileSync(env.GIT_ASKPASS!, [prompt], { env, encoding: 'utf8' }).trim()
    expect(ask("Username for 'https://github.com': ")).toBe('x-access-token')
    expect(ask("Password for 'https://x-access-token@github.com': ")).toBe(token)
    expect(authEnv(home, undefined, process.env, 'https://github.com/acme/app.git').GIT_ASKPASS).toBeUndefined()
    // Not https (a local path, ssh): no helper, no token in the env at all.
    expect(Object.values(authEnv(home, token, process.env, 'git@github.com:acme/app.git'))).not.toContain(token)
  })

  test('the askpass helper answers nothing for any host but the configured one (another host, plain http, a look-alike user)', () => {
    const home = tempDir()
    dirs.push(home)
    const token = 'ghs_secret_token_value_43'
    const env = authEnv(home, token, process.env, 'https://github.com/acme/app.git')
    const ask = (prompt: string) => spawnSync(env.GIT_ASKPASS!, [prompt], { env, encoding: 'utf8' })
    for (const prompt of [
      "Username for 'https://attacker.example': ",
      "Password for 'https://x-access-token@attacker.example': ",
      "Password for 'http://x-access-token@github.com': ",
      "Password for 'https://x-access-token@github.com'@attacker.example': ",
      "Password for 'https://x-access-token@github.com.attacker.example': ",
      "Password for 'https://x-access-token@github.com/acme/app.git': ",
      'Enter passphrase for key',
    ]) {
      const res = ask(prompt)
      expect(res.status, prompt).toBe(1)
      expect(res.stdout, prompt).toBe('')
    }
  })

  test('git sees an allow-listed env: no token of any name, no system or global config', () => {
    const env = gitEnv({
      PATH: '/usr/bin',
      HOME: '/home/x',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      FACTORY_GITHUB_TOKEN: 'ghs_1',
      GITHUB_TOKEN: 'ghs_2',
      LINEAR_API_KEY: 'lin_3',
      CLAUDE_CODE_OAUTH_TOKEN: 'oat_4',
      WHATEVER_SECRET: 'v5',
      GIT_DIR: '/tmp/evil',
      GIT_CONFIG_PARAMETERS: "'core.hookspath'='/tmp/evil'",
    })
    expect(env).toMatchObject({ PATH: '/usr/bin', HOME: '/home/x', LANG: 'C.UTF-8', LC_ALL: 'C' })
    expect(env).toMatchObject({ GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' })
    for (const k of [
      'FACTORY_GITHUB_TOKEN',
      'GITHUB_TOKEN',
      'LINEAR_API_KEY',
      'CLAUDE_CODE_OAUTH_TOKEN',
      'WHATEVER_SECRET',
      'GIT_DIR',
      'GIT_CONFIG_PARAMETERS',
    ])
      expect(env[k], k).toBeUndefined()
  })

  test("config planted in a repository runs nothing when the factory's git runs there: hooks, fsmonitor, credential helper, askpass, ssh command, pager", async () => {
    const dir = tempDir()
    dirs.push(dir)
    const origin = makeOrigin(dir)
    const work = join(dir, 'work')
    gitSync(['clone', '-q', origin, work])
    const ran = join(dir, 'ran')
    const plant = (name: string) => `sh -c 'echo ${name} >> ${ran}'`
    gitSync(['config', 'core.fsmonitor', plant('fsmonitor')], work)
    gitSync(['config', 'credential.helper', `!${plant('credential')}`], work)
    gitSync(['config', 'core.askPass', join(dir, 'askpass.sh')], work)
    writeFileSync(
      join(dir, 'askpass.sh'),
      `#!/bin/sh
echo askpass >> ${ran}
`,
      { mode: 0o755 },
    )
    gitSync(['config', 'core.sshCommand', plant('ssh')], work)
    gitSync(['config', 'core.pager', plant('pager')], work)
    mkdirSync(join(dir, 'hooks'))
    for (const hook of ['pre-commit', 'commit-msg', 'post-commit', 'pre-push', 'post-checkout', 'reference-transaction']) {
      writeFileSync(
        join(work, '.git', 'hooks', hook),
        `#!/bin/sh
echo ${hook} >> ${ran}
`,
        { mode: 0o755 },
      )
      writeFileSync(
        join(dir, 'hooks', hook),
        `#!/bin/sh
echo hookspath-${hook} >> ${ran}
`,
        { mode: 0o755 },
      )
    }
    writeFileSync(join(work, 'new.txt'), 'x\n')
    const caller = { env: { ...process.env, FACTORY_GITHUB_TOKEN: 'ghs_never_here_1' } }
    await git(['status', '--porcelain'], caller, { cwd: work })
    await git(['add', '-A'], caller, { cwd: work })
    await git(['commit', '-q', '-m', 'x'], caller, { cwd: work })
    await git(['checkout', '-q', '-b', 'other'], caller, { cwd: work })
    await git(['log', '-1'], caller, { cwd: work })
    await git(['push', '-q', origin, 'HEAD:refs/heads/other'], caller, { cwd: work })
    await git(['push', '-q', 'ssh://127.0.0.1:1/x.git', 'HEAD'], caller, { cwd: work, allowFail: true })
    gitSync(['config', 'core.hooksPath', join(dir, 'hooks')], work)
    await git(['commit', '-q', '--allow-empty', '-m', 'y'], caller, { cwd: work })
    expect(existsSync(ran) ? readFileSync(ran, 'utf8') : '(nothing ran)').toBe('(nothing ran)')
    // The same config does run for a plain git: the test plants what it claims to.
    spawnSync('git', ['commit', '-q', '--allow-empty', '-m', 'z'], {
      cwd: work,
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
    })
    expect(readFileSync(ran, 'utf8')).toContain('hookspath-pre-commit')
  })

  test('a push redirected to another host (pushInsteadOf) gets no credentials from the askpass helper, and a planted credential helper never runs', async () => {
    const requests: string[] = []
    const server = createServer((req, res) => {
      requests.push(req.headers.authorization ?? '(none)')
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="x"' })
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const dir = tempDir()
      dirs.push(dir)
      const work = join(dir, 'work')
      gitSync(['clone', '-q', makeOrigin(dir), work])
      const attacker = `http://127.0.0.1:${(server.address() as { port: number }).port}/`
      gitSync(['config', `url.${attacker}.pushInsteadOf`, 'https://github.com/'], work)
      const helperRan = join(dir, 'credential-helper-ran')
      gitSync(['config', 'credential.helper', `!sh -c 'env > ${helperRan}'`], work)
      const token = 'ghs_redirected_token_value_5'
      const url = 'https://github.com/acme/app.git'
      const res = await git(
        ['push', url, 'HEAD:refs/heads/x'],
        { env: process.env },
        { cwd: work, env: authEnv(join(dir, 'home'), token, process.env, url), allowFail: true },
      )
      expect(res.exitCode).not.toBe(0)
      expect(requests.length).toBeGreaterThan(0)
      expect(requests.every((a) => a === '(none)')).toBe(true)
      expect(res.stderr).not.toContain(token)
      expect(existsSync(helperRan)).toBe(false)
    } finally {
      server.close()
    }
  })

  test('code that does run from repo config (a clean filter) sees no token in its env', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const work = join(dir, 'work')
    gitSync(['init', '-q', work])
    const dump = join(dir, 'env.txt')
    gitSync(['config', 'filter.x.clean', `sh -c 'env >> ${dump}; cat'`], work)
    writeFileSync(join(work, '.gitattributes'), '* filter=x\n')
    writeFileSync(join(work, 'a.txt'), 'a\n')
    const secrets = {
      FACTORY_GITHUB_TOKEN: 'ghs_tok_val_9',
      ROSE_TEST_LINEAR_KEY: 'lin_tok_val_9',
      CLAUDE_CODE_OAUTH_TOKEN: 'oat_tok_val_9',
    }
    await git(['add', '-A'], { env: { ...process.env, ...secrets } }, { cwd: work })
    const seen = readFileSync(dump, 'utf8')
    expect(seen).toContain('GIT_CONFIG_NOSYSTEM=1')
    for (const v of Object.values(secrets)) expect(seen).not.toContain(v)
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
    const env = authEnv(dir, askpass, process.env, 'https://github.com/a/b')
    const push = await git(['checkout', askpass], { env: process.env }, { cwd: dir, env }).catch((e) => e)
    expect(push.code).toBe('git_failed')
    expect(push.message).not.toContain(askpass)
  })

  test('local paths and file URLs are local remotes; ssh and https are not', () => {
    expect(['/srv/repo.git', './r', '../r', 'file:///srv/r'].every(isLocalRemote)).toBe(true)
    expect(['git@github.com:a/b.git', 'https://github.com/a/b'].some(isLocalRemote)).toBe(false)
  })
})
