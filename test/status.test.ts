import { afterEach, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { printable } from '../lib/printable.ts'
import { updateState } from '../lib/state.ts'
import { type Fixture, fixture } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

describe('status', () => {
  test("an agent whose first poll failed shows FAILING with Linear's error, though state.json holds nothing of it", async () => {
    fx = await fixture({ issues: [] })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], { LINEAR_API_URL: 'http://127.0.0.1:9/graphql' })
    expect(res.code).toBe(1)
    const table = await fx.script('status', [])
    expect(table.stdout).toContain('tester: last poll never, FAILING: tracker_unreachable')
    const json = JSON.parse((await fx.script('status', ['--json'])).stdout)
    expect(json.agents.tester).toMatchObject({ cursor: null, lastPollError: { code: 'tracker_unreachable' } })
  }, 60_000)

  test('shows what is done, what retries (attempt, when, last error) and what is escalated, as a table and as JSON', async () => {
    fx = await fixture({ issues: [1, 2, 3].map((i) => ({ team: 'ENG', title: `Task ${i}`, assignee: 'agent@rose.test' })) })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const retryAt = new Date(Date.now() + 60_000).toISOString()
    updateState(join(fx.home, 'state.json'), (d) => {
      const issues = Object.values(d.agents.tester!.issues)
      const two = issues.find((r) => r.identifier === 'ENG-2')!
      Object.assign(two, {
        phase: 'queued',
        attempts: 1,
        nextRetryAt: retryAt,
        lastError: { code: 'git_failed', message: 'git push failed: remote hung up' },
      })
      const three = issues.find((r) => r.identifier === 'ENG-3')!
      Object.assign(three, { phase: 'escalated', attempts: 3, lastError: { code: 'engine_stalled', message: 'no output for 300 s' } })
    })

    const table = await fx.script('status', [])
    expect(table.code).toBe(0)
    const lines = table.stdout.split('\n')
    expect(lines.find((l) => l.includes('ENG-2'))).toMatch(/^RETRYING .*attempt 2 in (59|60) s; last error git_failed: git push failed/)
    expect(lines.find((l) => l.includes('ENG-3'))).toMatch(
      /^ESCALATED .*engine_stalled: no output for 300 s \(waits for a human comment or rose-factory retry\)/,
    )
    expect(table.stdout).not.toContain('ENG-1')

    const all = await fx.script('status', ['--all', '--json'])
    const data = JSON.parse(all.stdout)
    expect(data.issues.map((r: { identifier: string; group: string }) => [r.identifier, r.group])).toEqual([
      ['ENG-2', 'retrying'],
      ['ENG-3', 'escalated'],
      ['ENG-1', 'done'],
    ])
    expect(data.issues[0]).toMatchObject({ attempts: 1, nextRetryAt: retryAt, lastError: { code: 'git_failed' } })
    expect(data.agents.tester.cursor).toBeTruthy()
  }, 60_000)
})

// Issue 11: status never contradicts itself, never cuts a path, and knows its agents.
describe('status tells one story', () => {
  const LONG = '/srv/a/very/long/path/to/a/repository/that/goes/on/and/on/well/past/eighty/characters/of/table/width/origin.git'

  test('a queued issue whose run was interrupted shows that run as interrupted and resuming, never as running', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    updateState(join(fx.home, 'state.json'), (d) => {
      const r = Object.values(d.agents.tester!.issues)[0]!
      r.runs.push({ n: 2, startedAt: new Date().toISOString(), status: 'running', engine: 'console' })
      Object.assign(r, { phase: 'queued' })
    })
    const table = await fx.script('status', [])
    const row = table.stdout.split('\n').find((l) => l.includes('ENG-1'))!
    expect(row).toMatch(/^QUEUED +tester +ENG-1 +#2 interrupted; resumes/)
    expect(row).not.toContain('running')
    const json = JSON.parse((await fx.script('status', ['--json'])).stdout)
    expect(json.issues[0].lastRun).toMatchObject({ n: 2, status: 'running', state: 'interrupted; resumes' })
  }, 60_000)

  test('DETAIL shows a long path whole, and --issue shows the issue in full: runs, transcript, PR, worktree, last error and fix', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    updateState(join(fx.home, 'state.json'), (d) => {
      const r = Object.values(d.agents.tester!.issues)[0]!
      Object.assign(r, {
        phase: 'failed',
        prUrl: 'https://github.com/o/r/pull/7',
        lastError: { code: 'git_failed', message: `git fetch ${LONG} failed` },
      })
    })
    const table = await fx.script('status', [])
    expect(table.stdout).toContain(`git_failed: git fetch ${LONG} failed`)

    const one = await fx.script('status', ['--issue', 'ENG-1'])
    expect(one.code, one.stderr).toBe(0)
    const lines = one.stdout.split('\n')
    expect(lines[0]).toBe('ENG-1  Task  (agent tester)')
    expect(one.stdout).toContain('  phase      failed (failed); Linear: In Review')
    expect(one.stdout).toContain('  next       waits for a human: a comment on the issue in Linear, or rose-factory retry --issue ENG-1')
    expect(one.stdout).toContain(`  last error git_failed: git fetch ${LONG} failed`)
    expect(one.stdout).toContain('  fix        see the git message; check the repo URL, base branch and credentials')
    expect(one.stdout).toContain('  PR         https://github.com/o/r/pull/7')
    expect(one.stdout).toContain(`  worktree   ${join(fx.home, 'worktrees', 'tester', 'ENG-1')}`)
    expect(one.stdout).toMatch(/ {4}#1 success {2}console {2}\S+ -> \S+/)
    expect(one.stdout).toContain(`       transcript ${join(fx.home, 'logs', 'tester', 'ENG-1', 'run-1.log')}\n`)
    const json = JSON.parse((await fx.script('status', ['--issue', 'ENG-1', '--json'])).stdout)
    expect(json).toMatchObject({ identifier: 'ENG-1', phase: 'failed', runs: [{ n: 1, state: 'success', transcript: { exists: true } }] })
  }, 60_000)

  test('an unknown --agent exits 2 naming the known agents; an unknown --issue exits 2', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const res = await fx.script('status', ['--agent', 'nope'])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain('usage: unknown agent "nope"')
    expect(res.stderr).toContain('fix: use one of: tester')
    const issue = await fx.script('status', ['--issue', 'ENG-42'])
    expect(issue.code).toBe(2)
    expect(issue.stderr).toContain('issue_unknown: no issue ENG-42 on record')
  }, 60_000)
})

