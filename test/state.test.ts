import { afterAll, describe, expect, test } from 'bun:test'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { commentId, escalationComment, failureComment, summaryComment } from '../lib/comments.ts'
import { transition } from '../lib/phases.ts'
import { lastCommentsUpTo } from '../lib/prompt.ts'
import { statusRows } from '../lib/status.ts'
import { planClaim } from '../lib/steps/claim.ts'
import { isClosed } from '../lib/workflow.ts'
import { dueForPrune } from '../lib/reconcile.ts'
import {
  agentState,
  type FactoryState,
  type IssueRecord,
  pruneRecords,
  readState,
  type RecordEvent,
  slimSnapshot,
  updateRecords,
  updateState,
} from '../lib/state.ts'
import type { TrackerIssue } from '../lib/tracker/types.ts'
import { ROOT, tempDir, failure } from './helpers.ts'

const dir = tempDir('rose-state-')
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
/** A fresh state.json path in its own directory. */
function statePath(): string {
  const d = join(dir, `s${++n}`)
  mkdirSync(d)
  return join(d, 'state.json')
}

const SNAPSHOT = { id: 'i1', identifier: 'ENG-1', title: 'Add a health check' }

function addIssue(s: FactoryState, agent: string, id: string) {
  agentState(s, agent).issues[id] = {
    id,
    identifier: 'ENG-1',
    title: 'Add a health check',
    phase: 'queued',
    snapshot: SNAPSHOT as never,
    runs: [{ n: 1, startedAt: '2025-01-01T00:00:00.000Z', status: 'success', summary: 'done', costUsd: 0.12 }],
    attempts: 1,
    recoveries: 0,
    updatedAt: '2025-01-01T00:00:00.000Z',
  }
}

describe('readState', () => {
  test('a missing file is an empty state', () => {
    expect(readState(join(dir, 'nowhere', 'state.json'))).toEqual({ version: 1, agents: {} })
  })

  test('bad JSON is state_corrupt naming the file and pointing at its .bak', () => {
    for (const body of ['{"version": 1, "agents": {', '', 'not json at all']) {
      const path = statePath()
      writeFileSync(path, body)
      const err = failure(() => readState(path))
      expect(err.code).toBe('state_corrupt')
      expect(err.message).toContain(path)
      expect(err.message).toContain('not valid JSON')
      expect(err.fix).toContain(`${path}.bak`)
      expect(err.exitCode).toBe(1)
    }
  })

  test('valid JSON of the wrong shape is state_corrupt naming the file and the bad key', () => {
    const cases: [unknown, string][] = [
      [{ version: 2, agents: {} }, 'version'],
      [null, '(top)'],
      [[], '(top)'],
      [{ version: 1, agents: { tester: { issues: { i1: { id: 'i1', phase: 'sideways' } } } } }, 'agents.tester.issues.i1'],
      [{ version: 1, agents: { tester: { cursor: 42 } } }, 'agents.tester.cursor'],
    ]
    for (const [body, where] of cases) {
      const path = statePath()
      writeFileSync(path, JSON.stringify(body))
      const err = failure(() => readState(path))
      expect(err.code).toBe('state_corrupt')
      expect(err.message).toContain(path)
      expect(err.message, JSON.stringify(body)).toContain(where)
      expect(err.fix).toContain('.bak')
    }
  })
})

