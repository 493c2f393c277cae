/**
 * The ticket state machine in-process: every phase x every event against a table written out by
 * hand (the table IS the specification; a change to the machine must change it here), then the
 * details a phase alone does not show (runs opened, closed or resumed, budgets reset).
 */
import { describe, expect, test } from 'bun:test'
import { EVENT_TYPES, inPhase, IN_FLIGHT, isActive, PHASES, type Phase, type PhaseEvent, transition } from '../lib/phases.ts'
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
  retry_requested: { type: 'retry_requested', by: 'riley' },
  cancel_requested: { type: 'cancel_requested', by: 'riley' },
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
engine_finished  -         -         -         -         reporting -         -         -         -         -
reported:ok      -         -         -         done      done      done      -         -         -         -
reported:failed  -         -         -         failed    failed    failed    -         -         -         -
failed:retry     -         -         queued    queued    queued    queued    -         -         -         -
failed:last      -         -         escalated escalated escalated escalated -         -         -         -
failed:final     -         -         failed    failed    failed    failed    -         -         -         -
blocked          -         -         queued    -         -         -         -         -         -         -
released         -         -         released  released  released  released  -         -         -         released
escalated        -         -         escalated escalated escalated escalated -         -         -         -
recovered        -         -         -         queued    queued    queued    -         -         -         -
stopped          -         -         -         queued    queued    queued    -         -         -         -
worktree_removed -         seen      -         -         -         -         done      failed    escalated released
retry_requested  -         -         -         -         -         -         -         queued    queued    -
cancel_requested -         -         released  released  released  released  -         -         -         -
`

describe('transition', () => {
  const [header, ...rows] = TABLE.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
  const columns = header!.slice(1)

  test('the table covers every phase and every event type', () => {
    expect(columns).toEqual(['(none)', ...PHASES])
    expect(new Set(rows.map((r) => EVENTS[r[0]!]!.type))).toEqual(new Set(EVENT_TYPES))
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
  test('a retry by hand un-escalates with a fresh budget of attempts and no pending retry', () => {
    const t = transition(rec('escalated', { attempts: 3, lastError: git, recoveries: 1 }), EVENTS.retry_requested!, NOW)
    expect(t.ok && t.record).toMatchObject({
      phase: 'queued',
      attempts: 0,
      lastError: undefined,
      recoveries: 0,
      queuedAt: NOW.toISOString(),
    })
  })

  test('a claim records the routed repository and a rerun keeps it; a claim with none leaves it unset', () => {
    const first = transition(rec('queued', { runs: [] }), { ...EVENTS.claimed!, repo: '/r/api.git' } as PhaseEvent, NOW)
    expect(first.ok && first.record.repo).toBe('/r/api.git')
    const rerun = transition({ ...rec('queued'), repo: '/r/api.git' }, EVENTS.claimed!, NOW)
    expect(rerun.ok && rerun.record.repo).toBe('/r/api.git')
    const unrouted = transition(rec('queued'), EVENTS.claimed!, NOW)
    expect(unrouted.ok && unrouted.record.repo).toBeUndefined()
  })

  test('a first claim with no record yet records the routed repository too', () => {
    expect(after(undefined, { ...EVENTS.claimed!, repo: '/r/web.git' } as PhaseEvent).repo).toBe('/r/web.git')
  })

  test('a new session on a finished issue forgets replies left from the old one; a reply is refused only if that very reply was kept', () => {
    const old = rec('done', { agentSessionId: 's-1', pendingPrompts: [{ id: 'p-old', body: 'stale', at: 'x' }] })
    expect(after(old, { type: 'session_created', issue: ISSUE, sessionId: 's-2' }).pendingPrompts).toBeUndefined()
    const two = rec('running', {
      runs: [run(1)],
      pendingPrompts: [
        { id: 'a-1', body: 'one', at: 'x' },
        { id: 'a-2', body: 'two', at: 'x' },
      ],
    })
    expect(transition(two, { type: 'prompted', at: NOW.toISOString(), prompt: { id: 'a-2', body: 'two' } }, NOW)).toEqual({
      ok: false,
      refused: 'reply a-2 already recorded',
    })
  })

  test('a release records the state Linear moved the issue to and when it closed; a closed release of a released issue only marks it closed', () => {
    const done = { id: 's-done', name: 'Done', type: 'completed' }
    const r = after(rec('running'), { type: 'released', reason: 'moved to Done', closed: true, state: done })
    expect(r).toMatchObject({ phase: 'released', closedAt: NOW.toISOString(), snapshot: { state: done } })
    const open = after(rec('running'), { type: 'released', reason: 'unassigned', closed: false })
    expect(open.closedAt).toBeUndefined()
    expect(open.snapshot.state).toEqual(ISSUE.state)
    const later = new Date('2026-12-01T13:00:00.000Z')
    const again = after(open, { type: 'released', reason: 'moved to Done', closed: true, state: done }, later)
    expect(again).toMatchObject({
      phase: 'released',
      releasedReason: 'unassigned',
      closedAt: later.toISOString(),
      snapshot: { state: done },
    })
    expect(after(again, { type: 'released', reason: 'again', closed: true }, new Date('2026-12-01T14:00:00.000Z')).closedAt).toBe(
      later.toISOString(),
    )
    // A stop in Linear is not a release by Linear's state: the snapshot keeps its state.
    expect(after(rec('running'), { type: 'stop_requested', reason: 'stopped by Riley' }).snapshot.state).toEqual(ISSUE.state)
  })

  test('an escalation keeps at most 500 characters of its error message', () => {
    const long = { code: 'repo_unmatched', message: 'x'.repeat(600) }
    expect(after(rec('queued', { runs: [] }), { type: 'escalated', reason: 'r', error: long }).lastError!.message).toHaveLength(500)
  })

  test('an escalation that carries an error (no repository rule takes the issue) keeps it for status and the comment', () => {
    const error = { code: 'repo_unmatched', message: 'ENG-1 matches no repository', fix: 'label it backend' }
    const t = transition(rec('queued', { runs: [] }), { type: 'escalated', reason: 'no repository rule takes it', error }, NOW)
    expect(t.ok && t.record).toMatchObject({ phase: 'escalated', escalatedAt: NOW.toISOString(), lastError: error })
  })

  test('a retry by hand of an issue waiting for its backoff makes it due now and keeps its attempt count', () => {
    const t = transition(
      rec('queued', { attempts: 1, nextRetryAt: '2026-12-01T12:05:00.000Z', lastError: git }),
      EVENTS.retry_requested!,
      NOW,
    )
    expect(t.ok && t.record).toMatchObject({ phase: 'queued', attempts: 1, nextRetryAt: undefined, lastError: git })
  })

  test('a cancel by hand releases the issue, holds it, and only a retry (or a human comment) queues it again', () => {
    const cancelled = transition(rec('running', { nextRetryAt: 'x' }), EVENTS.cancel_requested!, NOW)
    expect(cancelled.ok && cancelled.record).toMatchObject({
      phase: 'released',
      releasedReason: 'cancelled by riley',
      cancelledAt: NOW.toISOString(),
      nextRetryAt: undefined,
    })
    const again = transition(cancelled.ok ? cancelled.record : undefined, EVENTS.retry_requested!, NOW)
    expect(again.ok && again.record).toMatchObject({ phase: 'queued', cancelledAt: undefined, releasedReason: undefined })
  })

  test('a retry by hand is refused with the way forward: done asks for a comment, a release by Linear for a reassignment', () => {
    expect(transition(rec('done'), EVENTS.retry_requested!, NOW)).toEqual({
      ok: false,
      refused: 'done: nothing failed; a comment on the issue in Linear asks for changes',
    })
    const gone = transition(
      rec('released', { releasedReason: 'no longer assigned or delegated to the agent' }),
      EVENTS.retry_requested!,
      NOW,
    )
    expect(gone.ok ? '' : gone.refused).toContain('assign it to the agent again')
  })

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

/** The record an accepted transition produced (a refusal fails the test, naming why). */
function after(before: IssueRecord | undefined, event: PhaseEvent, now = NOW): IssueRecord {
  const t = transition(before, event, now)
  if (!t.ok) throw new Error(`refused: ${t.refused}`)
  return t.record
}
const LATER = new Date('2026-12-01T13:00:00.000Z')
const polled = (decision: Extract<PhaseEvent, { type: 'polled' }>['decision'], issue = ISSUE): PhaseEvent => ({
  type: 'polled',
  issue,
  decision,
})

describe('refusals', () => {
  // The runner logs these ("stopped by signal (done is not in flight)") and treats an empty one as accepted.
  const cases: [Phase | undefined, string, string][] = [
    [undefined, 'polled:skip', 'not recorded: nothing to do for this issue'],
    [undefined, 'stopped', 'no record of this issue for stopped'],
    ['queued', 'session_created', 'already queued'],
    ['running', 'prompted', 'already running: the live run takes the follow-up'],
    ['done', 'stop_requested', 'done is not queued or running'],
    ['failed', 'released', 'failed is not queued or running'],
    ['released', 'claimed', 'released'],
    ['queued', 'worktree_ready', 'worktree_ready in queued'],
    ['claimed', 'engine_finished', 'engine_finished in claimed'],
    ['queued', 'reported:ok', 'queued: no run being reported'],
    ['done', 'failed:retry', 'done: no attempt under way'],
    ['running', 'blocked', 'running is not queued'],
    ['escalated', 'escalated', 'escalated is not queued or running'],
    ['queued', 'recovered', 'queued is not in flight'],
    ['done', 'stopped', 'done is not in flight'],
    ['running', 'worktree_removed', 'a run is using or about to use the worktree'],
    ['done', 'cancel_requested', 'done: nothing queued or running to cancel'],
    ['running', 'retry_requested', 'running: already queued or running'],
    ['seen', 'retry_requested', 'seen: never run; move the issue to an active state in Linear'],
  ]
  for (const [phase, event, why] of cases) {
    test(`${event} from ${phase ?? 'no record'} is refused with "${why}"`, () => {
      expect(transition(phase && rec(phase), EVENTS[event]!, NOW)).toEqual({ ok: false, refused: why })
    })
  }

  test("a session's created handed out again names the session; an engine result for a reported run names the run", () => {
    expect(transition(rec('done', { agentSessionId: 's-1' }), { type: 'session_created', issue: ISSUE, sessionId: 's-1' }, NOW)).toEqual({
      ok: false,
      refused: 'session s-1 already taken (done)',
    })
    const closed = rec('running', { runs: [run(1, { reportedAt: '2026-12-01T11:30:00.000Z' })] })
    expect(transition(closed, EVENTS.engine_finished!, NOW)).toEqual({ ok: false, refused: 'run #1 is closed' })
  })

  test('an engine result or a report for a record with no run is refused, not applied to nothing', () => {
    const noRun = rec('running', { runs: [] })
    expect(transition(noRun, EVENTS.engine_finished!, NOW)).toEqual({ ok: false, refused: 'no run to finish' })
    expect(transition(rec('reporting', { runs: [] }), EVENTS['reported:ok']!, NOW)).toEqual({ ok: false, refused: 'no run to report' })
  })
})

describe('polls and webhooks', () => {
  test('a poll refreshes the snapshot and title of a record in any phase, even mid-run', () => {
    const renamed = { ...ISSUE, title: 'Add a health check endpoint' } as TrackerIssue
    for (const phase of PHASES) {
      const r = after(rec(phase), polled({ action: 'skip', reason: 'in_flight' }, renamed))
      expect(r).toMatchObject({ phase, title: 'Add a health check endpoint', snapshot: renamed, updatedAt: NOW.toISOString() })
    }
  })

  test('an issue first polled in an active state is queued with no run and a fresh budget', () => {
    expect(after(undefined, EVENTS['polled:queue']!)).toEqual({
      id: 'i1',
      identifier: 'ENG-1',
      title: 'Add a health check',
      phase: 'queued',
      snapshot: ISSUE,
      runs: [],
      attempts: 0,
      queuedAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    })
  })

  test('an issue seen closed keeps the first time it was seen closed (worktree cleanup counts from it)', () => {
    const closed = polled({ action: 'skip', reason: 'closed' })
    const first = after(rec('done'), closed)
    expect(first.closedAt).toBe(NOW.toISOString())
    expect(after(first, closed, LATER).closedAt).toBe(NOW.toISOString())
    expect(after(rec('done'), EVENTS['polled:skip']!).closedAt).toBeUndefined()
    expect(after(rec('done'), polled({ action: 'queue', reason: 'new', commentCount: 0 })).closedAt).toBeUndefined()
  })

  test('an issue seen again after a release, outside an active state, waits as seen from its newest comment', () => {
    const issue = { ...ISSUE, comments: [{ id: 'c', body: 'later', createdAt: '2026-12-01T11:45:00.000Z', user: null }] } as TrackerIssue
    const r = after(rec('released', { releasedReason: 'unassigned' }), polled({ action: 'skip', reason: 'inactive_state' }, issue))
    expect(r).toMatchObject({ phase: 'seen', seenUpTo: '2026-12-01T11:45:00.000Z' })
  })

  test("the seen mark is Linear's newest clock: the issue's own update when every comment is older", () => {
    const issue = {
      ...ISSUE,
      updatedAt: '2026-12-01T11:50:00.000Z',
      comments: [
        { id: 'a', body: 'newest', createdAt: '2026-12-01T11:55:00.000Z', user: null },
        { id: 'b', body: 'older', createdAt: '2026-12-01T11:52:00.000Z', user: null },
      ],
    } as TrackerIssue
    expect(after(undefined, polled({ action: 'skip', reason: 'inactive_state' }, issue)).seenUpTo).toBe('2026-12-01T11:55:00.000Z')
    const stale = { ...issue, comments: [{ id: 'a', body: 'old', createdAt: '2026-12-01T10:00:00.000Z', user: null }] } as TrackerIssue
    expect(after(undefined, polled({ action: 'skip', reason: 'inactive_state' }, stale)).seenUpTo).toBe('2026-12-01T11:50:00.000Z')
  })

  test('a delegation (agent session) on a finished issue queues it for that session with the new snapshot', () => {
    const moved = { ...ISSUE, title: 'Add a health check (again)' } as TrackerIssue
    const r = after(rec('done', { attempts: 2 }), { type: 'session_created', issue: moved, sessionId: 'session-7' })
    expect(r).toMatchObject({ phase: 'queued', agentSessionId: 'session-7', snapshot: moved, attempts: 0, queuedAt: NOW.toISOString() })
    expect(after(undefined, { type: 'session_created', issue: ISSUE, sessionId: 'session-8' })).toMatchObject({
      phase: 'queued',
      agentSessionId: 'session-8',
      queuedAt: NOW.toISOString(),
      runs: [],
    })
  })

  test('a session records its workspace and what Linear sent, and a reply during a live run waits for the next run', () => {
    const opened = after(undefined, { type: 'session_created', issue: ISSUE, sessionId: 's-1', orgId: 'org-1', promptContext: '<issue/>' })
    expect(opened).toMatchObject({ phase: 'queued', agentSessionId: 's-1', agentOrgId: 'org-1', promptContext: '<issue/>' })
    const reply = (id: string, body: string): PhaseEvent => ({ type: 'prompted', at: NOW.toISOString(), prompt: { id, body } })
    const live = after(rec('running', { runs: [run(1)] }), reply('a-1', 'also docs'))
    expect(live.phase).toBe('running')
    expect(live.pendingPrompts).toEqual([{ id: 'a-1', body: 'also docs', at: NOW.toISOString() }])
    // The same reply delivered twice is recorded once.
    expect(transition(live, reply('a-1', 'also docs'), NOW)).toMatchObject({ ok: false })
    const two = after(live, reply('a-2', 'and a test'))
    // The run reports: the two replies make one run right after it.
    const reported = after(rec('reporting', { runs: [run(1)], pendingPrompts: two.pendingPrompts }), EVENTS['reported:ok']!)
    expect(reported.phase).toBe('queued')
    // Its claim gives the new run both replies and clears them.
    const claimed = after(reported, { type: 'claimed', issue: ISSUE, runNumber: 2, resumes: false, engine: 'console' })
    expect(claimed.runs.at(-1)?.prompts).toEqual(['also docs', 'and a test'])
    expect(claimed.pendingPrompts).toBeUndefined()
    // A reply to a finished session queues it at once.
    expect(after(rec('done'), reply('a-3', 'one more thing'))).toMatchObject({ phase: 'queued', pendingPrompts: [{ id: 'a-3' }] })
  })

  test("a session's created or a reply handed out again after its run took it is refused: the session does not run twice", () => {
    const reply: PhaseEvent = { type: 'prompted', at: NOW.toISOString(), prompt: { id: 'a-1', body: 'also docs' } }
    const queued = after(rec('running', { runs: [run(1)], agentSessionId: 's-1' }), reply)
    const claimed = after(
      { ...queued, phase: 'queued' },
      { type: 'claimed', issue: ISSUE, runNumber: 2, resumes: false, engine: 'console' },
    )
    expect(claimed.runs.at(-1)).toMatchObject({ prompts: ['also docs'], promptIds: ['a-1'] })
    const done = { ...claimed, phase: 'done' as const }
    expect(transition(done, reply, NOW)).toMatchObject({ ok: false, refused: 'reply a-1 already recorded' })
    expect(transition(done, { type: 'session_created', issue: ISSUE, sessionId: 's-1' }, NOW)).toMatchObject({ ok: false })
    // Another session on the same issue is a new request.
    expect(after(done, { type: 'session_created', issue: ISSUE, sessionId: 's-2' })).toMatchObject({
      phase: 'queued',
      agentSessionId: 's-2',
    })
  })

  test('a new run after a release forgets why it was released and when it was seen closed', () => {
    const released = rec('released', { releasedReason: 'moved to Done', closedAt: 'earlier', nextRetryAt: 'x', recoveries: 1 })
    expect(after(released, EVENTS.prompted!)).toMatchObject({
      phase: 'queued',
      releasedReason: undefined,
      closedAt: undefined,
      nextRetryAt: undefined,
      recoveries: 0,
      queuedAt: NOW.toISOString(),
    })
  })

  test('a human asking again closes an unreported run that was still running as cancelled, and keeps a finished one as it ended', () => {
    const running = after(rec('escalated', { runs: [run(1)] }), EVENTS['polled:queue']!)
    expect(running.runs).toEqual([run(1, { abandoned: true, status: 'cancelled' })])
    const finished = after(rec('released', { runs: [run(1, { status: 'timeout' })] }), EVENTS.prompted!)
    expect(finished.runs).toEqual([run(1, { abandoned: true, status: 'timeout' })])
    const reported = rec('done')
    expect(after(reported, EVENTS.prompted!).runs).toEqual(reported.runs)
  })
})

describe('releases and stops', () => {
  test('a release records why, drops the pending retry, and marks a closed issue closed', () => {
    const r = after(rec('queued', { nextRetryAt: 'soon' }), { type: 'released', reason: 'moved to Done', closed: true })
    expect(r).toMatchObject({ phase: 'released', releasedReason: 'moved to Done', nextRetryAt: undefined, closedAt: NOW.toISOString() })
    const kept = after(rec('running', { closedAt: 'earlier' }), { type: 'released', reason: 'canceled', closed: true })
    expect(kept.closedAt).toBe('earlier')
  })

  test('a release of an open issue (unassigned) and a stop from Linear leave closedAt unset', () => {
    expect(after(rec('running'), { type: 'released', reason: 'unassigned', closed: false }).closedAt).toBeUndefined()
    const stopped = after(rec('running'), EVENTS.stop_requested!)
    expect(stopped).toMatchObject({ phase: 'released', releasedReason: 'stopped by Riley' })
    expect(stopped.closedAt).toBeUndefined()
  })

  test('an operator stop keeps a finished engine result (even a failure) to report on resume', () => {
    const failed = run(1, { status: 'failed', errorCode: 'engine_failed', summary: 'tests fail', endedAt: 'then' })
    expect(after(rec('reporting', { runs: [failed] }), EVENTS.stopped!)).toMatchObject({ phase: 'queued', runs: [failed] })
  })

  test('an operator stop never reopens a run that was already closed, and is fine with no run at all', () => {
    const closed = run(1, { status: 'cancelled', reportedAt: 'then', summary: 'released' })
    expect(after(rec('claimed', { runs: [closed] }), EVENTS.stopped!).runs).toEqual([closed])
    expect(after(rec('claimed', { runs: [] }), EVENTS.stopped!)).toMatchObject({ phase: 'queued', runs: [] })
  })

  test('a recovery counts from zero on a record that never had one, and keeps counting', () => {
    const r = rec('claimed')
    delete r.recoveries
    const once = after(r, EVENTS.recovered!)
    expect(once.recoveries).toBe(1)
    expect(after({ ...once, phase: 'running' }, EVENTS.recovered!).recoveries).toBe(2)
  })

  test('an escalation by the reconciler stamps when and drops the pending retry', () => {
    expect(after(rec('queued', { nextRetryAt: 'soon' }), EVENTS.escalated!)).toMatchObject({
      phase: 'escalated',
      escalatedAt: NOW.toISOString(),
      nextRetryAt: undefined,
    })
  })

  test('removing the worktree of a finished issue forgets its path and stamps when', () => {
    const r = after(rec('done', { worktree: '/w/ENG-1', branch: 'eng-1' }), EVENTS.worktree_removed!)
    expect(r).toMatchObject({ phase: 'done', worktree: undefined, worktreeRemovedAt: NOW.toISOString(), branch: 'eng-1' })
  })
})

describe('claims and the engine', () => {
  test('a claim opens run n with its engine; a resuming claim opens none', () => {
    expect(after(rec('queued'), EVENTS.claimed!).runs.at(-1)).toEqual({
      n: 2,
      startedAt: NOW.toISOString(),
      status: 'running',
      engine: 'console',
    })
    expect(after(undefined, EVENTS.claimed!)).toMatchObject({
      phase: 'claimed',
      runs: [{ n: 2, startedAt: NOW.toISOString(), status: 'running', engine: 'console' }],
    })
    const resumed = after(rec('queued', { runs: [run(1)] }), {
      type: 'claimed',
      issue: ISSUE,
      runNumber: 1,
      resumes: true,
      engine: 'console',
    })
    expect(resumed).toMatchObject({ phase: 'claimed', runs: [run(1)] })
  })

  test('a worktree reported again once the run is past its claim only records the path', () => {
    // A reporting run whose engine result carried no status still reports, it does not run the engine again.
    const reporting = rec('reporting', { runs: [run(1)] })
    expect(after(reporting, EVENTS.worktree_ready!)).toMatchObject({ phase: 'reporting', worktree: '/w/ENG-1' })
    const running = rec('running', { runs: [run(1, { status: 'success' })] })
    expect(after(running, EVENTS.worktree_ready!)).toMatchObject({ phase: 'running', branch: 'eng-1' })
  })

  test("the engine's end is stamped now unless the engine said when, and its session is kept for the next run", () => {
    const r = after(rec('running', { sessionId: 'old' }), { type: 'engine_finished', run: { status: 'success' }, sessionId: 'thread-9' })
    expect(r).toMatchObject({ phase: 'reporting', sessionId: 'thread-9', runs: [{ status: 'success', endedAt: NOW.toISOString() }] })
    const told = after(rec('running', { sessionId: 'old' }), { type: 'engine_finished', run: { status: 'failed', endedAt: 'at 11:59' } })
    expect(told).toMatchObject({ sessionId: 'old', runs: [{ status: 'failed', endedAt: 'at 11:59' }] })
  })

  test('Claude usage (per run, not a thread total) is stored as reported', () => {
    const usage = { inputTokens: 40, outputTokens: 4 }
    const r = after(rec('running'), { type: 'engine_finished', run: { status: 'success', usage }, sessionId: 's' })
    expect(r.runs[0]!.usage).toEqual(usage)
    expect(r.runs[0]!.usageThreadTotal).toBeUndefined()
  })

  const codex = (usage: { inputTokens: number; outputTokens: number }, sessionId = 'thread-1'): PhaseEvent => ({
    type: 'engine_finished',
    run: { status: 'success', usage },
    sessionId,
    threadUsage: true,
  })

  test("a Codex thread's first run counts its whole total", () => {
    const r = after(rec('running', { runs: [run(1)] }), codex({ inputTokens: 90, outputTokens: 9 }))
    expect(r.runs[0]).toMatchObject({ usage: { inputTokens: 90, outputTokens: 9 }, usageThreadTotal: { inputTokens: 90, outputTokens: 9 } })
  })

  test('a new Codex thread counts from zero, not from the previous thread', () => {
    const before = rec('running', {
      sessionId: 'thread-1',
      runs: [run(1, { status: 'success', reportedAt: 'x', usageThreadTotal: { inputTokens: 100, outputTokens: 10 } }), run(2)],
    })
    // Totals above the previous thread's, so only the thread check keeps them whole.
    const total = { inputTokens: 160, outputTokens: 16 }
    expect(after(before, codex(total, 'thread-2')).runs[1]!.usage).toEqual(total)
    const noSession: PhaseEvent = { type: 'engine_finished', run: { status: 'success', usage: total }, threadUsage: true }
    expect(after({ ...before, sessionId: undefined }, noSession).runs[1]!.usage).toEqual(total)
  })

  test('a Codex thread resumed after runs that reported no total counts its whole total', () => {
    const before = rec('running', { sessionId: 'thread-1', runs: [run(1, { status: 'failed', reportedAt: 'x' }), run(2)] })
    expect(after(before, codex({ inputTokens: 70, outputTokens: 7 })).runs[1]!.usage).toEqual({ inputTokens: 70, outputTokens: 7 })
  })

  test('a Codex run counts from the last run that reported a thread total, skipping runs that reported none', () => {
    const before = rec('running', {
      sessionId: 'thread-1',
      runs: [
        run(1, { status: 'success', reportedAt: 'x', usageThreadTotal: { inputTokens: 100, outputTokens: 10 } }),
        run(2, { status: 'failed', reportedAt: 'y' }),
        run(3),
      ],
    })
    expect(after(before, codex({ inputTokens: 180, outputTokens: 25 })).runs[2]).toMatchObject({
      usage: { inputTokens: 80, outputTokens: 15 },
      usageThreadTotal: { inputTokens: 180, outputTokens: 25 },
    })
  })

  test('a Codex run resumed after an operator stop counts everything since the previous run, including the stopped part', () => {
    const before = rec('running', {
      sessionId: 'thread-1',
      runs: [
        run(1, { status: 'success', reportedAt: 'x', usageThreadTotal: { inputTokens: 100, outputTokens: 10 } }),
        run(2, { usageThreadTotal: { inputTokens: 150, outputTokens: 15 } }),
      ],
    })
    expect(after(before, codex({ inputTokens: 200, outputTokens: 20 })).runs[1]!.usage).toEqual({
      inputTokens: 100,
      outputTokens: 10,
      cachedInputTokens: 0,
    })
  })
})

describe('reports', () => {
  test('a report closes the run with its comment, commit and PR, and moves the snapshot to the state Linear was given', () => {
    const review = { id: 's-review', name: 'In Review', type: 'started' }
    const event: PhaseEvent = {
      type: 'reported',
      outcome: 'success',
      commentId: 'c9',
      commit: 'abc123',
      prUrl: 'https://pr/1',
      movedTo: review as never,
    }
    const r = after(rec('reporting'), event)
    expect(r).toMatchObject({ phase: 'done', prUrl: 'https://pr/1', snapshot: { ...ISSUE, state: review } })
    expect(r.runs[0]).toEqual(
      run(1, { status: 'success', reportedAt: NOW.toISOString(), commentId: 'c9', commit: 'abc123', prUrl: 'https://pr/1' }),
    )
  })

  test('a report without a PR or a move keeps the PR already known and the snapshot as polled', () => {
    const r = after(rec('reporting', { prUrl: 'https://pr/0' }), EVENTS['reported:ok']!)
    expect(r).toMatchObject({ prUrl: 'https://pr/0', snapshot: ISSUE })
    expect(r.snapshot.state).toEqual(ISSUE.state)
  })

  test('a run with nothing to commit is done with its run marked no_changes; a failed report keeps the engine status', () => {
    const none = after(rec('reporting'), { type: 'reported', outcome: 'no_changes', commentId: 'c1' })
    expect(none).toMatchObject({ phase: 'done', runs: [{ status: 'no_changes' }] })
    const failed = after(rec('reporting', { runs: [run(1, { status: 'timeout' })] }), EVENTS['reported:failed']!)
    expect(failed.runs[0]!.status).toBe('timeout')
    expect(after(rec('reporting'), EVENTS['reported:ok']!).runs[0]!.status).toBe('success')
  })

  test("a failed run's report shows its error code and the start of its summary", () => {
    const long = 'x'.repeat(700)
    const r = after(
      rec('reporting', { runs: [run(1, { status: 'failed', errorCode: 'engine_stalled', summary: long })] }),
      EVENTS['reported:failed']!,
    )
    expect(r).toMatchObject({ phase: 'failed', lastError: { code: 'engine_stalled', message: 'x'.repeat(500) } })
    const bare = after(rec('reporting', { runs: [run(1, { status: 'failed' })] }), EVENTS['reported:failed']!)
    expect(bare.lastError).toEqual({ code: 'run_failed', message: '' })
  })
})

describe('failures', () => {
  const long = (n: number) => 'e'.repeat(n)

  test('a queued run that cannot start shows the error with its fix, cut to 500 characters, and uses no attempt', () => {
    const r = after(rec('queued', { attempts: 1 }), {
      type: 'blocked',
      error: { code: 'git_failed', message: long(600), fix: 'check the URL' },
    })
    expect(r).toMatchObject({ phase: 'queued', attempts: 1, lastError: { code: 'git_failed', message: long(500), fix: 'check the URL' } })
  })

  test('a failed attempt shows its error cut to 500 characters', () => {
    const r = after(rec('running'), { type: 'failed', error: { code: 'git_failed', message: long(800) }, maxAttempts: 3 })
    expect(r.lastError).toEqual({ code: 'git_failed', message: long(500), fix: undefined })
  })

  test('a first claim that fails on a fresh issue (no run yet) is retried', () => {
    const fresh = after(undefined, EVENTS['polled:queue']!)
    expect(after(fresh, EVENTS['failed:retry']!)).toMatchObject({
      phase: 'queued',
      attempts: 1,
      runs: [],
      nextRetryAt: '2026-12-01T12:00:10.000Z',
    })
  })

  test('a failure while queued leaves the previous, reported run as it was', () => {
    const before = rec('queued')
    expect(after(before, EVENTS['failed:final']!).runs).toEqual(before.runs)
    expect(after(before, EVENTS['failed:retry']!).runs).toEqual(before.runs)
  })

  test('a step failing before the engine ran leaves the run open to resume', () => {
    const r = after(rec('claimed'), EVENTS['failed:retry']!)
    expect(r.runs).toEqual([run(1)])
  })

  test('an engine failure that uses the last attempt closes the run, not as retried', () => {
    const r = after(rec('reporting', { runs: [run(1, { status: 'stalled' })] }), EVENTS['failed:last']!)
    expect(r).toMatchObject({ phase: 'escalated', escalatedAt: NOW.toISOString(), nextRetryAt: undefined, attempts: 1 })
    expect(r.runs[0]).toEqual(run(1, { status: 'stalled', reportedAt: NOW.toISOString(), retried: false }))
  })

  test('a final failure of the report keeps the engine result and its own summary on the run', () => {
    const finished = run(1, { status: 'success', endedAt: 'at 11:50', summary: 'added /health' })
    const r = after(rec('reporting', { runs: [finished] }), {
      type: 'failed',
      error: { code: 'tracker_auth', message: 'bad key' },
      maxAttempts: 3,
    })
    expect(r.runs[0]).toEqual({ ...finished, errorCode: 'tracker_auth', reportedAt: NOW.toISOString() })
  })

  test('a final failure mid-run closes the run now, with the error message (cut to 2000 characters) as its summary', () => {
    const r = after(rec('running'), { type: 'failed', error: { code: 'engine_missing', message: long(2500) }, maxAttempts: 3 })
    expect(r.runs[0]).toEqual(
      run(1, {
        status: 'failed',
        endedAt: NOW.toISOString(),
        errorCode: 'engine_missing',
        summary: long(2000),
        reportedAt: NOW.toISOString(),
      }),
    )
  })
})
