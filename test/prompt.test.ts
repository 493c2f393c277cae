import { afterEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildPrompt, COMMENT_MARKER, commenterAllowed, fitComments, humanComments, isFactoryComment } from '../lib/prompt.ts'
import { readState } from '../lib/state.ts'
import { normalizeIssue, type TrackerComment, type TrackerIssue } from '../lib/tracker/types.ts'
import { type Fixture, fixture, gitSync } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

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
  c('c3', 4, AGENT, `Run #1 finished.\n\n*${COMMENT_MARKER}*`),
  c('c4', 5, SAM, 'Customer asked for a version field too.'),
  c('c5', 6, RILEY, 'Also add a test.'),
]

describe('factory comments', () => {
  test('are recognised by author (the token viewer)', () => {
    expect(isFactoryComment(THREAD[1]!, VIEWER)).toBe(true)
    expect(isFactoryComment(THREAD[0]!, VIEWER)).toBe(false)
  })

  test('the marker counts only in comments the viewer wrote: anyone else quoting it is a human', () => {
    expect(isFactoryComment(THREAD[2]!, VIEWER)).toBe(true)
    const quote = c('q', 7, RILEY, `> Run #1 finished.\n> *${COMMENT_MARKER}*\n\nThis is wrong, see above.`)
    expect(isFactoryComment(quote, VIEWER)).toBe(false)
    expect(isFactoryComment(c('b', 7, { id: 'bot', name: 'Linear Bot' }, `**${COMMENT_MARKER}**`), VIEWER)).toBe(false)
    expect(humanComments(issue([...THREAD, quote]), VIEWER).map((x) => x.id)).toEqual(['c1', 'c4', 'c5', 'q'])
  })

  test('without a viewer id (nothing polled yet) the marker stands in for the author, even wrapped in Markdown', () => {
    expect(isFactoryComment(THREAD[1]!, undefined)).toBe(false)
    expect(isFactoryComment(THREAD[2]!, undefined)).toBe(true)
    expect(isFactoryComment(c('x', 7, null, `**${COMMENT_MARKER}** for ENG-42`), undefined)).toBe(true)
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

describe('edge data in the prompt', () => {
  test('a NUL in the title, description or a comment becomes U+FFFD: the prompt has no NUL byte', () => {
    const raw = issue([c('n', 7, RILEY, 'nul\u0000here')], { description: 'desc\u0000x' })
    const it = normalizeIssue({
      id: raw.id,
      identifier: raw.identifier,
      number: 42,
      title: 'Fix\u0000 the thing',
      description: 'desc\u0000x',
      url: raw.url,
      branchName: 'a\u0000b',
      priority: 0,
      createdAt: raw.createdAt,
      updatedAt: raw.updatedAt,
      state: raw.state,
      team: { ...raw.team, states: { nodes: raw.team.states } },
      labels: { nodes: [] },
      comments: { nodes: raw.comments },
    })
    const p = buildPrompt({ issue: it, branch: 'b', comments: humanComments(it, VIEWER) })
    expect(p).not.toContain('\u0000')
    expect(p).toContain('Fix\uFFFD the thing')
    expect(p).toContain('desc\uFFFDx')
    expect(p).toContain('nul\uFFFDhere')
  })
})

describe('the prompt size cap', () => {
  const many = Array.from({ length: 30 }, (_, i) => c(`m${i}`, 7, RILEY, `point ${i}: ${'x'.repeat(900)}`)).map((x, i) => ({
    ...x,
    createdAt: `2025-01-07T10:00:${String(i).padStart(2, '0')}.000Z`,
  }))

  test('keeps the newest comments that fit and says how many older ones were left out', () => {
    const p = buildPrompt({ issue: issue(many), branch: 'b', comments: humanComments(issue(many), VIEWER), maxCommentChars: 10_000 })
    const kept = many.filter((m) => p.includes(`${m.body.slice(0, 9)}`))
    expect(kept.length).toBeGreaterThan(5)
    expect(kept.length).toBeLessThan(30)
    expect(kept.at(-1)!.id).toBe('m29')
    expect(p).toContain(`(${30 - kept.length} earlier comments were left out to keep this prompt short`)
    expect(p).not.toContain('point 0:')
  })

  test('a single comment bigger than the cap is kept, cut, and nothing is said to be left out', () => {
    const huge = [c('h', 7, RILEY, `start ${'y'.repeat(50_000)} end`)]
    const { kept, dropped } = fitComments(huge, 5_000)
    expect(dropped).toBe(0)
    expect(kept[0]!.body.length).toBeLessThan(5_000)
    expect(kept[0]!.body).toContain('start ')
    expect(kept[0]!.body).not.toContain(' end')
  })

  test('comments the tracker did not keep are counted in the note', () => {
    const it = { ...issue(many.slice(-3)), commentsOmitted: 397 }
    const p = buildPrompt({ issue: it, branch: 'b', comments: humanComments(it, VIEWER) })
    expect(p).toContain('(397 earlier comments were left out')
    expect(p).toContain(it.url)
  })
})

describe('edge data through the pipeline', () => {
  test('an issue with a NUL and an escape in its title and branchName refs/heads/main runs on rose/eng-1 and never touches main', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'Fix\u0000 the \u001b[31mred\u001b[0m banner', assignee: 'agent@rose.test', branchName: 'refs/heads/main' },
      ],
    })
    const mainBefore = gitSync(['rev-parse', 'refs/heads/main'], fx.origin)
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.originBranches().sort()).toEqual(['main', 'rose/eng-1'])
    expect(gitSync(['rev-parse', 'refs/heads/main'], fx.origin)).toBe(mainBefore)
    expect(gitSync(['log', '-1', '--format=%s', 'rose/eng-1'], fx.origin)).toContain('Fix\uFFFD the')
    expect(res.stderr).not.toMatch(/[\u0000\u001b]/)
  }, 60_000)
})