describe('updateState', () => {
  test('what an update writes is what the next read returns', () => {
    const path = statePath()
    const out = updateState(path, (s) => {
      agentState(s, 'tester').cursor = '2025-01-02T03:04:05.000Z'
      addIssue(s, 'tester', 'i1')
      return 'returned'
    })
    expect(out).toBe('returned')
    const s = readState(path)
    expect(s.agents.tester!.cursor).toBe('2025-01-02T03:04:05.000Z')
    expect(s.agents.tester!.issues.i1!.runs[0]).toEqual({
      n: 1,
      startedAt: '2025-01-01T00:00:00.000Z',
      status: 'success',
      summary: 'done',
      costUsd: 0.12,
    })
    expect(s.agents.tester!.issues.i1!.snapshot).toEqual(SNAPSHOT as never)
    updateState(path, (d) => {
      d.agents.tester!.issues.i1!.phase = 'done'
    })
    expect(readState(path).agents.tester!.issues.i1!.phase).toBe('done')
    expect(readState(path).agents.tester!.cursor).toBe('2025-01-02T03:04:05.000Z')
  })

  test('leaves no temp or lock files behind', () => {
    const path = statePath()
    updateState(path, (s) => void agentState(s, 'a'))
    updateState(path, (s) => void agentState(s, 'b'))
    expect(readdirSync(join(path, '..')).sort()).toEqual(['state.json', 'state.json.bak'])
  })

  test('keeps the previous good copy as state.json.bak', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'first'))
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'second'))
    expect(readState(path).agents.tester!.cursor).toBe('second')
    expect(readState(`${path}.bak`).agents.tester!.cursor).toBe('first')
  })

  test('a corrupt file is reported, not reset, and neither it nor the .bak is touched', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'good'))
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'better'))
    writeFileSync(path, '{"version": 1, "agents": {"tester": {"cur')
    const bak = readFileSync(`${path}.bak`, 'utf8')
    let called = false
    const err = failure(() =>
      updateState(path, () => {
        called = true
      }),
    )
    expect(err.code).toBe('state_corrupt')
    expect(called).toBe(false)
    expect(readFileSync(path, 'utf8')).toBe('{"version": 1, "agents": {"tester": {"cur')
    expect(readFileSync(`${path}.bak`, 'utf8')).toBe(bak)
    expect(readState(`${path}.bak`).agents.tester!.cursor).toBe('good')
  })

  test('an update that throws writes nothing and frees the lock for the next one', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'kept'))
    expect(() =>
      updateState(path, (s) => {
        agentState(s, 'tester').cursor = 'lost'
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(readState(path).agents.tester!.cursor).toBe('kept')
    const t0 = Date.now()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'next'))
    expect(Date.now() - t0).toBeLessThan(1_000)
    expect(existsSync(`${path}.lock`)).toBe(false)
  })
})

/** Spawn `bun -e code` and resolve with its exit code and stderr. */
function bunEval(code: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', code, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    c.stderr!.on('data', (d) => (stderr += d))
    c.on('close', (code) => resolve({ code, stderr }))
  })
}

const INCREMENT = `
const { updateState, agentState } = await import(${JSON.stringify(join(ROOT, 'lib', 'state.ts'))})
const path = process.argv.at(-2), times = Number(process.argv.at(-1))
for (let i = 0; i < times; i++) {
  updateState(path, (s) => {
    const a = agentState(s, 'counter')
    a.cursor = String(Number(a.cursor ?? '0') + 1)
  })
}
`

describe('concurrent updates', () => {
  test('several processes incrementing a counter lose no increment', async () => {
    const path = statePath()
    const PROCS = 6
    const TIMES = 20
    const results = await Promise.all(Array.from({ length: PROCS }, () => bunEval(INCREMENT, [path, String(TIMES)])))
    for (const r of results) expect(r.code, r.stderr).toBe(0)
    expect(readState(path).agents.counter!.cursor).toBe(String(PROCS * TIMES))
  }, 20_000)

  test('a reader never finds state.json missing or empty while another process rewrites it', async () => {
    const path = statePath()
    const TIMES = 80
    updateState(path, (s) => void (agentState(s, 'counter').cursor = '0'))
    const writer = bunEval(INCREMENT, [path, String(TIMES)])
    let reads = 0
    const glitches = new Map<string, number>()
    const deadline = Date.now() + 8_000
    for (;;) {
      let cursor: string | null | undefined
      try {
        cursor = readState(path).agents.counter?.cursor
      } catch (err) {
        const what = `threw ${(err as Error).message.slice(0, 60)}`
        glitches.set(what, (glitches.get(what) ?? 0) + 1)
        continue
      }
      reads++
      if (cursor === undefined) glitches.set('missing, read as empty', (glitches.get('missing, read as empty') ?? 0) + 1)
      if (cursor === String(TIMES) || Date.now() > deadline) break
    }
    const w = await writer
    expect(w.code, w.stderr).toBe(0)
    expect(reads).toBeGreaterThan(TIMES)
    expect(Object.fromEntries(glitches)).toEqual({})
  }, 20_000)
})

