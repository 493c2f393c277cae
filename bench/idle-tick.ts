#!/usr/bin/env bun
/**
 * Wall time of an idle `start --once` against the sandbox, process start included, under Bun and
 * under Node+tsx, interleaved in one run (the machines are shared and noisy: compare the ratio).
 * Target: Bun median under 150 ms. Prints a Markdown section for BENCHMARKS.md.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { benchFactory, ROOT } from './setup.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 15)
const f = await benchFactory({ issues: 1 })
const { sandbox, configPath: config, env } = f
const bun = join(ROOT, 'node_modules/.bin/bun')
const tsx = join(ROOT, 'node_modules/.bin/tsx')
const script = join(ROOT, 'scripts/start.ts')
// Async spawn: the sandbox answers from this same process, so the event loop must keep running.
const once = (cmd: string) =>
  new Promise<number>((resolvePromise, reject) => {
    const t = performance.now()
    const child = spawn(cmd, [script, '--once', '--config', config], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) =>
      code === 0 ? resolvePromise(performance.now() - t) : reject(new Error(`${cmd} exited ${code}: ${stderr}`)),
    )
  })
await once(bun) // the first tick runs the seeded issue; every later tick is idle
await once(tsx)
const times: Record<string, number[]> = { bun: [], tsx: [] }
sandbox.resetStats()
for (let i = 0; i < RUNS; i++) {
  times.bun!.push(await once(bun))
  times.tsx!.push(await once(tsx))
}
const requests = sandbox.stats().requests
await f.cleanup()

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const mb = median(times.bun!)
const mt = median(times.tsx!)
process.stdout.write(
  [
    '## Idle `start --once` wall time',
    '',
    `Command: \`node_modules/.bin/bun bench/idle-tick.ts\` (${RUNS} runs each, interleaved; process start included). Target: Bun median under 150 ms.`,
    '',
    '| runtime | median ms | min ms | max ms |',
    '|---|---|---|---|',
    `| bun | ${mb.toFixed(0)} | ${Math.min(...times.bun!).toFixed(0)} | ${Math.max(...times.bun!).toFixed(0)} |`,
    `| node + tsx | ${mt.toFixed(0)} | ${Math.min(...times.tsx!).toFixed(0)} | ${Math.max(...times.tsx!).toFixed(0)} |`,
    '',
    `tsx / bun median ratio: ${(mt / mb).toFixed(2)}. Linear requests over the ${RUNS * 2} idle ticks: ${requests} (${(requests / (RUNS * 2)).toFixed(2)} per tick).`,
    '',
  ].join('\n'),
)
