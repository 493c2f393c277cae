#!/usr/bin/env bun
/**
 * agent_session latency: an issue delegated to the sandbox's app user -> the engine process of its
 * run started on the worker (relay process on SQLite + a `start` loop, console engine, everything on
 * 127.0.0.1), one session at a time so nothing queues behind another; and the Linear requests each
 * session costs (the sandbox counts them: the relay's first thought and token, the worker's reads,
 * moves, activities, the PR link and the final response). Targets: p50 < 250 ms, p99 < 1 s;
 * <= 10 requests + the run's activities. Prints a Markdown section for BENCHMARKS.md.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxDelegate } from '../lib/sandbox/client.ts'
import { removeSetups, setup } from '../test/fakes/agent-session-setup.ts'

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 50)
const s = await setup({ issues: SESSIONS + 1 })
const worker = s.loop()
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!
const latencies: number[] = []
const requests: number[] = []
const activities: number[] = []
try {
  for (let i = 2; i <= SESSIONS + 1; i++) {
    const key = `ENG-${i}`
    const transcript = join(s.home, 'logs', 'rosie', key, 'run-1.log')
    const before = s.sandbox.stats().requests
    const t0 = performance.now()
    const { session } = await sandboxDelegate(s.sandbox.baseUrl, { issue: key, user: 'riley@rose.test', app: 'rosie@app.rose.test' })
    while (!existsSync(transcript)) await Bun.sleep(2)
    latencies.push(performance.now() - t0)
    // Wait for the session's final response before the next one (requests counted per whole session).
    for (;;) {
      const view = await s.session(session.id)
      if (view?.activities.some((a) => a.content.type === 'response')) {
        activities.push(view.activities.length)
        break
      }
      await Bun.sleep(20)
    }
    requests.push(s.sandbox.stats().requests - before)
  }
} finally {
  await worker.stop()
  await s.stop()
  removeSetups()
}
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
console.log(`## agent_session: delegation -> engine started, and Linear requests per session

\`bun bench/agent-session.ts\` (${SESSIONS} sessions one after another; sandbox, relay process on SQLite and the worker loop on 127.0.0.1; console engine). Targets: p50 < 250 ms, p99 < 1 s; <= 10 Linear requests per session plus its activities.

| delegation -> engine started p50 | p99 | Linear requests per session (mean) | of which activities shown (mean) |
|---|---|---|---|
| ${pct(latencies, 50).toFixed(0)} ms | ${pct(latencies, 99).toFixed(0)} ms | ${avg(requests).toFixed(1)} | ${avg(activities).toFixed(1)} |`)