/**
 * A tmpfs of `size` mounted on a fresh directory (the tests run as root in CI), or why it cannot be.
 * The caller unmounts it with `umount`.
 */
function tinyDisk(size: string): { dir: string; umount: () => void } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root: cannot mount a tmpfs' }
  const mnt = tempDir('rose-tinydisk-')
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' })
  if (r.status !== 0) return { skip: `mount -t tmpfs not allowed here: ${(r.stderr || r.error?.message || '').trim()}` }
  return { dir: mnt, umount: () => void spawnSync('umount', ['-l', mnt]) }
}

/** Fill the disk at `dir`, then free `freeBytes` of it again. */
function fillDisk(dir: string, freeBytes: number): string {
  const filler = join(dir, 'filler')
  try {
    writeFileSync(filler, Buffer.alloc(64 * 1024 * 1024, 1))
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC')
  }
  truncateSync(filler, Math.max(0, statSync(filler).size - freeBytes))
  return filler
}

const disk = tinyDisk('1m')
afterAll(() => 'umount' in disk && disk.umount())
const diskSkip = 'skip' in disk ? ` (skipped: ${disk.skip})` : ''

describe('a full disk', () => {
  test.skipIf(!!diskSkip)(
    `a write that does not fit fails naming state.json and the fix, and keeps state.json and its .bak${diskSkip}`,
    () => {
      const mnt = (disk as { dir: string }).dir
      const path = join(mnt, 'state.json')
      updateState(path, (s) => void (agentState(s, 'tester').cursor = 'good'))
      updateState(path, (s) => void (agentState(s, 'tester').cursor = 'better'))
      const before = readFileSync(path, 'utf8')
      const bak = readFileSync(`${path}.bak`, 'utf8')
      // 16 KB free, a 200 KB state: the kernel writes what fits (a short write), then ENOSPC.
      const filler = fillDisk(mnt, 16 * 1024)
      const err = failure(() => updateState(path, (s) => void (agentState(s, 'tester').cursor = 'x'.repeat(200_000))))
      expect(err.code).toBe('state_write_failed')
      expect(err.message).toContain(path)
      expect(err.fix).toBe(`free disk space in ${mnt}`)
      expect(err.exitCode).toBe(1)
      expect(readFileSync(path, 'utf8')).toBe(before)
      expect(readFileSync(`${path}.bak`, 'utf8')).toBe(bak)
      expect(readState(path).agents.tester!.cursor).toBe('better')
      // No torn temp file and no lock left to fill the disk further or block the next writer.
      expect(readdirSync(mnt).sort()).toEqual(['filler', 'state.json', 'state.json.bak'])
      rmSync(filler)
      updateState(path, (s) => void (agentState(s, 'tester').cursor = 'x'.repeat(200_000)))
      expect(readState(path).agents.tester!.cursor).toHaveLength(200_000)
    },
  )
})

/** A polled issue as Linear returns it: a big description and many long comments. */
function bigIssue(i: number, stateType: 'completed' | 'started'): TrackerIssue {
  const at = new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString()
  return {
    id: `issue-${i}`,
    identifier: `ENG-${i}`,
    title: `Issue ${i}`,
    description: `DESCRIPTION-${i} ${'lorem ipsum '.repeat(10_000)}`,
    url: `https://linear.app/acme/issue/ENG-${i}`,
    branchName: `agent/eng-${i}`,
    priority: i % 5,
    createdAt: at,
    updatedAt: at,
    state:
      stateType === 'completed'
        ? { id: 's-done', name: 'Done', type: 'completed' }
        : { id: 's-review', name: 'In Review', type: 'started' },
    team: {
      id: 't',
      key: 'ENG',
      states: Array.from({ length: 8 }, (_, k) => ({ id: `s-${k}`, name: `State ${k}`, type: 'unstarted', position: k })),
    },
    labels: ['bug'],
    assigneeId: 'agent-user',
    delegateId: null,
    comments: Array.from({ length: 100 }, (_, k) => ({
      id: `c-${i}-${k}`,
      body: `COMMENT-BODY ${'x'.repeat(2_000)}`,
      createdAt: at,
      user: { id: 'u' },
    })),
  }
}

