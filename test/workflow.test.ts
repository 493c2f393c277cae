import { describe, expect, test } from 'bun:test'
import { parseConfig } from '../lib/config.ts'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { stableUuid, summaryCommentId } from '../lib/comments.ts'
import type { Phase } from '../lib/phases.ts'
import { lastCommentsUpTo } from '../lib/prompt.ts'
import { planIssue } from '../lib/steps/poll.ts'
import type { IssueRecord, RunRecord } from '../lib/state.ts'
import type { TrackerComment, TrackerIssue, WorkflowState } from '../lib/tracker/types.ts'
import { dispatchOrder, isActiveState, isReviewState, reviewState, startedState } from '../lib/workflow.ts'

const VIEWER = 'user-agent'
const RILEY = { id: 'user-riley', name: 'Riley', email: 'riley@acme.com' }
const MALLORY = { id: 'user-mallory', name: 'Mallory', email: 'mallory@acme.com' }

const LINEAR_DEFAULT: WorkflowState[] = [
  { id: 's-done', name: 'Done', type: 'completed', position: 5 },
  { id: 's-review', name: 'In Review', type: 'started', position: 3 },
  { id: 's-backlog', name: 'Backlog', type: 'backlog', position: 0 },
  { id: 's-progress', name: 'In Progress', type: 'started', position: 2 },
  { id: 's-todo', name: 'Todo', type: 'unstarted', position: 1 },
  { id: 's-canceled', name: 'Canceled', type: 'canceled', position: 6 },
]

function agent(allow?: string[]) {
  const tracker = allow ? `{ mode: api_key, token_env: K, allow_commenters: [${allow.join(', ')}] }` : '{ mode: api_key, token_env: K }'
  return parseConfig(
    `agents:\n  - name: tester\n    engine: console\n    tracker: ${tracker}\n    repo: { url: /srv/app.git }\n`,
    'test.yaml',
    { K: 'k' },
  ).agents[0]!
}

function comment(id: string, createdAt: string, user: TrackerComment['user'], body = `comment ${id}`): TrackerComment {
  return { id, body, createdAt, user }
}

function issue(over: Partial<TrackerIssue> = {}): TrackerIssue {
  return {
    id: 'issue-1',
    identifier: 'ENG-1',
    title: 'Add a health check',
    description: 'GET /healthz answers 200.',
    url: 'https://linear.app/acme/issue/ENG-1',
    branchName: 'agent/eng-1-add-a-health-check',
    priority: 2,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-02T00:00:00.000Z',
    state: LINEAR_DEFAULT[3]!,
    team: { id: 'team-1', key: 'ENG', states: LINEAR_DEFAULT },
    labels: [],
    assigneeId: VIEWER,
    delegateId: null,
    comments: [],
    ...over,
  }
}

function record(phase: Phase, runs: Partial<RunRecord>[] = []): IssueRecord {
  return {
    id: 'issue-1',
    identifier: 'ENG-1',
    title: 'Add a health check',
    phase,
    snapshot: issue(),
    runs: runs.map((r, i) => ({ n: i + 1, startedAt: '2025-01-02T00:00:00.000Z', status: 'success', ...r })),
    attempts: runs.length,
    recoveries: 0,
    updatedAt: '2025-01-02T00:00:00.000Z',
  }
}

