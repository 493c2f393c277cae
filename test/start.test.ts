import { readPollHealth } from '../lib/poll-health.ts'
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { type IssueRecord, readState, updateState } from '../lib/state.ts'
import { planDispatch, summarizeDispatch } from '../lib/dispatch.ts'
import { fixture, type Fixture, gitSync, ROOT, seedWith, until } from './helpers.ts'
import { DEFAULT_STATES } from '../lib/sandbox/seed.ts'
import { loadConfig } from '../lib/config.ts'
import { createDriver } from '../lib/start.ts'
import { pollBackoffMs } from '../lib/steps/poll.ts'
import { repoSlug } from '../lib/steps/worktree.ts'

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
    expect(readPollHealth(fx.home, 'tester').lastPollError?.code).toBe('tracker_unreachable')
    expect(readState(join(fx.home, 'state.json')).agents.tester?.cursor ?? null).toBeNull()
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

// --dry-run tells the truth: the plan is the one the real tick carries out (lib/dispatch.ts).
describe('start --dry-run plans exactly the real tick', () => {
  const rec = (id: string, priority: number, extra: Partial<IssueRecord> = {}): IssueRecord => ({
    id,
    identifier: id.toUpperCase(),
    title: id,
    phase: 'queued',
    snapshot: { identifier: id.toUpperCase(), priority, createdAt: '2026-01-01T00:00:00Z' } as IssueRecord['snapshot'],
    runs: [],
    attempts: 0,
    updatedAt: '2026-01-01T00:00:00Z',
    ...extra,
  })
  const caps = { agent: 2, machine: 4, runningAgent: 0, runningMachine: 0 }
  const now = Date.parse('2026-06-01T12:00:00Z')

  test('planDispatch starts due issues by priority up to the caps and lists the rest as no slot, waiting or held', () => {
    const records = [
      rec('low', 4),
      rec('urgent', 1),
      rec('due', 2, { attempts: 1, nextRetryAt: '2026-06-01T11:59:00Z' }),
      rec('later', 1, { attempts: 1, nextRetryAt: '2026-06-01T12:05:00Z' }),
      rec('soon', 1, { attempts: 1, nextRetryAt: '2026-06-01T12:01:00Z' }),
      rec('done', 1, { phase: 'done' }),
      rec('held', 1),
    ]
    const plan = summarizeDispatch(planDispatch(records, new Set(), caps, now, new Set(['held'])))
    expect(plan).toEqual({
      start: ['URGENT', 'DUE'],
      noSlot: ['LOW'],
      waiting: [
        { identifier: 'SOON', nextRetryAt: '2026-06-01T12:01:00Z' },
        { identifier: 'LATER', nextRetryAt: '2026-06-01T12:05:00Z' },
      ],
      held: ['HELD'],
    })
  })

  test('planDispatch counts runs in flight against both the agent and the machine cap, and never starts one twice', () => {
    const records = [rec('a', 1), rec('b', 2), rec('c', 3)]
    expect(summarizeDispatch(planDispatch(records, new Set(['a']), { ...caps, runningAgent: 1, runningMachine: 1 }, now)).start).toEqual([
      'B',
    ])
    expect(summarizeDispatch(planDispatch(records, new Set(), { ...caps, agent: 5, machine: 3, runningMachine: 2 }, now)).start).toEqual([
      'A',
    ])
    expect(summarizeDispatch(planDispatch(records, new Set(), { ...caps, runningAgent: 3 }, now))).toMatchObject({
      start: [],
      noSlot: ['A', 'B', 'C'],
    })
  })

  test('the dry run lists a queued issue and a due retry, not a future retry, and the real --once then runs exactly those', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'queued before', assignee: 'agent@rose.test', priority: 1 },
        { team: 'ENG', title: 'retry due', assignee: 'agent@rose.test', priority: 2 },
        { team: 'ENG', title: 'retry later', assignee: 'agent@rose.test', priority: 1 },
        { team: 'ENG', title: 'new, no slot left', priority: 4 },
      ],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    concurrency: 2\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    const a = ['--config', fx.configPath]
    // A poll queues ENG-1..3 (recorded, cursor advanced); two of them then failed once.
    expect((await fx.script('poll', [...a, '--agent', 'tester'])).code).toBe(0)
    const statePath = join(fx.home, 'state.json')
    const later = new Date(Date.now() + 10 * 60_000).toISOString()
    const past = new Date(Date.now() - 60_000).toISOString()
    updateState(statePath, (d) => {
      for (const r of Object.values(d.agents.tester!.issues)) {
        if (r.identifier === 'ENG-2') Object.assign(r, { attempts: 1, nextRetryAt: past })
        if (r.identifier === 'ENG-3') Object.assign(r, { attempts: 1, nextRetryAt: later })
      }
    })
    // ENG-4 is assigned now: the next poll brings it as new.
    fx.sandbox.store.updateIssue('ENG-4', { assigneeId: fx.sandbox.store.userByEmail('agent@rose.test')!.id })
    const bytes = readFileSync(statePath)
    fx.sandbox.resetStats()

    const dry = await fx.script('start', [...a, '--once', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const planned = JSON.parse(dry.stdout)
    expect(planned.dryRun).toBe(true)
    expect(planned.ticks[0].started).toEqual([])
    expect(planned.ticks[0].dispatch).toEqual({
      start: ['ENG-1', 'ENG-2'],
      noSlot: ['ENG-4'],
      waiting: [{ identifier: 'ENG-3', nextRetryAt: later }],
      held: [],
    })
    expect(planned.runs).toEqual([])
    // Nothing written: state.json byte for byte, no Linear mutation, no branch, no worktree.
    expect(readFileSync(statePath).equals(bytes)).toBe(true)
    expect(fx.sandbox.stats().mutations).toBe(0)
    expect(fx.originBranches()).toEqual(['main'])
    expect(existsSync(join(fx.home, 'worktrees'))).toBe(false)

    const text = await fx.script('start', [...a, '--once', '--dry-run'])
    expect(text.stdout).toContain('would run 2: ENG-1, ENG-2 (dry run: nothing written)')
    expect(text.stdout).toContain(`ENG-3 waiting: retry at ${later}`)
    expect(text.stdout).toContain('no free slot this tick (concurrency): ENG-4')

    const real = await fx.script('start', [...a, '--once', '--json'])
    expect(real.code, real.stderr).toBe(0)
    const done = JSON.parse(real.stdout)
    expect(done.ticks[0].started).toEqual(planned.ticks[0].dispatch.start)
    expect(done.ticks[0].dispatch).toEqual(planned.ticks[0].dispatch)
    expect(done.runs.map((r: { identifier: string }) => r.identifier).sort()).toEqual(['ENG-1', 'ENG-2'])
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.issue('ENG-2').state).toBe('In Review')
    expect(fx.issue('ENG-3').state).toBe('Todo')
    expect(fx.issue('ENG-4').state).toBe('Todo')
    const after = Object.values(readState(statePath).agents.tester!.issues)
    expect(after.find((r) => r.identifier === 'ENG-3')).toMatchObject({ phase: 'queued', nextRetryAt: later })
    expect(after.find((r) => r.identifier === 'ENG-4')!.phase).toBe('queued')
  }, 90_000)

  test('an issue reconciliation would release is not in the dry-run plan, and the real tick does not run it', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'stays', assignee: 'agent@rose.test', priority: 1 },
        { team: 'ENG', title: 'unassigned meanwhile', assignee: 'agent@rose.test', priority: 1 },
      ],
    })
    const a = ['--config', fx.configPath]
    expect((await fx.script('poll', [...a, '--agent', 'tester'])).code).toBe(0)
    fx.sandbox.store.updateIssue('ENG-2', { assigneeId: null })
    const dry = await fx.script('start', [...a, '--once', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(JSON.parse(dry.stdout).ticks[0].dispatch.start).toEqual(['ENG-1'])
    const real = await fx.script('start', [...a, '--once', '--json'])
    expect(real.code, real.stderr).toBe(0)
    expect(JSON.parse(real.stdout).ticks[0].started).toEqual(['ENG-1'])
    expect(fx.issue('ENG-2').state).toBe('Todo')
  }, 60_000)
})