describe('state.json stays small', () => {
  test('records keep no issue description or comment body: 1,100 big issues (330 MB as polled) fit in under 1 MB', () => {
    const path = statePath()
    const now = new Date('2026-06-01T00:00:00.000Z')
    let polledBytes = 0
    for (let batch = 0; batch < 11; batch++) {
      const events: RecordEvent[] = Array.from({ length: 100 }, (_, k) => {
        const i = batch * 100 + k
        const issue = bigIssue(i, i < 1000 ? 'completed' : 'started')
        polledBytes += JSON.stringify(issue).length
        return { issueId: issue.id, event: { type: 'polled', issue, decision: { action: 'queue', reason: 'new', commentCount: 0 } } }
      })
      updateRecords(path, 'tester', events, now)
    }
    const text = readFileSync(path, 'utf8')
    expect(polledBytes).toBeGreaterThan(300_000_000)
    expect(Object.keys(readState(path).agents.tester!.issues)).toHaveLength(1100)
    expect(text.length).toBeLessThan(1_000_000)
    expect(text).not.toContain('DESCRIPTION-')
    expect(text).not.toContain('COMMENT-BODY')
    // What dispatch and status need is kept.
    expect(readState(path).agents.tester!.issues['issue-7']!.snapshot).toMatchObject({
      identifier: 'ENG-7',
      priority: 2,
      state: { name: 'Done' },
      team: { key: 'ENG' },
      branchName: 'agent/eng-7',
    })
  })

  test('an older state.json holding whole issues is read slim and written slim', () => {
    const path = statePath()
    const issue = bigIssue(1, 'started')
    writeFileSync(
      path,
      JSON.stringify({ version: 1, agents: { tester: { cursor: null, issues: { [issue.id]: { ...recordOf(issue), snapshot: issue } } } } }),
    )
    expect(readState(path).agents.tester!.issues[issue.id]!.snapshot).not.toHaveProperty('description')
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'moved'))
    expect(readFileSync(path, 'utf8')).not.toContain('DESCRIPTION-')
  })

  test('an idle update (no event applied) does not rewrite state.json', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'c'))
    const before = statSync(path).mtimeMs
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    const out = updateRecords(path, 'tester', () => [], new Date())
    expect(out).toEqual([])
    expect(statSync(path).mtimeMs).toBe(before)
  })
})

