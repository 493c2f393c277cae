import { describe, expect, test } from 'bun:test'
import { buildPrompt, COMMENT_MARKER, commenterAllowed, humanComments, isFactoryComment } from '../lib/prompt.ts'
import { normalizeIssue, type TrackerComment, type TrackerIssue } from '../lib/tracker/types.ts'

const VIEWER = 'user-agent'
const AGENT = { id: VIEWER, name: 'Factory Agent', email: 'agent@acme.com' }
const RILEY = { id: 'user-riley', name: 'Riley Reviewer', email: 'Riley@Acme.com' }
const SAM = { id: 'user-sam', name: 'Sam Support', email: null }

/** An issue as Linear returns it (comments newest first), normalized like the tracker does. */
function issue(comments: TrackerComment[], over: { description?: string | null; labels?: string[] } = {}): TrackerIssue {
  const states = [{ id: 's1', name: 'In Progress', type: 'started', position: 1 }]
  return normalizeIssue({
    id: 'issue-1',
    identifier: 'ENG-42',
    number: 42,
    title: 'Add a health check endpoint',
    description: over.description === undefined ? 'GET /healthz should answer 200 with {"ok":true}.\n' : over.description,
    url: 'https://linear.app/acme/issue/ENG-42/add-a-health-check-endpoint',
    branchName: 'agent/eng-42-add-a-health-check-endpoint',
    priority: 2,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-09T00:00:00.000Z',
    state: states[0]!,
    team: { id: 't1', key: 'ENG', states: { nodes: states } },
    labels: { nodes: (over.labels ?? ['backend', 'good first issue']).map((name) => ({ name })) },
    assignee: { id: VIEWER },
    delegate: null,
    comments: { nodes: [...comments].reverse() },
  })
}

const c = (id: string, day: number, user: TrackerComment['user'], body: string): TrackerComment => ({
  id,
  body,
  createdAt: `2025-01-0${day}T10:00:00.000Z`,
  user,
})

const THREAD = [
  c('c1', 2, RILEY, 'Please reuse the existing router.'),
  c('c2', 3, AGENT, 'Run #1 finished. Added /healthz.'),
  c('c3', 4, { id: 'bot', name: 'Linear Bot' }, `Run #1 finished.\n\n*${COMMENT_MARKER}*`),
  c('c4', 5, SAM, 'Customer asked for a version field too.'),
  c('c5', 6, RILEY, 'Also add a test.'),
]

describe('factory comments', () => {
  test('are recognised by author (the token viewer)', () => {
    expect(isFactoryComment(THREAD[1]!, VIEWER)).toBe(true)
    expect(isFactoryComment(THREAD[0]!, VIEWER)).toBe(false)
  })

  test('are recognised by the marker, whoever Linear lists as the author, even wrapped in Markdown', () => {
    expect(isFactoryComment(THREAD[2]!, VIEWER)).toBe(true)
    expect(isFactoryComment(THREAD[2]!, undefined)).toBe(true)
    expect(isFactoryComment(c('x', 7, null, `**${COMMENT_MARKER}** for ENG-42`), undefined)).toBe(true)
  })

  test('without a viewer id only the marker counts', () => {
    expect(isFactoryComment(THREAD[1]!, undefined)).toBe(false)
  })

  test('are never part of the human comments', () => {
    const ids = humanComments(issue(THREAD), VIEWER).map((x) => x.id)
    expect(ids).toEqual(['c1', 'c4', 'c5'])
  })
})

