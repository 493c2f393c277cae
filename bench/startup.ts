#!/usr/bin/env bun
/**
 * Start-up cost of the installed command (bin/rose-factory.js -> bun dist/cli.js, the bundle
 * `npm pack` ships, built first), beside bare `bun -e 0`, interleaved in one run (shared, noisy
 * machines: compare the ratios). The idle `start --once` runs against the sandbox, once with the
 * agent's token in the environment (the process wipes it from its own environ block:
 * lib/secret-channel.ts, lib/environ.ts) and once with the token handed on fd 3 as the driver hands
 * it to its children.
 * Targets: idle `start --once` median under 60 ms, `--help` under 40 ms. Prints a Markdown section.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { bundleCli } from '../lib/bundle.ts'
import { benchFactory, ROOT } from './setup.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 21)
await bundleCli(ROOT, join(ROOT, 'dist'))
const f = await benchFactory({ issues: 1 })
const bun = join(ROOT, 'node_modules/.bin/bun')
const command = join(ROOT, 'bin/rose-factory.js')
const once = ['start', '--once', '--config', f.configPath]
const { BENCH_KEY, ...withoutToken } = f.env

interface Case {
  label: string
  cmd: string
  args: string[]
  env?: NodeJS.ProcessEnv
  /** Secrets handed on fd 3 (ROSE_SECRET_FD=3), as the driver does for its children. */
  fd3?: Record<string, string>
}
const cases: Case[] = [
  { label: '`bun -e 0` (bare Bun)', cmd: bun, args: ['-e', '0'] },
  { label: '`rose-factory --version`', cmd: command, args: ['--version'] },
  { label: '`rose-factory --help`', cmd: command, args: ['--help'] },
  { label: '`rose-factory start --help`', cmd: command, args: ['start', '--help'] },
  { label: 'idle `rose-factory start --once`, token in env (wiped in place)', cmd: command, args: once, env: f.env },
  {
    label: 'idle `rose-factory start --once`, token on fd 3',
    cmd: command,
    args: once,
    env: { ...withoutToken, ROSE_SECRET_FD: '3' },
    fd3: { BENCH_KEY: BENCH_KEY! },
  },
  {
    label: 'idle `bun scripts/cli.ts start --once` (sources, not bundled), token in env',
    cmd: bun,
    args: [join(ROOT, 'scripts/cli.ts'), ...once],
    env: f.env,
  },
]

// Async spawn: the sandbox answers from this same process, so the event loop must keep running.
const time = (c: Case) =>
  new Promise<number>((resolvePromise, reject) => {
    const t = performance.now()
    const child = spawn(c.cmd, c.args, { env: c.env ?? f.env, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] })
    ;(child.stdio[3] as Writable).end(c.fd3 ? JSON.stringify(c.fd3) : '')
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    child.on('close', (code) =>
      code === 0 ? resolvePromise(performance.now() - t) : reject(new Error(`${c.label} exited ${code}: ${stderr}`)),
    )
  })

await time(cases[4]!) // the first tick runs the seeded issue; every later tick is idle
const times = cases.map(() => [] as number[])
for (let i = 0; i < RUNS; i++) for (const [j, c] of cases.entries()) times[j]!.push(await time(c))
await f.cleanup()

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
const bare = q(times[0]!, 0.5)
process.stdout.write(
  [
    '## Start-up cost of the installed command',
    '',
    `Command: \`node_modules/.bin/bun bench/startup.ts\` (${RUNS} runs of each, interleaved; wall time of the whole process, launcher included). Targets: idle \`start --once\` median under 60 ms, \`--help\` under 40 ms.`,
    '',
    '| command | median ms | p90 ms | median / bare bun |',
    '|---|---|---|---|',
    ...cases.map(
      (c, j) =>
        `| ${c.label} | ${q(times[j]!, 0.5).toFixed(1)} | ${q(times[j]!, 0.9).toFixed(1)} | ${(q(times[j]!, 0.5) / bare).toFixed(1)} |`,
    ),
    '',
  ].join('\n'),
)
