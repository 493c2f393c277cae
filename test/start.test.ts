import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { readState } from '../lib/state.ts'
import { type Fixture, fixture, gitSync } from './helpers.ts'
import { loadConfig } from '../lib/config.ts'
import { createDriver, pollBackoffMs } from '../lib/start.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

const ONE_ISSUE = [
  {
    team: 'ENG',
    title: 'Add a health check',
    description: 'GET /healthz answers 200.',
    assignee: 'agent@rose.test',
    priority: 2,
    comments: [{ user: 'riley@rose.test', body: 'Use the existing router.' }],
  },
]

describe('start --once', () => {
  test('takes an assigned issue to In Review with one comment, a pushed branch and an advanced cursor', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)

    const issue = fx.issue('ENG-1')
    expect(issue.state).toBe('In Review')
    const ours = issue.comments.filter((c) => c.body.includes(COMMENT_MARKER))
    expect(ours).toHaveLength(1)
    expect(ours[0]!.body).toContain('Run #1 finished')

    const branch = fx.originBranches().find((b) => b !== 'main')
    expect(branch).toBeDefined()
    const files = gitSync(['ls-tree', '--name-only', '-r', branch!], fx.origin)
    expect(files).toContain('FACTORY_NOTES.md')
    const notes = gitSync(['show', `${branch}:FACTORY_NOTES.md`], fx.origin)
    expect(notes).toContain('Add a health check')
    expect(notes).toContain('Use the existing router.')
    expect(gitSync(['log', '-1', '--format=%s', branch!], fx.origin)).toBe('ENG-1: Add a health check')

    const state = readState(join(fx.home, 'state.json'))
    expect(state.agents.tester!.cursor).not.toBeNull()
    const rec = Object.values(state.agents.tester!.issues)[0]!
    expect(rec.phase).toBe('done')
    expect(rec.runs).toHaveLength(1)
    expect(rec.runs[0]!.reportedAt).toBeDefined()
    // No lock is left behind.
    expect(existsSync(join(fx.home, 'locks', 'tester', 'ENG-1.lock'))).toBe(false)
  }, 60_000)

  test('a second --once changes nothing: no mutation, no new comment, no new commit', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const branch = fx.originBranches().find((b) => b !== 'main')!
    const head = gitSync(['rev-parse', branch], fx.origin)
    const comments = fx.issue('ENG-1').comments.length
    fx.sandbox.resetStats()

    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(fx.sandbox.stats().mutations).toBe(0)
    expect(fx.sandbox.stats().requests).toBe(1)
    expect(fx.issue('ENG-1').comments.length).toBe(comments)
    expect(gitSync(['rev-parse', branch], fx.origin)).toBe(head)
  }, 60_000)

  test('--dry-run makes zero mutations, zero pushes and writes no state', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const res = await fx.script('start', ['--once', '--dry-run', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toContain('would run 1: ENG-1')
    expect(fx.sandbox.stats().mutations).toBe(0)
    expect(fx.originBranches()).toEqual(['main'])
    expect(existsSync(join(fx.home, 'state.json'))).toBe(false)
    expect(fx.issue('ENG-1').state).toBe('Todo')
  }, 60_000)

  test('an unreachable Linear makes --once exit 1 with a clear error and records the failure', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], { LINEAR_API_URL: 'http://127.0.0.1:9/graphql' })
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('tracker_unreachable')
    expect(res.stderr).toContain('LINEAR_API_URL')
    const state = readState(join(fx.home, 'state.json'))
    expect(state.agents.tester!.lastPollError?.code).toBe('tracker_unreachable')
    expect(state.agents.tester!.cursor).toBeNull()
  }, 60_000)

  test('a broken agents.yaml exits 2 naming the file, the key path and the fix', async () => {
    fx = await fixture({
      issues: [],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, branch: main }\n`,
    })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code).toBe(2)
    expect(res.stderr).toContain(fx.configPath)
    expect(res.stderr).toContain('agents[0].repo.branch: unknown key "branch"')
    expect(res.stderr).toContain('fix:')
  }, 30_000)

  test('the token never appears in output, state.json or the worktree git config', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code).toBe(0)
    const key = fx.env.ROSE_TEST_LINEAR_KEY!
    expect(res.stdout + res.stderr).not.toContain(key)
    expect(readFileSync(join(fx.home, 'state.json'), 'utf8')).not.toContain(key)
    const wt = join(fx.home, 'worktrees', 'tester', 'ENG-1')
    expect(gitSync(['config', '--list'], wt)).not.toContain(key)
  }, 60_000)
})

// The loop object itself (lib/start.ts), driven with a fake clock.
const ISSUES = [{ team: 'ENG', title: 'One', assignee: 'agent@rose.test' }]

function driverFor(f: Fixture, clock: { t: number }) {
  const { config, path } = loadConfig(f.configPath, f.env)
  return createDriver({
    config,
    configPath: path,
    agents: config.agents,
    dryRun: false,
    env: { ...process.env, ...f.env },
    now: () => clock.t,
  })
}

describe('driver', () => {
  test('poll backoff doubles from 30 s and caps at 5 min', () => {
    expect([1, 2, 3, 4, 5, 6].map(pollBackoffMs)).toEqual([30_000, 60_000, 120_000, 240_000, 300_000, 300_000])
  })

  test('a Linear outage backs off without polling, then the loop goes on and runs the issue', async () => {
    fx = await fixture({ issues: ISSUES })
    const clock = { t: Date.now() }
    const driver = driverFor(fx, clock)
    // The poll retries twice at once; the third failure in a row backs off.
    fx.sandbox.setFaults({ failNext: 3, kinds: ['5xx'] })

    const [first] = await driver.tick()
    expect(first!.ok).toBe(false)
    expect(first!.error?.code).toBe('tracker_unreachable')
    expect(driver.backoffUntil('tester')).toBe(clock.t + 30_000)

    const before = fx.sandbox.stats().requests
    const [second] = await driver.tick()
    expect(second!.error?.code).toBe('backoff')
    expect(fx.sandbox.stats().requests).toBe(before)

    clock.t += 30_001
    const [third] = await driver.tick()
    expect(third!.ok).toBe(true)
    expect(third!.started).toEqual(['ENG-1'])
    await driver.drain()
    expect(driver.outcomes).toEqual([{ agent: 'tester', identifier: 'ENG-1', exitCode: 0 }])
    expect(fx.issue('ENG-1').state).toBe('In Review')
  }, 60_000)

  test('a rate limit backs off until the reset time Linear gave', async () => {
    fx = await fixture({ issues: ISSUES })
    const clock = { t: Date.now() }
    const driver = driverFor(fx, clock)
    fx.sandbox.setFaults({ failNext: 1, kinds: ['ratelimited'], resetMs: 600_000 })
    const [first] = await driver.tick()
    expect(first!.error?.code).toBe('tracker_rate_limited')
    const until = driver.backoffUntil('tester')!
    // The reset header is ~10 minutes away: far beyond the 30 s outage backoff.
    expect(until - clock.t).toBeGreaterThan(590_000)
    expect(until - clock.t).toBeLessThan(610_000)
    fx.sandbox.setFaults({})
  }, 30_000)

  test('runs respect the agent concurrency and start in priority order', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'low', assignee: 'agent@rose.test', priority: 4 },
        { team: 'ENG', title: 'none', assignee: 'agent@rose.test', priority: 0 },
        { team: 'ENG', title: 'urgent', assignee: 'agent@rose.test', priority: 1 },
      ],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    concurrency: 2\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    const driver = driverFor(fx, { t: Date.now() })
    const res = await driver.once()
    expect(res.reports[0]!.started).toEqual(['ENG-3', 'ENG-1'])
    expect(res.ok).toBe(true)
    expect(fx.issue('ENG-2').state).toBe('Todo')
  }, 60_000)

  test('max_concurrency: 1 starts one run per tick even when the agent may run 3', async () => {
    fx = await fixture({
      issues: [1, 2, 3].map((i) => ({ team: 'ENG', title: `Task ${i}`, assignee: 'agent@rose.test' })),
      agentYaml: (o) =>
        `max_concurrency: 1\nagents:\n  - name: tester\n    engine: console\n    concurrency: 3\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    const states = [1, 2, 3].map((i) => fx!.issue(`ENG-${i}`).state)
    expect(states.filter((s) => s === 'In Review')).toHaveLength(1)
    expect(states.filter((s) => s === 'Todo')).toHaveLength(2)
    const phases = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues).map((r) => r.phase)
    expect(phases.sort()).toEqual(['done', 'queued', 'queued'])
  }, 60_000)
})
