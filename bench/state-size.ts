#!/usr/bin/env bun
/**
 * state.json with 1,000 closed and 100 open issues on record, each polled with a 120 KB description
 * and 100 comments of 2 KB (what made state.json 53 MB with 40 big issues): the file's size, and an
 * idle `start --once` against it (wall time, peak RSS, bytes the tick read and wrote beyond the same
 * tick on an empty state.json, from /proc/self/io). Target: state.json and the tick's extra reads and
 * writes under 1 MB. Prints a Markdown section for BENCHMARKS.md.
 */
import { readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type RecordEvent, updateRecords, updateState, agentState } from '../lib/state.ts'
import type { TrackerIssue } from '../lib/tracker/types.ts'
import { benchFactory, ROOT } from './setup.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const CLOSED = 1000
const OPEN = 100
const f = await benchFactory({ issues: 0 })
const statePath = join(f.home, 'state.json')
const now = new Date()

function issue(i: number): TrackerIssue {
  const at = new Date(now.getTime() - (CLOSED + OPEN - i) * 60_000).toISOString()
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    identifier: `ENG-${i + 1}`,
    title: `Issue ${i + 1}: make the thing do the other thing`,
    description: 'lorem ipsum '.repeat(10_000),
    url: `https://linear.app/acme/issue/ENG-${i + 1}`,
    branchName: `agent/eng-${i + 1}-make-the-thing`,
    priority: i % 5,
    createdAt: at,
    updatedAt: at,
    state: i < CLOSED ? { id: 's-done', name: 'Done', type: 'completed' } : { id: 's-review', name: 'In Review', type: 'started' },
    team: {
      id: 'team',
      key: 'ENG',
      states: Array.from({ length: 7 }, (_, k) => ({ id: `state-${k}`, name: `State ${k}`, type: 'unstarted', position: k })),
    },
    labels: ['bug'],
    assigneeId: 'agent-user',
    delegateId: null,
    comments: Array.from({ length: 100 }, (_, k) => ({ id: `c-${i}-${k}`, body: 'x'.repeat(2_000), createdAt: at, user: { id: 'u' } })),
  }
}

// Each issue as the factory records it: polled (queued), claimed, worktree, engine finished, reported.
let polledBytes = 0
const agent = 'bench'
for (let start = 0; start < CLOSED + OPEN; start += 50) {
  const batch = Array.from({ length: Math.min(50, CLOSED + OPEN - start) }, (_, k) => issue(start + k))
  polledBytes += batch.reduce((n, x) => n + JSON.stringify(x).length, 0)
  const events = (make: (x: TrackerIssue) => RecordEvent['event']) => batch.map((x) => ({ issueId: x.id, event: make(x) }))
  updateRecords(
    statePath,
    agent,
    events((x) => ({ type: 'polled', issue: x, decision: { action: 'queue', reason: 'new', commentCount: 0 } })),
    now,
  )
  updateRecords(
    statePath,
    agent,
    events((x) => ({ type: 'claimed', issue: x, runNumber: 1, resumes: false, engine: 'console' })),
    now,
  )
  updateRecords(
    statePath,
    agent,
    events((x) => ({ type: 'worktree_ready', path: join(f.home, 'worktrees', x.identifier), branch: x.branchName })),
    now,
  )
  updateRecords(
    statePath,
    agent,
    events(() => ({
      type: 'engine_finished',
      run: { status: 'success', summary: 'Added the thing and its tests. '.repeat(10), costUsd: 0.42 },
    })),
    now,
  )
  updateRecords(
    statePath,
    agent,
    events((x) => ({
      type: 'reported',
      outcome: 'success',
      commentId: x.id,
      commit: 'a'.repeat(40),
      prUrl: `https://github.com/acme/app/pull/${x.identifier}`,
    })),
    now,
  )
  // The closed ones were closed a moment ago (within the cleanup grace: still on record) and their worktree removed.
  const closed = batch.filter((x) => x.state.type === 'completed')
  updateRecords(
    statePath,
    agent,
    closed.map((x) => ({ issueId: x.id, event: { type: 'polled', issue: x, decision: { action: 'skip', reason: 'closed' } } })),
    now,
  )
  updateRecords(
    statePath,
    agent,
    closed.map((x) => ({ issueId: x.id, event: { type: 'worktree_removed' } })),
    now,
  )
}
// The cursor is current: the poll finds nothing new, the tick is idle.
updateState(statePath, (s) => void (agentState(s, agent).cursor = new Date(Date.now() + 3_600_000).toISOString()))

