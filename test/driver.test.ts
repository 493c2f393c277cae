import { afterEach, describe, expect, test } from 'bun:test'
import { loadConfig } from '../lib/config.ts'
import { createDriver, pollBackoffMs } from '../lib/driver.ts'
import { type Fixture, fixture } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

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
})