describe('startedState and reviewState', () => {
  test("with Linear's default states they are In Progress and In Review", () => {
    expect(startedState(LINEAR_DEFAULT)?.id).toBe('s-progress')
    expect(reviewState(LINEAR_DEFAULT)?.id).toBe('s-review')
  })

  test('renamed states are found by type and name: Doing and Code Review', () => {
    const states: WorkflowState[] = [
      { id: 'r', name: 'Code Review', type: 'started', position: 1 },
      { id: 'd', name: 'Doing', type: 'started', position: 2 },
      { id: 't', name: 'Todo', type: 'unstarted', position: 0 },
      { id: 'x', name: 'Shipped', type: 'completed', position: 3 },
    ]
    expect(startedState(states)?.name).toBe('Doing')
    expect(reviewState(states)?.name).toBe('Code Review')
  })

  test('a team without a review state has no review state, and its started state is still found', () => {
    const states = LINEAR_DEFAULT.filter((s) => s.id !== 's-review')
    expect(startedState(states)?.id).toBe('s-progress')
    expect(reviewState(states)).toBeUndefined()
  })

  test('a team with no started state at all has neither', () => {
    const states = LINEAR_DEFAULT.filter((s) => s.type !== 'started')
    expect(startedState(states)).toBeUndefined()
    expect(reviewState(states)).toBeUndefined()
  })

  test('among several started states the lowest position wins', () => {
    const states: WorkflowState[] = [
      { id: 'b', name: 'Building', type: 'started', position: 4 },
      { id: 'a', name: 'Started', type: 'started', position: 1 },
      { id: 'q', name: 'Ready for review', type: 'started', position: 5 },
    ]
    expect(startedState(states)?.id).toBe('a')
    expect(reviewState(states)?.id).toBe('q')
  })

  test('In Progress is the started state even when another started state comes before it', () => {
    const states: WorkflowState[] = [
      { id: 'triage', name: 'Triage', type: 'started', position: 1 },
      { id: 'prog', name: 'In Progress', type: 'started', position: 2 },
      { id: 'rev', name: 'In Review', type: 'started', position: 3 },
    ]
    expect(startedState(states)?.id).toBe('prog')
  })

  test('without a state named review, the last started state by position is the review state, in whatever order Linear lists them', () => {
    const states: WorkflowState[] = [
      { id: 'qa', name: 'QA', type: 'started', position: 3 },
      { id: 'doing', name: 'Doing', type: 'started', position: 1 },
      { id: 'building', name: 'Building', type: 'started', position: 2 },
      { id: 'done', name: 'Done', type: 'completed', position: 4 },
    ]
    for (const order of [states, [...states].reverse()]) {
      expect(startedState(order)?.id).toBe('doing')
      expect(reviewState(order)?.id).toBe('qa')
    }
  })

  test('a started state without a position counts as position 0', () => {
    const states: WorkflowState[] = [
      { id: 'late', name: 'Building', type: 'started', position: 2 },
      { id: 'early', name: 'Doing', type: 'started' },
      { id: 'later', name: 'Verifying', type: 'started', position: 5 },
    ]
    for (const order of [states, [...states].reverse()]) {
      expect(startedState(order)?.id).toBe('early')
      expect(reviewState(order)?.id).toBe('later')
    }
  })
})

describe('isActiveState and isReviewState', () => {
  const byName = (name: string) => LINEAR_DEFAULT.find((s) => s.name === name)!
  const activeIn = (states: WorkflowState[], configured?: string[]) =>
    states.filter((state) => isActiveState(issue({ state, team: { id: 'team-1', key: 'ENG', states } }), configured)).map((s) => s.name)

  test('without active_states a new issue runs in Todo and In Progress, never in Backlog, In Review, Done or Canceled', () => {
    expect(activeIn(LINEAR_DEFAULT).sort()).toEqual(['In Progress', 'Todo'])
  })

  test('a team whose only started state is Doing (no review state) runs new issues in it', () => {
    const states: WorkflowState[] = [
      { id: 't', name: 'Todo', type: 'unstarted', position: 0 },
      { id: 'd', name: 'Doing', type: 'started', position: 1 },
      { id: 'x', name: 'Done', type: 'completed', position: 2 },
    ]
    expect(activeIn(states)).toEqual(['Todo', 'Doing'])
  })

  test('active_states name states in any case, and replace the default', () => {
    expect(activeIn(LINEAR_DEFAULT, ['in REVIEW'])).toEqual(['In Review'])
    expect(activeIn(LINEAR_DEFAULT, ['Nowhere', 'In Review'])).toEqual(['In Review'])
    expect(activeIn(LINEAR_DEFAULT, ['Backlog', 'In Progress']).sort()).toEqual(['Backlog', 'In Progress'])
  })

  test('active_states may name a state type instead: every state of that type runs', () => {
    const states: WorkflowState[] = [...LINEAR_DEFAULT, { id: 's-triage', name: 'Inbox', type: 'triage', position: 0 }]
    expect(activeIn(states, ['triage'])).toEqual(['Inbox'])
    expect(activeIn(states, ['started']).sort()).toEqual(['In Progress', 'In Review'])
  })

  test("isReviewState is true for the team's review state only", () => {
    expect(isReviewState(byName('In Review'), LINEAR_DEFAULT)).toBe(true)
    for (const name of ['In Progress', 'Todo', 'Done']) expect(isReviewState(byName(name), LINEAR_DEFAULT), name).toBe(false)
  })
})

