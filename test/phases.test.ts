/**
 * The ticket state machine in-process: every phase x every event against a table written out by
 * hand (the table IS the specification; a change to the machine must change it here), then the
 * details a phase alone does not show (runs opened, closed or resumed, budgets reset).
 */
import { describe, expect, test } from 'bun:test'
import { inPhase, IN_FLIGHT, isActive, PHASES, type Phase, type PhaseEvent, transition } from '../lib/phases.ts'
import type { IssueRecord, RunRecord } from '../lib/state.ts'
import type { TrackerIssue } from '../lib/tracker/types.ts'

const NOW = new Date('2026-12-01T12:00:00.000Z')
const ISSUE = {
  id: 'i1',
  identifier: 'ENG-1',
  title: 'Add a health check',
  updatedAt: '2026-12-01T11:00:00.000Z',
  comments: [],
  state: { id: 's-todo', name: 'Todo', type: 'unstarted' },
  team: { states: [] },
} as unknown as TrackerIssue

function run(n: number, over: Partial<RunRecord> = {}): RunRecord {
  return { n, startedAt: '2026-12-01T11:00:00.000Z', status: 'running', ...over }
}

/** A record in `phase` with run #1 as a record in that phase has it (reported once settled). */
function rec(phase: Phase, over: Partial<IssueRecord> = {}): IssueRecord {
  const settled = !IN_FLIGHT.includes(phase)
  const status = phase === 'reporting' || settled ? 'success' : 'running'
  const runs = phase === 'seen' ? [] : [run(1, { status, ...(settled ? { reportedAt: '2026-12-01T11:30:00.000Z' } : {}) })]
  return {
    id: 'i1',
    identifier: 'ENG-1',
    title: 't',
    phase,
    snapshot: ISSUE,
    runs,
    attempts: 0,
    updatedAt: '2026-12-01T11:00:00.000Z',
    ...over,
  }
}

const git = { code: 'git_failed', message: 'push rejected' }
const EVENTS: Record<string, PhaseEvent> = {
  'polled:queue': { type: 'polled', issue: ISSUE, decision: { action: 'queue', reason: 'comment', commentCount: 1 } },
  'polled:skip': { type: 'polled', issue: ISSUE, decision: { action: 'skip', reason: 'no_new_comments' } },
  'polled:inactive': { type: 'polled', issue: ISSUE, decision: { action: 'skip', reason: 'inactive_state' } },
  session_created: { type: 'session_created', issue: ISSUE, sessionId: 'session-1' },
  prompted: { type: 'prompted', at: NOW.toISOString() },
  stop_requested: { type: 'stop_requested', reason: 'stopped by Riley' },
  claimed: { type: 'claimed', issue: ISSUE, runNumber: 2, resumes: false, engine: 'console' },
  worktree_ready: { type: 'worktree_ready', path: '/w/ENG-1', branch: 'eng-1' },
  engine_finished: { type: 'engine_finished', run: { status: 'success', summary: 'done' } },
  'reported:ok': { type: 'reported', outcome: 'success', commentId: 'c1' },
  'reported:failed': { type: 'reported', outcome: 'failed', commentId: 'c1' },
  'failed:retry': { type: 'failed', error: git, maxAttempts: 3 },
  'failed:last': { type: 'failed', error: git, maxAttempts: 1 },
  'failed:final': { type: 'failed', error: { code: 'engine_missing', message: 'no claude' }, maxAttempts: 3 },
  blocked: { type: 'blocked', error: git },
  released: { type: 'released', reason: 'moved to Done', closed: true },
  escalated: { type: 'escalated', reason: 'run died twice' },
  recovered: { type: 'recovered' },
  stopped: { type: 'stopped' },
  worktree_removed: { type: 'worktree_removed' },
}

// The resulting phase of each event (rows) from each phase (columns); "-" = refused, record unchanged.
const TABLE = `
event            (none)    seen      queued    claimed   running   reporting done      failed    escalated released
polled:queue     queued    queued    queued    claimed   running   reporting queued    queued    queued    queued
polled:skip      -         seen      queued    claimed   running   reporting done      failed    escalated released
polled:inactive  seen      seen      queued    claimed   running   reporting done      failed    escalated seen
session_created  queued    queued    -         -         -         -         queued    queued    queued    queued
prompted         -         queued    -         -         -         -         queued    queued    queued    queued
stop_requested   -         -         released  released  released  released  -         -         -         -
claimed          claimed   claimed   claimed   claimed   claimed   claimed   claimed   claimed   claimed   -
worktree_ready   -         -         -         running   running   reporting -         -         -         -
engine_finished  -         -         -         -         reporting -         -         -         -         released
reported:ok      -         -         -         done      done      done      -         -         -         -
reported:failed  -         -         -         failed    failed    failed    -         -         -         -
failed:retry     -         -         queued    queued    queued    queued    -         -         -         -
failed:last      -         -         escalated escalated escalated escalated -         -         -         -
failed:final     -         -         failed    failed    failed    failed    -         -         -         -
blocked          -         -         queued    -         -         -         -         -         -         -
released         -         -         released  released  released  released  -         -         -         -
escalated        -         -         escalated escalated escalated escalated -         -         -         -
recovered        -         -         -         queued    queued    queued    -         -         -         -
stopped          -         -         -         queued    queued    queued    -         -         -         -
worktree_removed -         seen      -         -         -         -         done      failed    escalated released
`