describe('humanComments', () => {
  test('are oldest first even when Linear lists them newest first', () => {
    const times = humanComments(issue(THREAD), VIEWER).map((x) => x.createdAt)
    expect(times).toEqual([...times].sort())
  })

  test('keep only comments strictly newer than since', () => {
    expect(humanComments(issue(THREAD), VIEWER, THREAD[3]!.createdAt).map((x) => x.id)).toEqual(['c5'])
    expect(humanComments(issue(THREAD), VIEWER, '2025-01-03T00:00:00.000Z').map((x) => x.id)).toEqual(['c4', 'c5'])
    expect(humanComments(issue(THREAD), VIEWER, '2025-02-01T00:00:00.000Z')).toEqual([])
  })

  test('an allow-list keeps commenters listed by user id', () => {
    expect(humanComments(issue(THREAD), VIEWER, undefined, ['user-sam']).map((x) => x.id)).toEqual(['c4'])
  })

  test('an allow-list keeps commenters listed by email, whatever the case on either side', () => {
    expect(humanComments(issue(THREAD), VIEWER, undefined, ['riley@acme.com']).map((x) => x.id)).toEqual(['c1', 'c5'])
    expect(humanComments(issue(THREAD), VIEWER, undefined, ['RILEY@ACME.COM']).map((x) => x.id)).toEqual(['c1', 'c5'])
  })

  test('an empty or absent allow-list lets anyone steer; a listed name never admits the factory itself', () => {
    expect(humanComments(issue(THREAD), VIEWER, undefined, []).map((x) => x.id)).toEqual(['c1', 'c4', 'c5'])
    expect(humanComments(issue(THREAD), VIEWER, undefined, [VIEWER, 'agent@acme.com']).map((x) => x.id)).toEqual([])
  })

  test('a comment whose author is unknown is refused by an allow-list', () => {
    const anon = c('a', 7, null, 'who am I?')
    expect(commenterAllowed(anon, ['riley@acme.com'])).toBe(false)
    expect(commenterAllowed(anon, undefined)).toBe(true)
    expect(commenterAllowed(c('s', 7, SAM, 'x'), ['null', 'undefined', ''])).toBe(false)
  })
})

describe('buildPrompt', () => {
  const it = issue(THREAD)
  const first = buildPrompt({ issue: it, branch: 'agent/eng-42-add-a-health-check-endpoint', comments: humanComments(it, VIEWER) })

  test('a first-run prompt has the title, url, branch, labels and description', () => {
    expect(first).toContain('ENG-42: Add a health check endpoint')
    expect(first).toContain('URL: https://linear.app/acme/issue/ENG-42/add-a-health-check-endpoint')
    expect(first).toContain('Branch: agent/eng-42-add-a-health-check-endpoint')
    expect(first).toContain('Labels: backend, good first issue')
    expect(first).toContain('GET /healthz should answer 200 with {"ok":true}.')
  })

  test('it lists the human comments oldest first, with who wrote them and when', () => {
    const order = ['Please reuse the existing router.', 'Customer asked for a version field too.', 'Also add a test.'].map((b) =>
      first.indexOf(b),
    )
    expect(order.every((i) => i > 0)).toBe(true)
    expect(order).toEqual([...order].sort((x, y) => x - y))
    expect(first).toContain(`Riley Reviewer at ${THREAD[0]!.createdAt}`)
    expect(first.indexOf('## Description')).toBeLessThan(order[0]!)
  })

  test("it never contains the factory's own comments", () => {
    expect(first).not.toContain('Run #1 finished')
    expect(first).not.toContain(COMMENT_MARKER)
  })

  test('an issue without description, labels or comments says so plainly', () => {
    const bare = issue([], { description: null, labels: [] })
    const p = buildPrompt({ issue: bare, branch: 'b', comments: [] })
    expect(p).toContain('(no description)')
    expect(p).not.toContain('Labels:')
    expect(p).not.toContain('## Comments')
  })

  test('a rerun prompt quotes the previous summary and lists only the new comments', () => {
    const since = THREAD[3]!.createdAt
    const rerun = buildPrompt({
      issue: it,
      branch: 'agent/eng-42-add-a-health-check-endpoint',
      comments: humanComments(it, VIEWER, since),
      previous: { n: 1, summary: 'Added /healthz.\nTests pass.' },
    })
    expect(rerun).toContain('ENG-42')
    expect(rerun).toContain('#1')
    expect(rerun).toContain('> Added /healthz.\n> Tests pass.')
    expect(rerun).toContain('Also add a test.')
    expect(rerun).not.toContain('Please reuse the existing router.')
    expect(rerun).not.toContain('Customer asked for a version field too.')
    expect(rerun).not.toContain(COMMENT_MARKER)
  })

  test('a rerun without new comments asks the engine to continue', () => {
    const p = buildPrompt({ issue: it, branch: 'b', comments: [], previous: { n: 2 } })
    expect(p).toContain('(no summary)')
    expect(p).toContain('continue the work')
  })

  test('the same input always gives the same text', () => {
    const again = buildPrompt({
      issue: issue(THREAD),
      branch: 'agent/eng-42-add-a-health-check-endpoint',
      comments: humanComments(issue(THREAD), VIEWER),
    })
    expect(again).toBe(first)
    expect(first.endsWith('\n')).toBe(true)
  })
})
