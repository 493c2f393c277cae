/**
 * Fault injection: the sandbox fails 20% of requests (RATELIMITED with Linear's reset headers,
 * 5xx, dropped connections) while the loop runs 20 issues. Every issue must still end In Review
 * with exactly one summary comment, none skipped, and nobody may send while the reset is pending.
 */
import { describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { fileRateGate, MAX_RATE_LIMIT_WAIT_MS, memoryRateGate } from '../lib/ratelimit.ts'
import { tempDir } from './helpers.ts'
import { startSandbox } from '../lib/sandbox/server.ts'
import { createLinearTracker } from '../lib/tracker/linear.ts'
import { AGENT_KEY, fixture, ROOT, seedWith } from './helpers.ts'

describe('fault injection', () => {
  test('with 20% of Linear requests failing, 20 issues all end In Review with one summary comment each', async () => {
    const issues = Array.from({ length: 20 }, (_, i) => ({
      team: 'ENG',
      title: `Task ${i + 1}`,
      assignee: 'agent@rose.test',
      priority: (i % 4) + 1,
    }))
    const fx = await fixture({
      issues,
      agentYaml: (o) =>
        `poll_interval_seconds: 1\nmax_concurrency: 6\nagents:\n  - name: tester\n    engine: console\n    concurrency: 6\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    try {
      fx.sandbox.setFaults({ rate: 0.2, kinds: ['ratelimited', '5xx', 'timeout'], resetMs: 400, hangMs: 600, seed: 7 })
      const driver = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', fx.configPath], {
        cwd: fx.dir,
        env: fx.env,
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      driver.stderr.on('data', (d) => (stderr += d))
      const exited = new Promise<number | null>((r) => driver.on('close', r))
      const inReview = () => issues.filter((_, i) => fx.issue(`ENG-${i + 1}`).state === 'In Review').length
      const t0 = Date.now()
      while (inReview() < 20 && Date.now() - t0 < 150_000) await new Promise((r) => setTimeout(r, 250))
      driver.kill('SIGINT')
      expect(await exited).toBe(0)
      const stats = fx.sandbox.stats()
      console.log(
        `fault injection: ${inReview()}/20 In Review in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${stats.requests} requests, ${stats.faultsInjected} faults injected, ${stats.requestsDuringRateLimit} sent during a rate-limit window`,
      )
      expect(
        inReview(),
        stderr
          .split('\n')
          .filter((l) => /error|warn/.test(l))
          .slice(-20)
          .join('\n'),
      ).toBe(20)
      for (let i = 1; i <= 20; i++) {
        const ours = fx.issue(`ENG-${i}`).comments.filter((c) => c.body.includes(COMMENT_MARKER) && c.body.includes('finished'))
        expect(ours, `ENG-${i}`).toHaveLength(1)
      }
      expect(stats.faultsInjected).toBeGreaterThan(10)
      // Processes racing each other can each send one request before the first 400 arrives; beyond
      // that, every process waits for the reset it (or a sibling) was given.
      expect(stats.requestsDuringRateLimit).toBeLessThanOrEqual(stats.faultsInjected)
    } finally {
      await fx.cleanup()
    }
  }, 200_000)

  test('after RATELIMITED the tracker sends nothing until the reset Linear gave', async () => {
    const sb = await startSandbox({ port: 0, seed: seedWith([{ team: 'ENG', title: 'x', assignee: 'agent@rose.test' }]) })
    try {
      const sent: number[] = []
      const tracker = createLinearTracker({
        apiKey: AGENT_KEY,
        apiUrl: sb.url,
        gate: memoryRateGate(),
        onRequest: () => sent.push(Date.now()),
      })
      sb.setFaults({ failNext: 1, kinds: ['ratelimited'], resetMs: 700 })
      const t0 = Date.now()
      const err = await tracker.poll(null).catch((e) => e)
      expect(err.code).toBe('tracker_rate_limited')
      const resetAt = Number(err.details.resetAt)
      expect(resetAt - t0).toBeGreaterThan(500)
      // A poll before the reset is refused locally, without a request.
      expect((await tracker.poll(null).catch((e) => e)).code).toBe('tracker_rate_limited')
      expect(sent).toHaveLength(1)
      // A write waits for the reset, then goes through.
      await tracker.moveIssue(sb.store.issue('ENG-1')!.id, sb.store.data.states.find((s) => s.name === 'In Progress')!.id)
      expect(sent).toHaveLength(2)
      expect(sent[1]!).toBeGreaterThanOrEqual(resetAt)
      expect(sb.stats().requestsDuringRateLimit).toBe(0)
    } finally {
      await sb.stop()
    }
  }, 30_000)

  test('a write that hits RATELIMITED with a 20 s reset waits for the reset, then succeeds (once)', async () => {
    const sb = await startSandbox({ port: 0, seed: seedWith([{ team: 'ENG', title: 'x', assignee: 'agent@rose.test' }]) })
    try {
      // A fake clock: sleeping moves it forward, and the sandbox's rate-limit window ends when the wait does.
      let offset = 0
      const waits: number[] = []
      const sent: number[] = []
      const tracker = createLinearTracker({
        apiKey: AGENT_KEY,
        apiUrl: sb.url,
        gate: memoryRateGate(),
        now: () => Date.now() + offset,
        sleep: async (ms) => {
          waits.push(ms)
          offset += ms
          sb.setFaults({})
        },
        onRequest: () => sent.push(Date.now() + offset),
      })
      sb.setFaults({ failNext: 1, kinds: ['ratelimited'], resetMs: 20_000 })
      const issueId = sb.store.issue('ENG-1')!.id
      const id = '3f1c2b9e-0000-4000-8000-000000000020'
      expect(await tracker.createComment({ id, issueId, body: 'after the reset' })).toEqual({ created: true })
      expect(sent).toHaveLength(2)
      expect(waits).toHaveLength(1)
      expect(waits[0]!).toBeGreaterThan(19_000)
      expect(waits[0]!).toBeLessThan(21_000)
      expect(sent[1]! - sent[0]!).toBeGreaterThanOrEqual(19_000)
      expect(sb.store.data.comments.filter((c) => c.id === id)).toHaveLength(1)
    } finally {
      await sb.stop()
    }
  }, 30_000)

  test('a rate-limit reset in the year 2100 stops the agent for at most an hour, across restarts, then Linear is asked again', async () => {
    const Y2100 = Date.UTC(2100, 0, 1)
    const sb = await startSandbox({ port: 0, seed: seedWith([{ team: 'ENG', title: 'x', assignee: 'agent@rose.test' }]) })
    const dir = tempDir()
    try {
      const path = join(dir, 'ratelimit', 'tester.json')
      let offset = 0
      const now = () => Date.now() + offset
      const tracker = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url, gate: fileRateGate(path), now })
      sb.setFaults({ failNext: 1, kinds: ['ratelimited'], resetMs: Y2100 - Date.now() })
      const t0 = now()
      const err = await tracker.poll(null).catch((e) => e)
      expect(err.code).toBe('tracker_rate_limited')
      // The error the driver backs off on, and the file every process reads, both say at most an hour.
      expect(Number(err.details.resetAt) - t0).toBeLessThanOrEqual(MAX_RATE_LIMIT_WAIT_MS + 1000)
      expect(err.message).not.toContain('2100')
      const stored = JSON.parse(readFileSync(path, 'utf8')).resetAt
      expect(stored - t0).toBeLessThanOrEqual(MAX_RATE_LIMIT_WAIT_MS + 1000)
      // A restarted process (a new gate on the same file) waits, then asks again after the hour.
      sb.setFaults({})
      const restarted = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url, gate: fileRateGate(path), now })
      expect((await restarted.poll(null).catch((e) => e)).code).toBe('tracker_rate_limited')
      offset = MAX_RATE_LIMIT_WAIT_MS + 2000
      const res = await restarted.poll(null)
      expect(res.issues).toHaveLength(1)
    } finally {
      await sb.stop()
    }
  }, 30_000)

  test('a gate file written before the clamp (reset in 2100) is read as at most an hour after it was stored', () => {
    const dir = tempDir()
    const path = join(dir, 'tester.json')
    mkdirSync(dir, { recursive: true })
    const now = Date.now()
    writeFileSync(path, JSON.stringify({ resetAt: Date.UTC(2100, 0, 1) }))
    // Stored two hours ago: the hour is over, so requests may go.
    utimesSync(path, new Date(now - 2 * 3_600_000), new Date(now - 2 * 3_600_000))
    expect(fileRateGate(path).waitMs(now)).toBe(0)
    // Stored just now: at most an hour, and open again after it.
    writeFileSync(path, JSON.stringify({ resetAt: Date.UTC(2100, 0, 1), at: new Date(now).toISOString() }))
    const wait = fileRateGate(path).waitMs(now)
    expect(wait).toBeGreaterThan(0)
    expect(wait).toBeLessThanOrEqual(MAX_RATE_LIMIT_WAIT_MS)
    expect(fileRateGate(path).waitMs(now + MAX_RATE_LIMIT_WAIT_MS + 1)).toBe(0)
    // block() clamps what it stores; an in-memory gate clamps too.
    fileRateGate(path).block(Date.UTC(2100, 0, 1), now)
    expect(JSON.parse(readFileSync(path, 'utf8')).resetAt).toBe(now + MAX_RATE_LIMIT_WAIT_MS)
    const mem = memoryRateGate()
    mem.block(Date.UTC(2100, 0, 1), now)
    expect(mem.waitMs(now)).toBe(MAX_RATE_LIMIT_WAIT_MS)
  })
})