describe('transition', () => {
  const [header, ...rows] = TABLE.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
  const columns = header!.slice(1)

  test('the table covers every phase and every event type', () => {
    expect(columns).toEqual(['(none)', ...PHASES])
    expect(new Set(rows.map((r) => EVENTS[r[0]!]!.type))).toEqual(new Set(Object.values(EVENTS).map((e) => e.type)))
    expect(rows.map((r) => r[0])).toEqual(Object.keys(EVENTS))
  })

  for (const row of rows) {
    const [name, ...expected] = row as [string, ...string[]]
    test(`${name}: from each phase to the table's phase, or refused`, () => {
      const got = columns.map((col) => {
        const before = col === '(none)' ? undefined : rec(col as Phase)
        const copy = structuredClone(before)
        const t = transition(before, EVENTS[name]!, NOW)
        expect(before).toEqual(copy) // pure: the input record is never modified
        return t.ok ? (t.record.phase as string) : '-'
      })
      expect(got).toEqual(expected)
    })
  }

  test('a refusal says why (released stays released)', () => {
    const t = transition(rec('released'), EVENTS.worktree_ready!, NOW)
    expect(t).toEqual({ ok: false, refused: 'released' })
  })
})

describe('what a transition does besides the phase', () => {
  test('a human asking again on an issue whose last run never reported abandons that run, so the next claim opens a new one', () => {
    const stuck = rec('escalated', { runs: [run(1, { status: 'success' })], attempts: 3, lastError: git })
    const t = transition(stuck, EVENTS['polled:queue']!, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'queued', attempts: 0, lastError: undefined, runs: [{ n: 1, abandoned: true }] })
  })

  test('an engine failure retried is closed (the retry is a new run); a step failure leaves the run open to resume', () => {
    const engineFailed = rec('reporting', { runs: [run(1, { status: 'failed', errorCode: 'engine_failed' })] })
    const a = transition(engineFailed, EVENTS['failed:retry']!, NOW)
    expect(a.ok && a.record.runs[0]).toMatchObject({ reportedAt: NOW.toISOString(), retried: true })
    expect(a.ok && a.record).toMatchObject({ attempts: 1, nextRetryAt: '2026-12-01T12:00:10.000Z' })
    const stepFailed = transition(rec('reporting'), EVENTS['failed:retry']!, NOW)
    expect(stepFailed.ok && stepFailed.record.runs[0]!.reportedAt).toBeUndefined()
  })

  test('a final failure closes the run with the error and keeps the fix for the comment', () => {
    const t = transition(
      rec('running'),
      { type: 'failed', error: { code: 'engine_missing', message: 'no claude', fix: 'install it' }, maxAttempts: 3 },
      NOW,
    )
    expect(t.ok && t.record).toMatchObject({ phase: 'failed', lastError: { code: 'engine_missing', fix: 'install it' } })
    expect(t.ok && t.record.runs[0]).toMatchObject({ status: 'failed', errorCode: 'engine_missing', reportedAt: NOW.toISOString() })
  })

  test('a success resets the attempts, the pending retry and the recoveries', () => {
    const t = transition(rec('reporting', { attempts: 2, recoveries: 1, nextRetryAt: 'x', lastError: git }), EVENTS['reported:ok']!, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'done', attempts: 0, recoveries: 0, nextRetryAt: undefined, lastError: undefined })
  })

  test('an engine that ends after its issue was released closes its run as cancelled', () => {
    const t = transition(rec('released', { runs: [run(1)] }), EVENTS.engine_finished!, NOW)
    expect(t.ok && t.record.runs[0]).toMatchObject({ status: 'cancelled', errorCode: 'engine_cancelled', reportedAt: NOW.toISOString() })
  })

  test('an operator stop puts the unfinished run back to running without using an attempt', () => {
    const t = transition(rec('running', { runs: [run(1, { status: 'cancelled', summary: 'killed' })] }), EVENTS.stopped!, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'queued', attempts: 0, runs: [{ n: 1, status: 'running', summary: undefined }] })
  })

  test('a dead owner is resumed once: recoveries counts it', () => {
    const t = transition(rec('running', { recoveries: 0 }), EVENTS.recovered!, NOW)
    expect(t.ok && t.record.recoveries).toBe(1)
  })

  test('a resumed run whose engine already finished goes straight to reporting', () => {
    const t = transition(rec('claimed', { runs: [run(1, { status: 'success' })] }), EVENTS.worktree_ready!, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'reporting', worktree: '/w/ENG-1', branch: 'eng-1' })
  })

  test('Codex usage is kept per run: a resumed thread counts only what it added', () => {
    const prev = rec('running', {
      sessionId: 'thread-1',
      runs: [run(1, { status: 'success', reportedAt: 'x', usageThreadTotal: { inputTokens: 100, outputTokens: 10 } }), run(2)],
    })
    const event: PhaseEvent = {
      type: 'engine_finished',
      run: { status: 'success', usage: { inputTokens: 250, outputTokens: 30 } },
      sessionId: 'thread-1',
      threadUsage: true,
    }
    const t = transition(prev, event, NOW)
    expect(t.ok && t.record.runs[1]).toMatchObject({
      usage: { inputTokens: 150, outputTokens: 20 },
      usageThreadTotal: { inputTokens: 250 },
    })
  })

  test('an issue first seen outside an active state remembers when, so only later comments count', () => {
    const issue = {
      ...ISSUE,
      comments: [{ id: 'c', body: 'old', createdAt: '2026-12-01T11:30:00.000Z', user: null }],
    } as unknown as TrackerIssue
    const t = transition(undefined, { type: 'polled', issue, decision: { action: 'skip', reason: 'inactive_state' } }, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'seen', seenUpTo: '2026-12-01T11:30:00.000Z', runs: [] })
  })

  test('inPhase and isActive answer for callers', () => {
    expect(inPhase(rec('queued'), 'queued', 'seen')).toBe(true)
    expect(inPhase(undefined, 'queued')).toBe(false)
    expect(PHASES.filter((p) => isActive(rec(p)))).toEqual(['queued', 'claimed', 'running', 'reporting'])
  })
})