describe('planIssue', () => {
  const a = agent()

  test('an issue the factory has never seen is queued as new', () => {
    expect(planIssue(undefined, issue(), VIEWER, a)).toEqual({ action: 'queue', reason: 'new', commentCount: 0 })
  })

  test('a released issue is queued as new again', () => {
    expect(planIssue(record('released'), issue(), VIEWER, a)).toMatchObject({ action: 'queue', reason: 'new' })
  })

  test('an issue cancelled by hand is not queued again by a poll, only by a human comment written after the cancel', () => {
    const held = { ...record('released', [{ commentsUpTo: '2025-01-03T00:00:00.000Z' }]), cancelledAt: '2025-01-05T00:00:00.000Z' }
    expect(planIssue(held, issue(), VIEWER, a)).toEqual({ action: 'skip', reason: 'cancelled' })
    const before = issue({ comments: [comment('b', '2025-01-04T00:00:00.000Z', RILEY)] })
    expect(planIssue(held, before, VIEWER, a)).toEqual({ action: 'skip', reason: 'cancelled' })
    const after = issue({ comments: [comment('c', '2025-01-06T00:00:00.000Z', RILEY)] })
    expect(planIssue(held, after, VIEWER, a)).toEqual({ action: 'queue', reason: 'comment', commentCount: 1 })
    // Moved out of the active states by a human: recorded as seen (moving it back runs it).
    expect(planIssue(held, issue({ state: LINEAR_DEFAULT[2]! }), VIEWER, a)).toEqual({ action: 'skip', reason: 'inactive_state' })
  })

  test('a completed or canceled issue is skipped', () => {
    for (const state of [LINEAR_DEFAULT[0]!, LINEAR_DEFAULT[5]!]) {
      expect(planIssue(undefined, issue({ state }), VIEWER, a)).toEqual({ action: 'skip', reason: 'closed' })
      expect(
        planIssue(record('done'), issue({ state, comments: [comment('c', '2025-02-01T00:00:00.000Z', RILEY)] }), VIEWER, a).action,
      ).toBe('skip')
    }
  })

  test('an issue assigned to someone else is not ours', () => {
    expect(planIssue(undefined, issue({ assigneeId: RILEY.id }), VIEWER, a)).toEqual({ action: 'skip', reason: 'not_ours' })
    expect(planIssue(undefined, issue({ assigneeId: null }), VIEWER, a)).toEqual({ action: 'skip', reason: 'not_ours' })
  })

  test('an issue delegated to the agent counts as ours even when a human is the assignee', () => {
    expect(planIssue(undefined, issue({ assigneeId: RILEY.id, delegateId: VIEWER }), VIEWER, a)).toMatchObject({
      action: 'queue',
      reason: 'new',
    })
  })

  test('an issue already being worked on is in flight, whatever its comments', () => {
    const busy = issue({ comments: [comment('c', '2025-02-01T00:00:00.000Z', RILEY)] })
    for (const phase of ['queued', 'claimed', 'running', 'reporting'] as const) {
      expect(planIssue(record(phase), busy, VIEWER, a), phase).toEqual({ action: 'skip', reason: 'in_flight' })
    }
  })

  test('a new human comment after the last run reruns a finished issue', () => {
    const rec = record('done', [{ commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    const it = issue({
      comments: [
        comment('old', '2025-01-05T00:00:00.000Z', RILEY),
        comment('new1', '2025-01-06T00:00:00.000Z', RILEY),
        comment('new2', '2025-01-07T00:00:00.000Z', MALLORY),
      ],
    })
    expect(planIssue(rec, it, VIEWER, a)).toEqual({ action: 'queue', reason: 'comment', commentCount: 2 })
  })

  test('a first comment on an issue whose first run had none reruns it', () => {
    const rec = record('done', [{}])
    expect(planIssue(rec, issue({ comments: [comment('c', '2025-01-06T00:00:00.000Z', RILEY)] }), VIEWER, a)).toMatchObject({
      action: 'queue',
      reason: 'comment',
    })
  })

  test('comments the last run already saw do not rerun it', () => {
    const rec = record('done', [{ commentsUpTo: '2025-01-03T00:00:00.000Z' }, { commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    const it = issue({ comments: [comment('a', '2025-01-04T00:00:00.000Z', RILEY), comment('b', '2025-01-05T00:00:00.000Z', RILEY)] })
    expect(planIssue(rec, it, VIEWER, a)).toEqual({ action: 'skip', reason: 'no_new_comments' })
  })

  test("the factory's own summary comment does not rerun the issue, by author", () => {
    const rec = record('done', [{ commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    const it = issue({ comments: [comment('ours', '2025-01-06T00:00:00.000Z', { id: VIEWER, name: 'Factory Agent' }, 'Run #1 finished.')] })
    expect(planIssue(rec, it, VIEWER, a)).toEqual({ action: 'skip', reason: 'no_new_comments' })
  })

  test("the marker counts only in the viewer's comments: anyone else carrying it (a quote) reruns the issue", () => {
    const rec = record('done', [{ commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    const body = `> Run #1 finished.\n>\n> _${COMMENT_MARKER}_\n\nNot quite: see above.`
    const ours = issue({ comments: [comment('ours', '2025-01-06T00:00:00.000Z', { id: VIEWER, name: 'Factory Agent' }, body)] })
    expect(planIssue(rec, ours, VIEWER, a)).toEqual({ action: 'skip', reason: 'no_new_comments' })
    for (const user of [{ id: 'integration-bot', name: 'Bot' }, null]) {
      const it = issue({ comments: [comment('quote', '2025-01-06T00:00:00.000Z', user, body)] })
      expect(planIssue(rec, it, VIEWER, a)).toEqual({ action: 'queue', reason: 'comment', commentCount: 1 })
    }
  })

  test('with allow_commenters only listed people can trigger a rerun', () => {
    const strict = agent(['Riley@Acme.com', 'user-someone-else'])
    const rec = record('done', [{ commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    const byMallory = issue({ comments: [comment('m', '2025-01-06T00:00:00.000Z', MALLORY)] })
    expect(planIssue(rec, byMallory, VIEWER, strict)).toEqual({ action: 'skip', reason: 'no_new_comments', ignoredComments: 1 })
    const byRiley = issue({
      comments: [comment('m', '2025-01-06T00:00:00.000Z', MALLORY), comment('r', '2025-01-07T00:00:00.000Z', RILEY)],
    })
    expect(planIssue(rec, byRiley, VIEWER, strict)).toEqual({ action: 'queue', reason: 'comment', commentCount: 1, ignoredComments: 1 })
  })

  test('an escalated issue waits for a human, and a new comment brings it back', () => {
    const rec = record('escalated', [{ status: 'failed', commentsUpTo: '2025-01-05T00:00:00.000Z' }])
    expect(planIssue(rec, issue(), VIEWER, a)).toEqual({ action: 'skip', reason: 'escalated' })
    const it = issue({ comments: [comment('r', '2025-01-06T00:00:00.000Z', RILEY)] })
    expect(planIssue(rec, it, VIEWER, a)).toMatchObject({ action: 'queue', reason: 'comment' })
  })
})

describe('lastCommentsUpTo', () => {
  test('is the newest commentsUpTo of any run, in any order', () => {
    const rec = record('done', [
      { commentsUpTo: '2025-01-03T00:00:00.000Z' },
      { commentsUpTo: '2025-01-09T00:00:00.000Z' },
      {},
      { commentsUpTo: '2025-01-04T00:00:00.000Z' },
    ])
    expect(lastCommentsUpTo(rec)).toBe('2025-01-09T00:00:00.000Z')
    expect(lastCommentsUpTo(record('done', [{}]))).toBeUndefined()
  })
})

describe('dispatchOrder', () => {
  test('urgent first, no priority last, then oldest, then identifier', () => {
    const mk = (identifier: string, priority: number, createdAt: string) => issue({ identifier, priority, createdAt })
    const list = [
      mk('ENG-1', 0, '2024-01-01T00:00:00.000Z'),
      mk('ENG-2', 3, '2025-01-01T00:00:00.000Z'),
      mk('ENG-3', 1, '2025-03-01T00:00:00.000Z'),
      mk('ENG-4', 4, '2024-06-01T00:00:00.000Z'),
      mk('ENG-5', 2, '2025-01-01T00:00:00.000Z'),
      mk('ENG-6', 1, '2025-02-01T00:00:00.000Z'),
      mk('ENG-8', 3, '2025-01-01T00:00:00.000Z'),
      mk('ENG-7', 3, '2025-01-01T00:00:00.000Z'),
    ]
    const order = [...list].sort(dispatchOrder).map((i) => i.identifier)
    expect(order).toEqual(['ENG-6', 'ENG-3', 'ENG-5', 'ENG-2', 'ENG-7', 'ENG-8', 'ENG-4', 'ENG-1'])
    expect(
      [...list]
        .reverse()
        .sort(dispatchOrder)
        .map((i) => i.identifier),
    ).toEqual(order)
  })

  test('identifiers compare by number when priority and age tie: ENG-9 before ENG-10', () => {
    const mk = (identifier: string) => issue({ identifier, priority: 2, createdAt: '2025-01-01T00:00:00.000Z' })
    const order = [mk('ENG-10'), mk('ENG-9'), mk('ENG-100')].sort(dispatchOrder).map((i) => i.identifier)
    expect(order).toEqual(['ENG-9', 'ENG-10', 'ENG-100'])
  })
})

describe('stableUuid', () => {
  const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  test('the same seed always gives the same UUID, in v4 layout', () => {
    for (const seed of ['a', 'rose-factory/tester/issue-1/run/1/summary', '', 'ünï']) {
      expect(stableUuid(seed)).toBe(stableUuid(seed))
      expect(stableUuid(seed)).toMatch(V4)
    }
  })

  test('each run of an issue writes its summary with its own id, and retries of a run reuse it', () => {
    const ids = Array.from({ length: 50 }, (_, i) => summaryCommentId('tester', 'issue-1', i + 1))
    expect(new Set(ids).size).toBe(50)
    for (const id of ids) expect(id).toMatch(V4)
    expect(summaryCommentId('tester', 'issue-1', 3)).toBe(ids[2]!)
  })

  test('the id differs per agent and per issue', () => {
    const base = summaryCommentId('tester', 'issue-1', 1)
    expect(summaryCommentId('other', 'issue-1', 1)).not.toBe(base)
    expect(summaryCommentId('tester', 'issue-2', 1)).not.toBe(base)
  })
})