describe('an idle tick with 1,000 closed and 100 open issues on record', () => {
  const now = new Date('2026-06-01T00:00:00.000Z')
  /** The issues as the factory records a whole life of each: polled, claimed, worktree, engine, report; the closed ones closed. */
  function lived(path: string): { issues: TrackerIssue[]; memory: FactoryState } {
    const all: TrackerIssue[] = []
    // The same events applied in memory only (nothing slimmed): what the records would be if state.json kept everything.
    const memory: FactoryState = { version: 1, agents: { tester: { cursor: null, issues: {} } } }
    const mem = memory.agents.tester!.issues
    for (let start = 0; start < 1100; start += 100) {
      const batch = Array.from({ length: 100 }, (_, k) => {
        const i = start + k
        return {
          ...bigIssue(i, i < 1000 ? 'completed' : 'started'),
          id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          title: `Issue ${i}: make the thing do the other thing`,
        }
      })
      all.push(...batch)
      const apply = (make: (x: TrackerIssue) => RecordEvent['event'], xs = batch) => {
        const events = xs.map((x) => ({ issueId: x.id, event: make(x) }))
        for (const e of events) {
          const t = transition(mem[e.issueId], e.event, now)
          if (t.ok) mem[e.issueId] = t.record
        }
        expect(updateRecords(path, 'tester', events, now).filter((x) => x.refused)).toEqual([])
      }
      apply((x) => ({ type: 'polled', issue: x, decision: { action: 'queue', reason: 'new', commentCount: 0 } }))
      apply((x) => ({ type: 'claimed', issue: x, runNumber: 1, resumes: false, engine: 'codex' }))
      apply((x) => ({ type: 'worktree_ready', path: `/home/factory/.rose/worktrees/tester/${x.identifier}`, branch: x.branchName! }))
      apply((x) => ({
        type: 'engine_finished',
        sessionId: `thread-${x.identifier}`,
        threadUsage: true,
        run: {
          status: 'success',
          summary: `Added the thing for ${x.identifier} and its tests.\n${'More detail. '.repeat(20)}`,
          costUsd: 0.42,
          usage: { inputTokens: 12_345, outputTokens: 678 },
          commentsUpTo: '2026-05-30T10:00:00.000Z',
          logPath: `/home/factory/.rose/logs/tester/${x.identifier}/run-1.log`,
        },
      }))
      apply((x) => ({
        type: 'reported',
        outcome: 'success',
        commentId: `${x.id}-c`,
        commit: 'a'.repeat(40),
        prUrl: `https://github.com/acme/app/pull/${start + 1}`,
      }))
      const closed = batch.filter((x) => x.state.type === 'completed')
      apply((x) => ({ type: 'polled', issue: x, decision: { action: 'skip', reason: 'closed' } }), closed)
      apply(() => ({ type: 'worktree_removed' }), closed)
    }
    return { issues: all, memory }
  }

  test('reads under 1 MB of state.json and writes none of it', () => {
    const path = statePath()
    lived(path)
    const size = statSync(path).size
    console.log(`state.json with 1,000 closed and 100 open issues after a whole run each: ${size} B (${Math.round(size / 1100)} B/record)`)
    expect(size).toBeLessThan(1_000_000)
    const before = statSync(path, { bigint: true })
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    // The poll's write on an idle tick: no issue came back, the cursor and viewer stay (steps/poll.ts).
    updateRecords(path, 'tester', [], now, () => false)
    const after = statSync(path, { bigint: true })
    expect([after.ino, after.mtimeNs, after.size]).toEqual([before.ino, before.mtimeNs, before.size])
  }, 60_000)

  test('a settled record still has what status, a rerun after a comment and a reopened issue need', () => {
    const path = statePath()
    const { issues, memory: inMemory } = lived(path)
    const home = join(dirname(path), 'home')
    const parsedFresh = JSON.parse(JSON.stringify(readState(path))) as FactoryState
    expect(statusRows(parsedFresh, home, { includeDone: true })).toEqual(statusRows(inMemory, home, { includeDone: true }))
    for (const id of [issues[3]!.id, issues[1050]!.id]) {
      const a = parsedFresh.agents.tester!.issues[id]!
      const b = inMemory.agents.tester!.issues[id]!
      expect([a.identifier, a.title, a.phase, a.sessionId, a.prUrl, a.closedAt, a.worktree]).toEqual([
        b.identifier,
        b.title,
        b.phase,
        b.sessionId,
        b.prUrl,
        b.closedAt,
        b.worktree,
      ])
      // The next run: its number, comment ids (n@startedAt), comments since, Codex thread total, resumable.
      expect(lastCommentsUpTo(a)).toBe(lastCommentsUpTo(b))
      expect(planClaim(issues[3]!, a).runNumber).toBe(2)
      expect(a.runs.map((r) => [r.n, r.startedAt, r.reportedAt, r.usageThreadTotal])).toEqual(
        b.runs.map((r) => [r.n, r.startedAt, r.reportedAt, r.usageThreadTotal]),
      )
      expect(a.snapshot).toMatchObject({ id: b.id, identifier: b.identifier, title: b.title, state: b.snapshot.state })
      expect(isClosed(a.snapshot)).toBe(isClosed(b.snapshot))
    }
    // An open issue in review keeps its whole last summary (the next prompt quotes it) and what dispatch orders by.
    const open = parsedFresh.agents.tester!.issues[issues[1050]!.id]!
    expect(open.runs[0]!.summary).toBe(inMemory.agents.tester!.issues[issues[1050]!.id]!.runs[0]!.summary)
    expect(open.snapshot).toMatchObject({
      priority: issues[1050]!.priority,
      createdAt: issues[1050]!.createdAt,
      branchName: issues[1050]!.branchName,
    })
  }, 60_000)
})

function recordOf(issue: TrackerIssue) {
  return {
    id: issue.id,
    identifier: issue.identifier,
    title: issue.title,
    phase: 'done',
    runs: [],
    attempts: 0,
    updatedAt: issue.updatedAt,
  }
}

