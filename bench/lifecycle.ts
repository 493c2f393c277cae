#!/usr/bin/env bun
/**
 * 50 issues through the loop with the console engine at concurrency 8: total time, the driver's
 * CPU time and peak RSS (from /proc, the driver process only; runs are children), Linear requests
 * per issue run, and the in-process overhead of an idle tick (poll + reconcile + dispatch) with
 * the 50 issues on record. Targets: driver RSS under 100 MB, tick overhead under 50 ms.
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../lib/config.ts'
import { createDriver } from '../lib/start.ts'
import { benchFactory, ROOT } from './setup.ts'

const N = Number(process.env.BENCH_ISSUES ?? 50)
const f = await benchFactory({ issues: N, factory: 'poll_interval_seconds: 1\nmax_concurrency: 8\n', agent: '    concurrency: 8\n' })
const { sandbox, configPath, env, inReview } = f

const t0 = performance.now()
const driver = spawn(join(ROOT, 'node_modules/.bin/bun'), [join(ROOT, 'scripts/start.ts'), '--config', configPath], {
  env,
  stdio: ['ignore', 'ignore', 'inherit'],
})
const exited = new Promise<void>((r) => driver.on('close', () => r()))
let peakKb = 0
let cpuTicks = 0
const clk = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
const sample = () => {
  try {
    const status = readFileSync(`/proc/${driver.pid}/status`, 'utf8')
    peakKb = Math.max(peakKb, Number(status.match(/VmHWM:\s+(\d+)/)?.[1] ?? 0))
    const stat = readFileSync(`/proc/${driver.pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    cpuTicks = Number(f[11]) + Number(f[12])
  } catch {}
}
while (inReview() < N && performance.now() - t0 < 300_000) {
  sample()
  await new Promise((r) => setTimeout(r, 100))
}
const total = performance.now() - t0
sample()
driver.kill('SIGINT')
await exited
const requests = sandbox.stats().requests

// In-process idle tick overhead with the N issues on record.
const { config, path } = loadConfig(configPath, env)
const d = createDriver({ config, configPath: path, agents: config.agents, dryRun: false, env })
await d.tick()
const ticks: number[] = []
for (let i = 0; i < 20; i++) {
  const t = performance.now()
  await d.tick()
  ticks.push(performance.now() - t)
}
ticks.sort((a, b) => a - b)
await f.cleanup()

const done = inReview()
process.stdout.write(
  [
    `## ${N} issues, console engine, concurrency 8`,
    '',
    'Command: `node_modules/.bin/bun bench/lifecycle.ts` (the loop with `poll_interval_seconds: 1`; driver measured from /proc; each run is its own child process). Targets: driver RSS under 100 MB, tick overhead under 50 ms.',
    '',
    '| measure | value |',
    '|---|---|',
    `| issues In Review | ${done} / ${N} |`,
    `| total wall time | ${(total / 1000).toFixed(1)} s (${(total / N).toFixed(0)} ms per issue) |`,
    `| driver CPU time | ${((cpuTicks / clk) * 1000).toFixed(0)} ms (${(((cpuTicks / clk) * 1000) / total).toFixed(3)} of one core) |`,
    `| driver peak RSS (VmHWM) | ${(peakKb / 1024).toFixed(1)} MB |`,
    `| Linear requests | ${requests} (${(requests / N).toFixed(2)} per issue run, polls included) |`,
    `| idle tick overhead, in process (median / p90 of 20) | ${ticks[10]!.toFixed(1)} ms / ${ticks[18]!.toFixed(1)} ms |`,
    '',
  ].join('\n'),
)