// Stopping the loop with signals, as systemd (SIGTERM to the whole process group), `kill` (the
// driver alone) and a terminal (Ctrl-C, twice) do. The driver leads its own process group here,
// as under a service manager, so the group can be signalled without touching the test runner.
// The issue has no comments: every comment on it afterwards is the factory's.
describe('stopping start with signals', () => {
  const record = (f: Fixture) => Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {})[0]
  const summaries = (f: Fixture) =>
    f.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER) && /Run #\d+ finished/.test(c.body))
  const lockPath = (f: Fixture) => join(f.home, 'locks', 'tester', 'ENG-1.lock')

  function detachedStart(f: Fixture, env: Record<string, string>) {
    const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', f.configPath], {
      cwd: f.dir,
      env: { ...f.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout.resume()
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
    return { pid: child.pid!, exited, stderr: () => stderr }
  }

  /** The engine has started its work (not merely the phase set before it). */
  async function engineRunning(driver: { stderr(): string }): Promise<void> {
    await until('the engine runs', () => driver.stderr().includes('engine started'))
    await Bun.sleep(200)
  }

  /** Pids still alive in process group `pgid` (zombies excluded). */
  function groupAlive(pgid: number): number[] {
    const r = spawnSync('ps', ['-o', 'pid=,stat=', '-g', String(pgid)], { encoding: 'utf8' })
    return r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([pid, stat]) => pid && !stat?.startsWith('Z'))
      .map(([pid]) => Number(pid))
  }

  /** After a stop: the run is queued again as it was, nothing counted, nothing said on Linear; the next start finishes it. */
  async function expectRequeuedThenFinished(f: Fixture) {
    const rec = record(f)!
    expect(rec.phase).toBe('queued')
    expect(rec.runs).toHaveLength(1)
    expect(rec.runs[0]!.status).toBe('running')
    expect(rec.attempts).toBe(0)
    expect(rec.recoveries ?? 0).toBe(0)
    expect(f.issue('ENG-1').comments).toHaveLength(0)
    expect(existsSync(lockPath(f))).toBe(false)

    const next = await f.script('start', ['--once', '--config', f.configPath])
    expect(next.code, next.stderr).toBe(0)
    expect(next.stderr).not.toContain('died twice')
    expect(f.issue('ENG-1').state).toBe('In Review')
    expect(f.issue('ENG-1').comments).toHaveLength(1)
    expect(summaries(f)).toHaveLength(1)
    expect(record(f)!.runs).toHaveLength(1)
    expect(record(f)!.phase).toBe('done')
    expect(record(f)!.recoveries ?? 0).toBe(0)
  }

  test('SIGTERM to the whole process group (systemd) stops the run once: queued again, nothing posted, exit 0', async () => {
    fx = await fixture({ issues: ISSUES })
    const driver = detachedStart(fx, { ROSE_CONSOLE_DELAY_MS: '60000' })
    await engineRunning(driver)
    const t0 = Date.now()
    process.kill(-driver.pid, 'SIGTERM')
    expect(await driver.exited, driver.stderr()).toBe(0)
    console.log(`SIGTERM to the group -> driver exited in ${Date.now() - t0} ms`)
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(groupAlive(driver.pid)).toEqual([])
    await expectRequeuedThenFinished(fx)
    // The run child got two SIGTERMs (the group's and the driver's) and stopped once.
    expect(driver.stderr()).toContain('[run] ENG-1: stopped by signal; run #1 is queued again')
    expect(driver.stderr()).toContain('ENG-1 stopped (exit')
  }, 60_000)

  test('SIGTERM to the driver alone stops the run the same way', async () => {
    fx = await fixture({ issues: ISSUES })
    const driver = detachedStart(fx, { ROSE_CONSOLE_DELAY_MS: '60000' })
    await engineRunning(driver)
    process.kill(driver.pid, 'SIGTERM')
    expect(await driver.exited, driver.stderr()).toBe(0)
    expect(groupAlive(driver.pid)).toEqual([])
    expect(driver.stderr()).toContain('SIGTERM: stopping')
    await expectRequeuedThenFinished(fx)
  }, 60_000)

  for (const [how, send] of [
    ['a second SIGTERM to the driver', (pid: number) => process.kill(pid, 'SIGTERM')],
    ['a second Ctrl-C (SIGINT to the whole group)', (pid: number) => process.kill(-pid, 'SIGINT')],
  ] as const) {
    test(`${how} while the run is slow to stop forces the exit; the next start simply resumes the run`, async () => {
      fx = await fixture({ issues: ISSUES })
      // The engine takes a minute to stop once cancelled: the graceful stop would wait 15 s.
      const driver = detachedStart(fx, { ROSE_CONSOLE_DELAY_MS: '60000', ROSE_CONSOLE_STOP_MS: '60000' })
      await engineRunning(driver)
      send(driver.pid)
      await until(
        'the run is stopping',
        () => driver.stderr().includes('[run] SIG') && readFileSync(lockPath(fx!), 'utf8').includes('stopping'),
      )
      const t0 = Date.now()
      send(driver.pid)
      // Forced: 130, as a shell reports an interrupted command, and said on stderr.
      expect(await driver.exited, driver.stderr()).toBe(130)
      console.log(`${how} -> driver exited in ${Date.now() - t0} ms`)
      expect(Date.now() - t0).toBeLessThan(5_000)
      expect(driver.stderr()).toContain('forcing the exit (code 130)')
      expect(groupAlive(driver.pid)).toEqual([])
      // Killed mid-stop: the run is still in flight in state.json, its lock says it was stopping.
      expect(record(fx)!.phase).toBe('running')
      expect(fx.issue('ENG-1').comments).toHaveLength(0)

      const next = await fx.script('start', ['--once', '--config', fx.configPath])
      expect(next.code, next.stderr).toBe(0)
      expect(next.stderr).toContain('stopped by the operator')
      expect(next.stderr).not.toContain('died twice')
      expect(fx.issue('ENG-1').state).toBe('In Review')
      expect(fx.issue('ENG-1').comments).toHaveLength(1)
      expect(summaries(fx)).toHaveLength(1)
      const rec = record(fx)!
      expect(rec.runs).toHaveLength(1)
      expect(rec.attempts).toBe(0)
      expect(rec.recoveries ?? 0).toBe(0)
    }, 60_000)
  }

  test('a resumed run keeps the interrupted attempt of its CLI engine in the same transcript, below it', async () => {
    fx = await fixture({
      issues: ONE_ISSUE,
      agentYaml: (o) =>
        `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    claude: { bin: ${join(dirname(o), 'fake-claude.sh')} }\n`,
    })
    // A stand-in Claude CLI (its own process group, like the real one): the first attempt works
    // forever, the second writes a file and finishes.
    // In its worktree (its cwd): under isolation: namespace nothing else it writes reaches the host.
    const marker = join(fx.home, 'worktrees', 'tester', 'ENG-1', 'first-attempt-seen')
    const init = '{"type":"system","subtype":"init","session_id":"s-1"}'
    const result =
      '{"type":"result","subtype":"success","is_error":false,"result":"wrote hello.txt","session_id":"s-1","total_cost_usd":0.01,"usage":{"input_tokens":1,"output_tokens":2}}'
    const bin = join(fx.dir, 'fake-claude.sh')
    writeFileSync(
      bin,
      `#!/bin/sh\necho '${init}'\nif [ -e '${marker}' ]; then echo hello > hello.txt; echo 'second attempt'; echo '${result}'; exit 0; fi\ntouch '${marker}'\necho 'first attempt, working'\nexec sleep 60\n`,
    )
    chmodSync(bin, 0o755)

    const driver = detachedStart(fx, {})
    await until('the engine runs', () => existsSync(marker) && record(fx!)?.phase === 'running')
    process.kill(-driver.pid, 'SIGTERM')
    expect(await driver.exited, driver.stderr()).toBe(0)
    const logPath = join(fx.home, 'logs', 'tester', 'ENG-1', 'run-1.log')
    const interrupted = readFileSync(logPath, 'utf8')
    expect(interrupted).toContain('first attempt, working')
    expect(interrupted).toContain('status=cancelled')

    const next = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(next.code, next.stderr).toBe(0)
    expect(summaries(fx)).toHaveLength(1)
    const rec = record(fx)!
    expect(rec.runs).toHaveLength(1)
    expect(rec.runs[0]!.logPath).toBe(logPath)
    const transcript = readFileSync(logPath, 'utf8')
    // The interrupted attempt is still there, whole, and the resumed one follows a separator.
    expect(transcript.startsWith(interrupted)).toBe(true)
    const rest = transcript.slice(interrupted.length)
    expect(rest.split('\n')[0]).toMatch(/^\[rose\] ---- .* resumed: a new attempt of this run starts here/)
    expect(rest).toContain('second attempt')
    expect(rest).toContain('status=success')
  }, 60_000)
})