describe('control characters from Linear are printed escaped', () => {
  test('printable escapes NUL, escape sequences, carriage returns, DEL and C1, and keeps ordinary text', () => {
    expect(printable('ENG-1\u001b[2J\r\u0000\u007f\u009b!')).toBe('ENG-1\\x1b[2J\\r\\0\\x7f\\x9b!')
    expect(printable('a\nb\tc')).toBe('a\\nb\\tc')
    expect(printable('a\nb\tc', { keepNewlines: true })).toBe('a\nb\tc')
    expect(printable('Grüße, 工単 ✓')).toBe('Grüße, 工単 ✓')
  })

  test('an identifier with control characters shows escaped in the status table and its row stays one line', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }] })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    updateState(join(fx.home, 'state.json'), (d) => {
      const rec = Object.values(d.agents.tester!.issues)[0]!
      Object.assign(rec, { identifier: 'ENG-1\u001b[2J\r\nFAKE', phase: 'escalated', lastError: { code: 'x', message: 'bad\u0007bell' } })
    })
    const table = await fx.script('status', [])
    expect(table.code).toBe(0)
    expect(table.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
    const row = table.stdout.split('\n').find((l) => l.startsWith('ESCALATED'))!
    expect(row).toContain('ENG-1\\x1b[2J\\r\\nFAKE')
    expect(row).toContain('bad\\x07bell')
  }, 60_000)

  test('a log line carrying an identifier with an escape sequence is written escaped', () => {
    const res = spawnSync(
      process.execPath,
      ['-e', "import('./lib/log.ts').then(({ logger }) => logger('t').info('ENG-1\\u001b]0;pwned\\u0007: moved'))"],
      {
        cwd: join(import.meta.dir, '..'),
        encoding: 'utf8',
      },
    )
    expect(res.stderr).toContain('ENG-1\\x1b]0;pwned\\x07: moved')
    expect(res.stderr).not.toContain('\u001b')
  })
})

// Issue 7: failures are visible where users look.
describe('a base clone that fails', () => {
  test('makes start --once exit 1 and status shows the queued issue as blocked with the git error, as a table and as JSON', async () => {
    fx = await fixture({
      issues: [{ team: 'ENG', title: 'Task', assignee: 'agent@rose.test' }],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}-does-not-exist, base: main }\n`,
    })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('cannot update the base clone')
    expect(res.stderr).toContain('git_failed')
    // Nothing happened on Linear: the issue waits in Todo, no comment.
    expect(fx.issue('ENG-1').state).toBe('Todo')
    expect(fx.issue('ENG-1').comments).toEqual([])

    const table = await fx.script('status', [])
    expect(table.code, table.stderr).toBe(0)
    const line = table.stdout.split('\n').find((l) => l.includes('ENG-1'))
    expect(line).toMatch(/^QUEUED .*blocked: git_failed: cannot update the base clone: git clone /)

    const json = await fx.script('status', ['--json'])
    const rows = JSON.parse(json.stdout).issues
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ identifier: 'ENG-1', group: 'queued', attempts: 0, lastError: { code: 'git_failed' } })
    expect(rows[0].lastError.message).toStartWith('cannot update the base clone: git clone')
    expect(rows[0].lastError.message).toContain('does-not-exist')
  }, 60_000)
})
