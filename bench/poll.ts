#!/usr/bin/env bun
/**
 * Linear requests per idle tick with 1, 50 and 250 assigned issues (target: 1 each), and the
 * complexity of that request, against the sandbox (which estimates complexity like Linear).
 * Prints a Markdown section for BENCHMARKS.md.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSandbox } from '../lib/sandbox/server.ts'
import { createLinearTracker } from '../lib/tracker/linear.ts'
import { newestTimestamp } from '../lib/steps/poll.ts'

const sizes = [1, 50, 250]
const rows: string[] = []
for (const n of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'rose-bench-'))
  const sandbox = await startSandbox({
    port: 0,
    dataPath: join(dir, 'data.json'),
    seed: {
      teams: [{ key: 'ENG', name: 'Eng' }],
      users: [
        { name: 'Agent', email: 'a@b.test', apiKey: 'bench-key-000001' },
        { name: 'Human', email: 'h@b.test', apiKey: 'bench-key-000002' },
      ],
      issues: Array.from({ length: n }, (_, i) => ({
        team: 'ENG',
        title: `Issue ${i + 1}`,
        assignee: 'a@b.test',
        priority: i % 5,
        labels: ['x'],
        comments: [{ user: 'h@b.test', body: `comment ${i}` }],
      })),
    },
  })
  const tracker = createLinearTracker({ apiKey: 'bench-key-000001', apiUrl: sandbox.url })
  // First sync (no cursor) pages through everything; then the idle tick is what the loop pays forever.
  const cold = await tracker.poll(null)
  const coldComplexity = sandbox.stats().complexity.max
  sandbox.resetStats()
  const cursor = newestTimestamp(cold.issues, null)
  const ticks = 20
  let requests = 0
  for (let i = 0; i < ticks; i++) requests += (await tracker.poll(cursor)).requests
  const s = sandbox.stats()
  rows.push(
    `| ${n} | ${cold.requests} | ${cold.issues.length} | ${(requests / ticks).toFixed(2)} | ${s.requests / ticks} | ${s.complexity.last} | ${coldComplexity} |`,
  )
  await sandbox.stop()
  rmSync(dir, { recursive: true, force: true })
}

process.stdout.write(
  [
    '## Linear requests per idle tick',
    '',
    'Command: `node_modules/.bin/bun bench/poll.ts` (sandbox on 127.0.0.1; 20 idle ticks per size). Target: 1 request per idle tick.',
    '',
    '| assigned issues | first sync requests | issues synced | requests per idle tick (client) | requests per idle tick (sandbox count) | idle request complexity | full-page complexity |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    "Complexity is the sandbox estimate with Linear's formula (objects 1, scalars 0.1, connections x `first`); Linear's cap is 10,000 per query.",
    '',
  ].join('\n'),
)