// Issue 7: an issue seen for the first time runs only in one of the agent's active states.
describe('what runs on first sight', () => {
  const statePath = (f: Fixture) => join(f.home, 'state.json')
  const records = (f: Fixture) => Object.values(readState(statePath(f)).agents.tester?.issues ?? {})
  const recordOf = (f: Fixture, identifier: string) => records(f).find((r) => r.identifier === identifier)
  const ours = (f: Fixture, identifier: string) => f.issue(identifier).comments.filter((c) => c.body.includes(COMMENT_MARKER))
  const stateId = (f: Fixture, name: string) => f.sandbox.store.data.states.find((s) => s.name === name)!.id

  test('300 old issues (Done, In Review) and one Todo: one run, the Todo; the next idle tick is one Linear request', async () => {
    const old = Array.from({ length: 300 }, (_, i) => ({
      team: 'ENG',
      title: `Old ${i + 1}`,
      assignee: 'agent@rose.test',
      state: i % 2 === 0 ? 'Done' : 'In Review',
    }))
    const t0 = Date.now()
    fx = await fixture({ issues: [...old, { team: 'ENG', title: 'New work', assignee: 'agent@rose.test' }] })
    const seedMs = Date.now() - t0
    expect(seedMs).toBeLessThan(5_000)

    const res = await fx.script('start', ['--once', '--json', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(JSON.parse(res.stdout).runs).toEqual([{ agent: 'tester', identifier: 'ENG-301', exitCode: 0 }])
    expect(fx.issue('ENG-301').state).toBe('In Review')
    expect(ours(fx, 'ENG-301')).toHaveLength(1)
    // No old issue was touched: no comment, no move.
    const touched = old
      .map((o, i) => ({ id: `ENG-${i + 1}`, want: o.state }))
      .filter((o) => {
        const now = fx!.issue(o.id)
        return now.state !== o.want || now.comments.length > 0
      })
    expect(touched).toEqual([])
    // The In Review ones are recorded as seen, none with a run.
    const phases = records(fx).reduce<Record<string, number>>((n, r) => ((n[r.phase] = (n[r.phase] ?? 0) + 1), n), {})
    expect(phases).toEqual({ seen: 150, done: 1 })
    expect(
      records(fx)
        .filter((r) => r.runs.length > 0)
        .map((r) => r.identifier),
    ).toEqual(['ENG-301'])

    fx.sandbox.resetStats()
    const idle = await fx.script('start', ['--once', '--json', '--config', fx.configPath])
    expect(idle.code, idle.stderr).toBe(0)
    expect(JSON.parse(idle.stdout).runs).toEqual([])
    expect(fx.sandbox.stats().requests).toBe(1)
    expect(fx.sandbox.stats().mutations).toBe(0)
  }, 90_000)

  test('an In Review issue first seen gets no run, even with old comments; a human comment afterwards makes one run', async () => {
    fx = await fixture({
      issues: [
        {
          team: 'ENG',
          title: 'Reviewed before the factory came',
          assignee: 'agent@rose.test',
          state: 'In Review',
          comments: [{ user: 'riley@rose.test', body: 'Looks fine to me.' }],
        },
      ],
    })
    const a = ['--once', '--json', '--config', fx.configPath]
    const first = await fx.script('start', a)
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout).runs).toEqual([])
    expect(recordOf(fx, 'ENG-1')).toMatchObject({ phase: 'seen', runs: [] })
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.issue('ENG-1').comments).toHaveLength(1)
    // A change that is not a comment (a retitle) brings it back: the old comment still does not count.
    fx.sandbox.store.updateIssue('ENG-1', { title: 'Reviewed before the factory came (renamed)' })
    const retitled = await fx.script('start', a)
    expect(retitled.code, retitled.stderr).toBe(0)
    expect(JSON.parse(retitled.stdout).runs).toEqual([])
    expect(recordOf(fx, 'ENG-1')).toMatchObject({ phase: 'seen', runs: [] })

    fx.comment('ENG-1', 'riley@rose.test', 'Please rename the handler to healthz.')
    const second = await fx.script('start', a)
    expect(second.code, second.stderr).toBe(0)
    expect(JSON.parse(second.stdout).runs).toEqual([{ agent: 'tester', identifier: 'ENG-1', exitCode: 0 }])
    expect(recordOf(fx, 'ENG-1')).toMatchObject({ phase: 'done' })
    expect(recordOf(fx, 'ENG-1')!.runs).toHaveLength(1)
    expect(ours(fx, 'ENG-1')).toHaveLength(1)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    const notes = readFileSync(join(recordOf(fx, 'ENG-1')!.worktree!, 'FACTORY_NOTES.md'), 'utf8')
    expect(notes).toContain('Please rename the handler to healthz.')

    const third = await fx.script('start', a)
    expect(JSON.parse(third.stdout).runs).toEqual([])
  }, 60_000)

  test('Backlog and Triage issues are recorded, not run; the Backlog one runs once moved to Todo', async () => {
    fx = await fixture({ issues: [] })
    // A team with a Triage state (the default seed has none).
    fx.sandbox.store.replace({
      ...seedWith([
        { team: 'ENG', title: 'Someday', assignee: 'agent@rose.test', state: 'Backlog' },
        { team: 'ENG', title: 'Not sorted yet', assignee: 'agent@rose.test', state: 'Triage' },
      ]),
      teams: [
        {
          key: 'ENG',
          name: 'Engineering',
          states: [{ name: 'Triage', type: 'triage', position: 0 }, ...DEFAULT_STATES.map((s) => ({ ...s, position: s.position + 1 }))],
        },
      ],
    })
    const a = ['--once', '--json', '--config', fx.configPath]
    const first = await fx.script('start', a)
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout).runs).toEqual([])
    expect(recordOf(fx, 'ENG-1')!.phase).toBe('seen')
    expect(recordOf(fx, 'ENG-2')!.phase).toBe('seen')
    expect(fx.issue('ENG-1').state).toBe('Backlog')
    expect(fx.issue('ENG-2').state).toBe('Triage')

    fx.sandbox.store.updateIssue('ENG-1', { stateId: stateId(fx, 'Todo') })
    const second = await fx.script('start', a)
    expect(second.code, second.stderr).toBe(0)
    expect(JSON.parse(second.stdout).runs).toEqual([{ agent: 'tester', identifier: 'ENG-1', exitCode: 0 }])
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(ours(fx, 'ENG-1')).toHaveLength(1)
    expect(fx.issue('ENG-2').state).toBe('Triage')
    expect(recordOf(fx, 'ENG-2')).toMatchObject({ phase: 'seen', runs: [] })
  }, 60_000)

  test('tracker.active_states: [Backlog] runs a Backlog issue on first sight, and only the states listed', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'From the backlog', assignee: 'agent@rose.test', state: 'Backlog' },
        { team: 'ENG', title: 'Todo, not listed', assignee: 'agent@rose.test' },
      ],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY, active_states: [Backlog] }\n    repo: { url: ${o}, base: main }\n`,
    })
    const res = await fx.script('start', ['--once', '--json', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(JSON.parse(res.stdout).runs).toEqual([{ agent: 'tester', identifier: 'ENG-1', exitCode: 0 }])
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.issue('ENG-2').state).toBe('Todo')
    expect(recordOf(fx, 'ENG-2')!.phase).toBe('seen')
  }, 60_000)
})

describe('reliability of the loop', () => {
  const stateOf = (f: Fixture) => readState(join(f.home, 'state.json')).agents.tester!
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

  test('a run child that exits without taking its issue (agents.yaml broken mid-loop) is not started again at once, but after a backoff', async () => {
    fx = await fixture({ issues: ISSUES })
    const clock = { t: Date.now() }
    const driver = driverFor(fx, clock)
    const good = readFileSync(fx.configPath, 'utf8')
    // The driver has its config; every run child reads agents.yaml again and now fails on it.
    writeFileSync(fx.configPath, 'agents: [ {name: tester, engine: nope\n')
    const [first] = await driver.tick()
    expect(first!.started).toEqual(['ENG-1'])
    // Before: each exit dispatched the issue again at once (60 children in 10 s).
    await sleep(4_000)
    expect(driver.outcomes.map((o) => o.exitCode)).toEqual([2])
    expect(stateOf(fx).issues[Object.keys(stateOf(fx).issues)[0]!]!.phase).toBe('queued')
    const [second] = await driver.tick()
    expect(second!.started).toEqual([])
    expect(second!.dispatch!.waiting).toEqual([{ identifier: 'ENG-1', nextRetryAt: new Date(clock.t + 5_000).toISOString() }])
    // The backoff has passed: one more child, which fails the same way: the wait doubles.
    clock.t += 5_001
    expect((await driver.tick())[0]!.started).toEqual(['ENG-1'])
    await driver.drain()
    expect(driver.outcomes).toHaveLength(2)
    expect((await driver.tick())[0]!.dispatch!.waiting[0]!.nextRetryAt).toBe(new Date(clock.t + 10_000).toISOString())
    // Fixed: the next child takes the issue to In Review, and nothing backs off any more.
    writeFileSync(fx.configPath, good)
    clock.t += 10_001
    expect((await driver.tick())[0]!.started).toEqual(['ENG-1'])
    await driver.drain()
    expect(driver.outcomes.at(-1)!.exitCode).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
  }, 60_000)

  /** An http "git remote" that accepts connections and never answers (a hung remote), with the sockets it holds. */
  async function hungRemote(): Promise<{ url: string; sockets: Socket[]; open: () => number; close: () => void }> {
    const sockets: Socket[] = []
    let open = 0
    const server = createServer((sock) => {
      sockets.push(sock)
      open++
      sock.on('close', () => open--)
      sock.resume() // read the request, answer nothing
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    return {
      url: `http://127.0.0.1:${port}/acme/app.git`,
      sockets,
      open: () => open,
      close: () => {
        for (const x of sockets) x.destroy()
        server.close()
      },
    }
  }

  /** Two agents: `stuck` (Riley's Linear user, ENG-1) on `stuckUrl`, `tester` (the agent user, ENG-2) on the real origin. */
  const twoAgents = (stuckUrl: string) => (origin: string) =>
    `poll_interval_seconds: 1\nagents:\n  - name: stuck\n    engine: console\n    tracker: { mode: api_key, token_env: RILEY_KEY }\n    repo: { url: ${stuckUrl}, base: main }\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${origin}, base: main }\n`
  const TWO_ISSUES = [
    { team: 'ENG', title: 'Stuck', assignee: 'riley@rose.test' },
    { team: 'ENG', title: 'Free', assignee: 'agent@rose.test' },
  ]
  const recordOf = (f: Fixture, agent: string) => Object.values(readState(join(f.home, 'state.json')).agents[agent]?.issues ?? {})[0]

  test('a git remote that never answers holds up only its agent’s runs: the other agent’s issue is done, reconciliation goes on, and SIGTERM stops the driver within seconds', async () => {
    const remote = await hungRemote()
    try {
      fx = await fixture({ issues: TWO_ISSUES, agentYaml: twoAgents(remote.url), env: { RILEY_KEY: 'lin_api_test_riley_key' } })
      const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', fx.configPath], {
        cwd: fx.dir,
        env: fx.env,
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
      try {
        await until('the stuck agent’s clone is waiting on the remote', () => remote.sockets.length > 0)
        await until('the other agent’s issue is in review', () => fx!.issue('ENG-2').state === 'In Review', 40_000)
        expect(recordOf(fx, 'stuck')!.phase).toBe('queued')
        // The stuck agent still polls and reconciles while its clone hangs: unassigned, it is released.
        fx.sandbox.store.updateIssue('ENG-1', { assigneeId: null })
        await until('the stuck agent’s issue is released', () => recordOf(fx!, 'stuck')?.phase === 'released', 10_000)
      } finally {
        const t0 = Date.now()
        process.kill(-child.pid!, 'SIGTERM')
        expect(await exited, stderr).toBe(0)
        console.log(`SIGTERM with a hung clone -> driver exited in ${Date.now() - t0} ms`)
        expect(Date.now() - t0).toBeLessThan(5_000)
      }
      // The hung git was killed with the driver, not left behind holding the connection.
      await until('the hung connection is closed', () => remote.open() === 0, 5_000)
    } finally {
      remote.close()
    }
  }, 90_000)

  test('ROSE_GIT_TIMEOUT_MS bounds a git command against a hung remote: the issue stays queued with the reason, --once ends', async () => {
    const remote = await hungRemote()
    try {
      fx = await fixture({ issues: TWO_ISSUES, agentYaml: twoAgents(remote.url), env: { RILEY_KEY: 'lin_api_test_riley_key' } })
      const t0 = Date.now()
      const res = await fx.script('start', ['--once', '--config', fx.configPath], { ROSE_GIT_TIMEOUT_MS: '1500' })
      expect(Date.now() - t0).toBeLessThan(20_000)
      expect(res.code).toBe(1)
      expect(fx.issue('ENG-2').state).toBe('In Review')
      const stuck = recordOf(fx, 'stuck')!
      expect(stuck.phase).toBe('queued')
      expect(stuck.lastError?.message).toContain('no answer within 1500 ms (ROSE_GIT_TIMEOUT_MS)')
    } finally {
      remote.close()
    }
  }, 60_000)

  test('a clone directory left by a process that died mid-clone is removed; a live clone’s is left alone', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const repos = join(fx.home, 'repos')
    const base = join(repos, repoSlug(fx.origin))
    const live = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const dead = spawnSync('true').pid!
      mkdirSync(join(`${base}.cloning-${dead}`, '.git'), { recursive: true })
      mkdirSync(`${base}.cloning-${live.pid}`, { recursive: true })
      const res = await fx.script('start', ['--once', '--config', fx.configPath])
      expect(res.code, res.stderr).toBe(0)
      expect(existsSync(`${base}.cloning-${dead}`)).toBe(false)
      expect(existsSync(`${base}.cloning-${live.pid}`)).toBe(true)
      expect(res.stderr).toContain(`left by a clone whose process (pid ${dead}) is gone`)
      expect(fx.issue('ENG-1').state).toBe('In Review')
    } finally {
      live.kill('SIGKILL')
    }
  }, 60_000)

  test('a closed issue is forgotten after the cleanup grace; reopened, it runs again and its new run #1 posts its own summary', async () => {
    fx = await fixture({
      issues: ONE_ISSUE,
      agentYaml: (o) =>
        `cleanup_grace_minutes: 0\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    const once = async () => {
      const res = await fx!.script('start', ['--once', '--config', fx!.configPath])
      expect(res.code, res.stderr).toBe(0)
      return res
    }
    const summaries = () => fx!.issue('ENG-1').comments.filter((c) => /Run #1 finished/.test(c.body))
    await once()
    expect(summaries()).toHaveLength(1)
    const states = fx.sandbox.store.data.states
    fx.sandbox.store.updateIssue('ENG-1', { stateId: states.find((s) => s.name === 'Done')!.id })
    await once() // seen closed: the worktree goes (grace 0)
    expect(recordOf(fx, 'tester')!.worktreeRemovedAt).toBeDefined()
    const res = await once() // the record goes
    expect(res.stderr).toContain('forgot 1 issue(s) closed for longer than 0 min: ENG-1')
    expect(stateOf(fx).issues).toEqual({})
    fx.sandbox.store.updateIssue('ENG-1', { stateId: states.find((s) => s.name === 'Todo')!.id })
    await once()
    expect(recordOf(fx, 'tester')!.runs.map((r) => r.n)).toEqual([1])
    // A new comment, not "already posted" under the first record's run #1 id.
    expect(summaries()).toHaveLength(2)
    expect(fx.issue('ENG-1').state).toBe('In Review')
  }, 90_000)

  test('SIGTERM stops the loop within seconds while a Linear poll hangs', async () => {
    fx = await fixture({ issues: ONE_ISSUE })
    const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', fx.configPath], {
      cwd: fx.dir,
      env: fx.env,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
    await until('the issue is in review', () => fx!.issue('ENG-1').state === 'In Review', 40_000)
    // Every request from now on hangs for 2 minutes (Linear's own deadline is 30 s, retried).
    fx.sandbox.setFaults({ rate: 1, kinds: ['timeout'], hangMs: 120_000 })
    const before = fx.sandbox.stats().requests
    await until('a poll is waiting on Linear', () => fx!.sandbox.stats().requests > before, 10_000)
    const t0 = Date.now()
    process.kill(-child.pid!, 'SIGTERM')
    expect(await exited, stderr).toBe(0)
    console.log(`SIGTERM with a hung poll -> driver exited in ${Date.now() - t0} ms`)
    expect(Date.now() - t0).toBeLessThan(5_000)
    fx.sandbox.setFaults({})
  }, 90_000)
})
