/**
 * The poll step's promise about the cursor (invariant 3): it never passes an issue that is not
 * durably recorded; an idle poll rewrites nothing big; what the poll watches (a released issue
 * with a worktree, until it closes) and what happens to such an issue's worktree and logs.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dueLogDirs } from '../lib/log-retention.ts'
import { readPollHealth } from '../lib/poll-health.ts'
import { loadConfig } from '../lib/config.ts'
import { agentContext } from '../lib/context.ts'
import { tryLock } from '../lib/lock.ts'
import { readState } from '../lib/state.ts'
import { pollAgent } from '../lib/steps/poll.ts'
import { createLinearTracker } from '../lib/tracker/linear.ts'
import type { Tracker } from '../lib/tracker/types.ts'
import { AGENT_KEY, type Fixture, fixture, ROOT, tempDir, until } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

describe('poll', () => {
  test('a failure while recording the polled issues leaves the cursor where it was, so the next poll still queues them', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'First', assignee: 'agent@rose.test' },
        { team: 'ENG', title: 'Second', assignee: 'agent@rose.test' },
      ],
    })
    const { config, path } = loadConfig(fx.configPath, fx.env)
    const real = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: fx.sandbox.url })
    let inject = true
    // The real sandbox answer, except that recording its last issue fails once (as a full disk or a crash would).
    const tracker: Tracker = {
      ...real,
      async poll(cursor, opts) {
        const res = await real.poll(cursor, opts)
        if (inject) {
          inject = false
          Object.defineProperty(res.issues.at(-1)!, 'title', {
            get() {
              throw new Error('injected failure while recording the issue')
            },
          })
        }
        return res
      },
    }
    const ctx = agentContext({ config, configPath: path, agent: config.agents[0]!, env: { ...process.env, ...fx.env }, tracker })
    const statePath = join(fx.home, 'state.json')
    const cursor = () => readState(statePath).agents.tester?.cursor ?? null

    await expect(pollAgent(ctx)).rejects.toThrow('injected failure')
    expect(cursor()).toBeNull()

    const next = await pollAgent(ctx)
    expect(next.items.map((i) => [i.issue.identifier, i.decision.action]).sort()).toEqual([
      ['ENG-1', 'queue'],
      ['ENG-2', 'queue'],
    ])
    const records = Object.values(readState(statePath).agents.tester!.issues)
    expect(records.map((r) => [r.identifier, r.phase]).sort()).toEqual([
      ['ENG-1', 'queued'],
      ['ENG-2', 'queued'],
    ])
    expect(cursor()).not.toBeNull()
  }, 30_000)

  test('an idle poll does not rewrite state.json; the time of the poll is in poll/<agent>.json and status shows it', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'First', assignee: 'agent@rose.test' }] })
    const { config, path } = loadConfig(fx.configPath, fx.env)
    const ctx = agentContext({ config, configPath: path, agent: config.agents[0]!, env: { ...process.env, ...fx.env } })
    const statePath = join(fx.home, 'state.json')
    await pollAgent(ctx)
    expect(readState(statePath).agents.tester!.issues).not.toEqual({})
    const before = statSync(statePath, { bigint: true })
    const at = new Date(Date.now() + 60_000)
    const idle = await pollAgent({ ...ctx, now: () => at })
    expect(idle.items).toEqual([])
    const after = statSync(statePath, { bigint: true })
    expect([after.ino, after.mtimeNs]).toEqual([before.ino, before.mtimeNs])
    expect(readPollHealth(fx.home, 'tester').lastPollAt).toBe(at.toISOString())
    const status = await fx.script('status', [])
    expect(status.stdout).toContain(`tester: last poll ${at.toISOString()}; cursor `)
    const json = JSON.parse((await fx.script('status', ['--json'])).stdout)
    expect(json.agents.tester).toMatchObject({ lastPollAt: at.toISOString(), cursor: readState(statePath).agents.tester!.cursor })
  }, 30_000)

  test('an idle poll waits for no lock: with state.json locked by another live process it still finishes and records the poll', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'First', assignee: 'agent@rose.test' }] })
    const { config, path } = loadConfig(fx.configPath, fx.env)
    const ctx = agentContext({ config, configPath: path, agent: config.agents[0]!, env: { ...process.env, ...fx.env } })
    const statePath = join(fx.home, 'state.json')
    await pollAgent(ctx)
    // Held as a run would hold it while writing (this test process is the live owner); a write would wait 15 s and fail.
    const held = tryLock(`${statePath}.lock`, { staleMs: 30_000 })!
    try {
      const at = new Date(Date.now() + 60_000)
      const idle = await pollAgent({ ...ctx, now: () => at })
      expect(idle.items).toEqual([])
      expect(readPollHealth(fx.home, 'tester').lastPollAt).toBe(at.toISOString())
    } finally {
      held.release()
    }
  }, 30_000)

  test('a worktree of an issue reassigned while it ran and closed later is removed after the grace, and its logs after the retention', async () => {
    fx = await fixture({
      issues: [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test' }],
      agentYaml: (origin) =>
        `poll_interval_seconds: 1\ncleanup_grace_minutes: 0\nlog_retention_days: 0\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${origin}, base: main }\n`,
    })
    const f = fx
    const record = () => Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {})[0]
    const driver = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', f.configPath], {
      cwd: f.dir,
      env: { ...f.env, ROSE_CONSOLE_DELAY_MS: '60000' },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    driver.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise((r) => driver.on('close', r))
    try {
      await until('the engine runs', () => record()?.phase === 'running')
      // Reassigned to someone else: released, its worktree kept; no longer polled as the agent's.
      f.sandbox.store.updateIssue(f.sandbox.store.issue('ENG-1')!.id, { assigneeId: null })
      await until('the issue is released', () => record()?.phase === 'released' && record()?.runs[0]?.status === 'cancelled')
      const wt = record()!.worktree!
      await new Promise((r) => setTimeout(r, 2_500)) // a few ticks: not closed, so kept
      expect(existsSync(wt)).toBe(true)
      expect(record()!.closedAt).toBeUndefined()
      const done = f.sandbox.store.data.states.find((s) => s.name === 'Done')!
      f.sandbox.store.updateIssue(f.sandbox.store.issue('ENG-1')!.id, { stateId: done.id })
      await until('the worktree is removed', () => !existsSync(wt))
      await until('the record is forgotten', () => record() === undefined)
      expect(stderr).toContain('ENG-1: released earlier, now closed')
    } finally {
      driver.kill('SIGINT')
      await exited
    }
    const logs = join(f.home, 'logs', 'tester', 'ENG-1')
    expect(existsSync(join(logs, 'run-1.log'))).toBe(true)
    // A new process sweeps the logs of forgotten issues (log_retention_days: 0 here).
    const res = await f.script('start', ['--once', '--config', f.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(existsSync(logs)).toBe(false)
    expect(res.stderr).toContain('removed the logs of 1 forgotten issue(s)')
  }, 90_000)

  test('log_retention_days: logs of a forgotten issue go once unwritten that long; an issue on record keeps its logs however old', () => {
    const root = tempDir('rose-logs-')
    const now = new Date('2026-06-01T00:00:00.000Z')
    const day = 86_400_000
    const make = (key: string, daysAgo: number) => {
      const d = join(root, key)
      mkdirSync(d, { recursive: true })
      writeFileSync(join(d, 'run-1.log'), 'x')
      const t = new Date(now.getTime() - daysAgo * day)
      utimesSync(join(d, 'run-1.log'), t, t)
      utimesSync(d, t, t)
    }
    make('ENG-1', 31) // forgotten, old: due
    make('ENG-2', 29) // forgotten, recent: kept
    make('ENG-3', 400) // on record: kept
    make('ENG-4', 31)
    // A file written yesterday in an old directory keeps it.
    writeFileSync(join(root, 'ENG-4', 'run-2.log'), 'y')
    utimesSync(join(root, 'ENG-4', 'run-2.log'), new Date(now.getTime() - day), new Date(now.getTime() - day))
    try {
      expect(dueLogDirs(root, ['ENG-3'], 30 * day, now)).toEqual([join(root, 'ENG-1')])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