const ioOut = join(f.home, 'io.txt')
const preload = join(f.home, 'io-preload.ts')
await Bun.write(
  preload,
  `import { appendFileSync, readFileSync } from 'node:fs'\nprocess.on('exit', () => appendFileSync(${JSON.stringify(ioOut)}, (readFileSync('/proc/self/io', 'utf8') + readFileSync('/proc/self/status', 'utf8')).replace(/\\n/g, ' ') + '\\n'))\n`,
)
const bun = join(ROOT, 'node_modules/.bin/bun')
async function tick(): Promise<{ ms: number; rss: number; io: number }> {
  rmSync(ioOut, { force: true })
  const t = performance.now()
  const child = Bun.spawn([bun, '--preload', preload, join(ROOT, 'scripts/start.ts'), '--once', '--config', f.configPath], {
    env: f.env,
    stdout: 'ignore',
    stderr: 'pipe',
  })
  const code = await child.exited
  const ms = performance.now() - t
  if (code !== 0) throw new Error(`start --once exited ${code}: ${await new Response(child.stderr).text()}`)
  const io = readFileSync(ioOut, 'utf8')
  const field = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(io)?.[1] ?? 0)
  return { ms, rss: field('VmHWM') * 1024, io: field('rchar') + field('wchar') }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
/** state.json's identity: an idle tick that rewrote it (rename) changes it. */
const fileId = () => {
  const st = statSync(statePath, { bigint: true, throwIfNoEntry: false })
  return st ? `${st.ino}:${st.mtimeNs}` : 'none'
}
async function ticks(): Promise<{ ms: number; rss: number; io: number; rewrites: number }> {
  await tick() // warm the file cache (and let a first tick prune)
  const out = []
  let rewrites = 0
  for (let i = 0; i < RUNS; i++) {
    const before = fileId()
    out.push(await tick())
    if (fileId() !== before) rewrites++
  }
  return { ms: median(out.map((o) => o.ms)), rss: Math.max(...out.map((o) => o.rss)), io: median(out.map((o) => o.io)), rewrites }
}
const countRecords = () => Object.keys(JSON.parse(readFileSync(statePath, 'utf8')).agents[agent].issues).length
// 1) The closed issues were closed a moment ago: all 1,100 records stay on file.
const withinGrace = await ticks()
const graceBytes = statSync(statePath).size
const graceRecords = countRecords()
// 2) The cleanup grace (60 min) has passed since they closed: the first tick forgets them.
updateState(statePath, (s) => {
  for (const r of Object.values(agentState(s, agent).issues))
    if (r.closedAt) r.closedAt = new Date(now.getTime() - 2 * 3_600_000).toISOString()
})
const pruned = await ticks()
const prunedBytes = statSync(statePath).size
const prunedRecords = countRecords()
// 3) The same tick on an empty state.json: the baseline the reads and writes are counted against.
rmSync(statePath)
rmSync(`${statePath}.bak`, { force: true })
updateState(statePath, (s) => void (agentState(s, agent).cursor = new Date(Date.now() + 3_600_000).toISOString()))
const empty = await ticks()
await f.cleanup()

const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`
process.stdout.write(
  [
    '## state.json size and an idle tick with 1,100 issues on record',
    '',
    `Command: \`node_modules/.bin/bun bench/state-size.ts\` (${CLOSED} closed and ${OPEN} open issues, each polled with a 120 KB description and 100 comments of 2 KB; ${RUNS} idle \`start --once\` runs, process start included). Target: state.json and the idle tick's reads and writes of it under 1 MB.`,
    '',
    `The issues as polled (what state.json held before it kept only a slim snapshot): ${mb(polledBytes)}.`,
    '',
    '| | records on file | state.json | idle tick median | peak RSS | bytes read + written beyond an empty state.json | idle ticks that rewrote state.json |',
    '|---|---|---|---|---|---|---|',
    `| closed within the cleanup grace | ${graceRecords} | ${mb(graceBytes)} (${Math.round(graceBytes / graceRecords)} B/record) | ${withinGrace.ms.toFixed(0)} ms | ${mb(withinGrace.rss)} | ${mb(withinGrace.io - empty.io)} | ${withinGrace.rewrites} of ${RUNS} |`,
    `| closed past the grace (pruned by the first tick) | ${prunedRecords} | ${mb(prunedBytes)} | ${pruned.ms.toFixed(0)} ms | ${mb(pruned.rss)} | ${mb(pruned.io - empty.io)} | ${pruned.rewrites} of ${RUNS} |`,
    `| empty state.json (baseline) | 0 | | ${empty.ms.toFixed(0)} ms | ${mb(empty.rss)} | | ${empty.rewrites} of ${RUNS} |`,
    '',
  ].join('\n'),
)