describe('reviewer comments through the pipeline (console engine, sandbox)', () => {
  const ISSUE = { team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test' }
  const notes = (f: Fixture) => {
    const rec = Object.values(readState(join(f.home, 'state.json')).agents.tester!.issues)[0]!
    return readFileSync(join(rec.worktree!, 'FACTORY_NOTES.md'), 'utf8')
  }
  const once = async (f: Fixture) => {
    const res = await f.script('start', ['--once', '--config', f.configPath])
    expect(res.code, res.stderr).toBe(0)
    return res
  }

  test('25 reviewer comments between runs all reach the rerun prompt, and an idle tick is still one request', async () => {
    fx = await fixture({ issues: [ISSUE] })
    await once(fx)
    for (let i = 1; i <= 25; i++) fx.comment('ENG-1', 'riley@rose.test', `review point #${i}: please handle case ${i}.`)
    await once(fx)
    const text = notes(fx)
    for (let i = 1; i <= 25; i++) expect(text, `point ${i}`).toContain(`review point #${i}: please handle case ${i}.`)
    expect(text).not.toContain('left out')
    // Idle: nothing changed, so the tick is the poll alone.
    const before = fx.sandbox.stats().requests
    await once(fx)
    expect(fx.sandbox.stats().requests - before).toBe(1)
  }, 90_000)

  test('a first run on an issue with 500 comments says in the prompt how many were left out', async () => {
    const comments = Array.from({ length: 500 }, (_, i) => ({
      user: 'riley@rose.test',
      body: `old remark ${i + 1}.`,
      createdAt: new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString(),
    }))
    fx = await fixture({ issues: [{ ...ISSUE, comments }] })
    await once(fx)
    const text = notes(fx)
    expect(text).toContain('old remark 500.')
    const kept = comments.filter((x) => text.includes(`old remark ${x.body.slice(11)}`)).length
    expect(kept).toBeGreaterThan(0)
    expect(kept).toBeLessThan(500)
    expect(text).toContain(`(${500 - kept} earlier comments were left out`)
    expect(text).not.toContain('old remark 1.\n')
  }, 90_000)

  test("a human quoting the factory's comment (marker included) reruns the issue and reaches the prompt; the factory's own never do", async () => {
    fx = await fixture({ issues: [ISSUE] })
    await once(fx)
    const ours = fx.issue('ENG-1').comments.find((x) => x.body.includes(COMMENT_MARKER))!
    const firstNotes = notes(fx)
    // The factory's own comment, by author, changed nothing: an idle tick runs nothing.
    await once(fx)
    expect(notes(fx)).toBe(firstNotes)
    fx.comment(
      'ENG-1',
      'riley@rose.test',
      `> ${ours.body.split('\n').join('\n> ')}\n\nThis quote is wrong: the check must return 503 when the DB is down.`,
    )
    await once(fx)
    const text = notes(fx)
    expect(text).toContain('the check must return 503 when the DB is down.')
    expect(text).toContain(COMMENT_MARKER)
    // Only the reviewer's comment, not the factory's summary itself (which has no quote prefix).
    expect(text.split('\n').filter((l) => l.includes(COMMENT_MARKER) && !l.startsWith('>'))).toEqual([])
    expect(
      fx
        .issue('ENG-1')
        .comments.filter((x) => x.body.includes(COMMENT_MARKER) && /Run #\d+ finished/.test(x.body) && !x.body.startsWith('>')),
    ).toHaveLength(2)
  }, 90_000)
})