describe('closed issues are forgotten after the grace period', () => {
  const GRACE = 60 * 60_000
  const now = new Date('2026-06-01T12:00:00.000Z')
  const ago = (ms: number) => new Date(now.getTime() - ms).toISOString()
  const closed = { id: 's-done', name: 'Done', type: 'completed' }

  test('only settled records closed longer than the grace, with no worktree left, are due', () => {
    const base = { ...recordOf(bigIssue(1, 'completed')), snapshot: slimSnapshot(bigIssue(1, 'completed')) } as IssueRecord
    const cases: [string, Partial<IssueRecord>, boolean][] = [
      ['closed 2 h ago, done, worktree removed', { closedAt: ago(2 * GRACE), worktree: '/w', worktreeRemovedAt: ago(GRACE) }, true],
      ['closed 2 h ago, never had a worktree', { closedAt: ago(2 * GRACE) }, true],
      ['closed 10 min ago', { closedAt: ago(GRACE / 6) }, false],
      ['closed 2 h ago, worktree still there', { closedAt: ago(2 * GRACE), worktree: '/w' }, false],
      ['closed 2 h ago but queued again', { closedAt: ago(2 * GRACE), phase: 'queued' }, false],
      ['never closed', {}, false],
      [
        'closed once, now reopened (polled open)',
        { closedAt: ago(2 * GRACE), snapshot: { ...base.snapshot, state: { id: 's', name: 'Backlog', type: 'backlog' } } },
        false,
      ],
    ]
    for (const [what, over, due] of cases) expect(dueForPrune([{ ...base, ...over }], GRACE, now).length === 1, what).toBe(due)
    expect(base.snapshot.state).toEqual(closed)
  })

  test('pruneRecords deletes exactly the records it is given, under the lock, and writes only when it removed one', () => {
    const path = statePath()
    updateRecords(
      path,
      'tester',
      [1, 2, 3].map((i) => ({
        issueId: `issue-${i}`,
        event: { type: 'polled', issue: bigIssue(i, 'started'), decision: { action: 'queue', reason: 'new', commentCount: 0 } },
      })),
      now,
    )
    const removed = pruneRecords(path, 'tester', (a) => Object.keys(a.issues).filter((id) => id !== 'issue-2'))
    expect(removed.map((r) => r.identifier).sort()).toEqual(['ENG-1', 'ENG-3'])
    expect(Object.keys(readState(path).agents.tester!.issues)).toEqual(['issue-2'])
    const before = statSync(path).mtimeMs
    expect(pruneRecords(path, 'tester', () => ['issue-9'])).toEqual([])
    expect(statSync(path).mtimeMs).toBe(before)
  })

  test('a record created again after a prune does not reuse the first record’s comment ids', () => {
    const first = { n: 1, startedAt: '2026-01-01T10:00:00.000Z' }
    const again = { n: 1, startedAt: '2026-05-01T10:00:00.000Z' }
    for (const kind of ['summary', 'failure', 'escalation'] as const)
      expect(commentId('tester', 'issue-1', again, kind)).not.toBe(commentId('tester', 'issue-1', first, kind))
    // The same run always gets the same id (a retried post cannot duplicate its comment).
    expect(commentId('tester', 'issue-1', { ...first }, 'summary')).toBe(commentId('tester', 'issue-1', first, 'summary'))
    const run = { ...again, status: 'success' as const, summary: 'ok' }
    const input = { agent: 'tester', engine: 'console', issueId: 'issue-1', outcome: 'success' as const, branch: 'b', commitsAhead: 0 }
    expect(summaryComment({ ...input, run }).id).not.toBe(summaryComment({ ...input, run: { ...run, ...first } }).id)
    expect(failureComment('tester', 'issue-1', run, { code: 'x', message: 'm' }).id).toBe(commentId('tester', 'issue-1', again, 'failure'))
    expect(escalationComment({ agent: 'tester', issueId: 'issue-1', runs: [run], reason: 'r' }).id).toBe(
      commentId('tester', 'issue-1', again, 'escalation'),
    )
  })
})
