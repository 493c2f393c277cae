/**
 * The Linear sandbox over HTTP: the factory's documents through the real @linear/sdk, filters,
 * auth, idempotent comments, faults, complexity, persistence, the admin API and the CLI.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LinearClient, RatelimitedLinearError } from '@linear/sdk'
import { validateIssueFilter } from '../lib/sandbox/filter.ts'
import { startSandbox, type Sandbox, type SandboxSeed } from '../lib/sandbox/server.ts'
import {
  ATTACH_URL_MUTATION,
  COMMENT_CREATE_MUTATION,
  COMMENT_QUERY,
  ISSUE_MOVE_MUTATION,
  ISSUE_QUERY,
  POLL_PAGE,
  POLL_QUERY,
} from '../lib/tracker/documents.ts'
import { normalizeIssue, rawIssueSchema } from '../lib/tracker/types.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = join(root, 'test/fixtures/sandbox-seed.json')
const SEED = JSON.parse(readFileSync(fixture, 'utf8')) as SandboxSeed
const AGENT = 'lin_api_test_agent'
const T0 = Date.parse('2025-03-01T12:00:00.000Z')
const PAGE = {
  commentsFirst: POLL_PAGE.comments,
  statesFirst: POLL_PAGE.states,
  labelsFirst: POLL_PAGE.labels,
  watchFilter: { id: { in: [] } },
  watchFirst: 0,
}
const MINE = { or: [{ assignee: { isMe: { eq: true } } }, { delegate: { isMe: { eq: true } } }] }
const OPEN = { state: { type: { nin: ['completed', 'canceled'] } } }

let now = T0
let sb: Sandbox
let dir: string

beforeEach(async () => {
  now = T0
  dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'))
  sb = await startSandbox({ seed: SEED, clock: () => now, dataPath: join(dir, 'data.json') })
})

afterEach(async () => {
  await sb.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** POST a document with plain fetch (status and headers visible even for errors). */
async function gql(query: string, variables: Record<string, unknown> = {}, key: string | null = AGENT, url = sb.url) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key === null ? {} : { Authorization: key }) },
    body: JSON.stringify({ query, variables }),
  })
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body }
}

const poll = (filter: unknown, extra: Record<string, unknown> = {}) =>
  gql(POLL_QUERY, { filter, first: POLL_PAGE.issues, ...PAGE, ...extra })
const idents = (r: { body: any }) => (r.body.data.issues.nodes as { identifier: string }[]).map((n) => n.identifier)
const admin = (path: string, body?: unknown) =>
  fetch(`${sb.baseUrl}/_sandbox/${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({
    status: r.status,
    body: (await r.json()) as any,
  }))
const issueId = (ident: string) => sb.store.issue(ident)!.id

describe('the Linear sandbox serving the factory documents', () => {
  test("serves the poll document through the real @linear/sdk and returns the issues assigned or delegated to the key's user", async () => {
    const client = new LinearClient({ apiKey: AGENT, apiUrl: sb.url })
    const res = await client.client.rawRequest<any, Record<string, unknown>>(POLL_QUERY, {
      filter: { ...MINE, ...OPEN },
      first: POLL_PAGE.issues,
      ...PAGE,
    })
    expect(res.status).toBe(200)
    expect(res.data.viewer.name).toBe('Factory Agent')
    const issues = (res.data.issues.nodes as unknown[]).map((raw) => normalizeIssue(rawIssueSchema.parse(raw)))
    expect(issues.map((i) => i.identifier)).toEqual(['OPS-1', 'ENG-2', 'ENG-1'])
    const eng1 = issues.find((i) => i.identifier === 'ENG-1')!
    expect(eng1.branchName).toBe('agent/eng-1-add-a-health-check-endpoint')
    expect(eng1.url).toBe(`${sb.baseUrl}/rose-test/issue/ENG-1/add-a-health-check-endpoint`)
    expect(eng1.state).toMatchObject({ name: 'Todo', type: 'unstarted' })
    expect(eng1.team.states.map((s) => s.name)).toEqual(['Backlog', 'Todo', 'In Progress', 'In Review', 'Done', 'Canceled'])
    expect(eng1.labels).toEqual(['api', 'backend'])
    expect(eng1.comments.map((c) => c.body)).toEqual(['Use the existing router.', 'On it.'])
    expect(eng1.comments[0]!.user).toMatchObject({ email: 'riley@rose.test' })
    expect(issues.find((i) => i.identifier === 'OPS-1')!.state.name).toBe('Ready')
    expect(res.data.issues.pageInfo.hasNextPage).toBe(false)
  })

  test("reads one issue by identifier or id, and answers a missing one with HTTP 200 and Linear's 'Entity not found: Issue'", async () => {
    const byKey = await gql(ISSUE_QUERY, { id: 'ENG-2', ...PAGE })
    expect(byKey.body.data.issue).toMatchObject({
      identifier: 'ENG-2',
      delegate: { name: 'Factory Agent' },
      state: { name: 'In Progress' },
    })
    const byId = await gql(ISSUE_QUERY, { id: issueId('ENG-2'), ...PAGE })
    expect(byId.body.data.issue.identifier).toBe('ENG-2')
    const missing = await gql(ISSUE_QUERY, { id: 'ENG-404', ...PAGE })
    expect(missing.status).toBe(200)
    expect(missing.body.data).toBeNull()
    expect(missing.body.errors[0]).toMatchObject({
      message: 'Entity not found: Issue',
      extensions: { code: 'INVALID_INPUT', type: 'invalid input' },
    })
  })

  test('finds issues changed since a cursor by updatedAt, and by a newer comment that does not bump updatedAt', async () => {
    now = Date.parse('2025-03-02T00:00:00.000Z')
    const cursor = new Date(now).toISOString()
    const changed = {
      ...MINE,
      and: [{ or: [{ updatedAt: { gt: cursor } }, { comments: { some: { createdAt: { gt: cursor }, user: { isMe: { eq: false } } } } }] }],
    }
    expect(idents(await poll(changed))).toEqual([])

    now += 60_000
    const before = sb.store.issue('ENG-1')!.updatedAt
    expect((await admin('comment', { issue: 'ENG-1', user: 'riley@rose.test', body: 'Please add tests' })).status).toBe(200)
    expect(sb.store.issue('ENG-1')!.updatedAt).toBe(before)
    expect(idents(await poll(changed))).toEqual(['ENG-1'])
    expect(idents(await poll({ ...MINE, updatedAt: { gt: cursor } }))).toEqual([])

    // Our own comment does not count (user.isMe eq false); an update bumps updatedAt.
    await gql(COMMENT_CREATE_MUTATION, { id: crypto.randomUUID(), issueId: 'ENG-2', body: 'Working on it' })
    expect(idents(await poll(changed))).toEqual(['ENG-1'])
    const inProgress = sb.store.teamStates(sb.store.issue('ENG-2')!.teamId).find((s) => s.name === 'In Review')!
    await gql(ISSUE_MOVE_MUTATION, { id: 'ENG-2', stateId: inProgress.id })
    expect(idents(await poll(changed))).toEqual(['ENG-2', 'ENG-1'])
  })

  test('evaluates durations like -PT15M and -P1DT1H relative to the sandbox clock', async () => {
    now = Date.parse('2024-06-05T09:10:00.000Z')
    expect(idents(await poll({ createdAt: { gt: '-PT15M', lte: 'PT15M' } }))).toEqual(['OPS-1'])
    expect(idents(await poll({ createdAt: { gte: '-P1DT1H', lt: '-PT15M' } }))).toEqual(['ENG-4'])
    const bad = await poll({ updatedAt: { gt: 'yesterday' } })
    expect(bad.status).toBe(400)
    expect(bad.body.errors[0].message).toContain('Invalid DateTimeOrDuration "yesterday"')
  })

  test('filters by state type and name, team key, issue id, assignee email and a null assignee', async () => {
    expect(idents(await poll({ state: { type: { in: ['started'] } } }))).toEqual(['ENG-2'])
    expect(idents(await poll({ state: { name: { eq: 'Done' } } }))).toEqual(['ENG-4'])
    expect(idents(await poll({ team: { key: { eq: 'OPS' } } }))).toEqual(['OPS-1'])
    expect(idents(await poll({ id: { in: [issueId('ENG-3'), issueId('ENG-5')] } }))).toEqual(['ENG-5', 'ENG-3'])
    expect(idents(await poll({ assignee: { email: { eq: 'sam@rose.test' } } }))).toEqual(['ENG-3'])
    expect(idents(await poll({ assignee: { null: true } }))).toEqual(['ENG-5'])
    expect(idents(await poll({ delegate: { id: { eq: sb.store.userByEmail('agent@rose.test')!.id } } }))).toEqual(['ENG-2'])
  })

  test('rejects filter fields it does not evaluate, naming the field, instead of ignoring them', async () => {
    const viaVariable = await poll({ ...MINE, priority: { eq: 1 } })
    expect(viaVariable.status).toBe(400)
    expect(viaVariable.body.errors[0].message).toContain('Field "priority" is not defined by type "IssueFilter"')
    const viaComparator = await poll({ state: { name: { contains: 'Do' } } })
    expect(viaComparator.body.errors[0].message).toContain('"contains"')
    const literal = await gql('query { issues(filter: { labels: { name: { eq: "x" } } }) { nodes { id } } }')
    expect(literal.status).toBe(400)
    expect(literal.body.errors[0]).toMatchObject({ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })
    expect(literal.body.errors[0].message).toContain('labels')
    // The evaluator guards on its own too (for a field the SDL might gain without an evaluator).
    expect(() => validateIssueFilter({ or: [{ labels: {} }] })).toThrow('Unsupported filter field "labels" at filter.or[0]')
  })

  test('pages through issues with opaque cursors, newest updatedAt first', async () => {
    const seen: string[] = []
    let after: string | null = null
    for (let page = 0; page < 10; page++) {
      const r = await poll({}, { first: 2, after })
      seen.push(...idents(r))
      const info = r.body.data.issues.pageInfo
      if (!info.hasNextPage) break
      expect(info.endCursor).not.toContain('ENG')
      after = info.endCursor
    }
    expect(seen).toEqual(['ENG-5', 'OPS-1', 'ENG-4', 'ENG-3', 'ENG-2', 'ENG-1'])
    const bad = await poll({}, { after: 'not-a-cursor' })
    expect(bad.body.errors[0].message).toContain('Invalid cursor')
  })

  test('nested connections honour first and last, comments newest first and states by position', async () => {
    const r = await gql(ISSUE_QUERY, { id: 'ENG-1', commentsFirst: 1, statesFirst: 2, labelsFirst: 1 })
    const issue = r.body.data.issue
    expect(issue.comments.nodes.map((c: any) => c.body)).toEqual(['On it.'])
    expect(issue.team.states.nodes.map((s: any) => s.name)).toEqual(['Backlog', 'Todo'])
    expect(issue.labels.nodes).toEqual([{ name: 'api' }])
    const last = await gql('query($id: String!) { issue(id: $id) { comments(last: 1) { nodes { body } pageInfo { hasPreviousPage } } } }', {
      id: 'ENG-1',
    })
    expect(last.body.data.issue.comments).toEqual({ nodes: [{ body: 'Use the existing router.' }], pageInfo: { hasPreviousPage: true } })
  })
})

describe('the Linear sandbox writes', () => {
  test("refuses a missing or unknown API key with Linear's authentication error, and accepts a Bearer token", async () => {
    for (const key of [null, 'lin_api_nope']) {
      const r = await gql('{ viewer { id } }', {}, key)
      expect(r.status).toBe(400)
      expect(r.body.errors[0]).toMatchObject({
        message: 'Authentication required, not authenticated',
        extensions: { code: 'AUTHENTICATION_ERROR', type: 'authentication error' },
      })
      expect(r.headers.get('x-ratelimit-requests-limit')).toBe('2500')
    }
    const bearer = await gql('{ viewer { name } }', {}, 'Bearer lin_api_test_riley')
    expect(bearer.body.data.viewer.name).toBe('Riley Reviewer')
  })

  test('a duplicate client-chosen comment id is refused with HTTP 200 and nothing is duplicated', async () => {
    const id = crypto.randomUUID()
    const first = await gql(COMMENT_CREATE_MUTATION, { id, issueId: 'ENG-1', body: 'Summary: done' })
    expect(first.body.data.commentCreate).toEqual({ success: true, comment: { id } })
    const again = await gql(COMMENT_CREATE_MUTATION, { id, issueId: issueId('ENG-1'), body: 'Summary: done' })
    expect(again.status).toBe(200)
    expect(again.body.data).toBeNull()
    expect(again.body.errors[0]).toMatchObject({
      message: `Comment with id ${id} already exists`,
      extensions: { code: 'INVALID_INPUT', type: 'invalid input' },
    })
    expect(sb.store.data.comments.filter((c) => c.id === id)).toHaveLength(1)
    const found = await gql(COMMENT_QUERY, { id })
    expect(found.body.data.comment).toEqual({ id, issue: { id: issueId('ENG-1') } })
    expect(sb.store.user(sb.store.comment(id)!.userId)!.email).toBe('agent@rose.test')
    const missing = await gql(COMMENT_QUERY, { id: crypto.randomUUID() })
    expect(missing.body.errors[0].message).toBe('Entity not found: Comment')
  })

  test('issueUpdate moves an issue and bumps updatedAt; a state of another team or an unsupported input field is refused', async () => {
    const done = sb.store.teamStates(sb.store.issue('ENG-1')!.teamId).find((s) => s.name === 'Done')!
    now += 1000
    const r = await gql(ISSUE_MOVE_MUTATION, { id: 'ENG-1', stateId: done.id })
    expect(r.body.data.issueUpdate).toEqual({
      success: true,
      issue: { id: issueId('ENG-1'), state: { id: done.id, name: 'Done', type: 'completed' } },
    })
    expect(sb.store.issue('ENG-1')!.updatedAt).toBe(new Date(now).toISOString())
    const foreign = await gql(ISSUE_MOVE_MUTATION, { id: 'OPS-1', stateId: done.id })
    expect(foreign.body.errors[0].message).toContain("is not a workflow state of the issue's team")
    const extra = await gql('mutation { issueUpdate(id: "ENG-1", input: { estimate: 3 }) { success } }')
    expect(extra.status).toBe(400)
    expect(extra.body.errors[0].message).toContain('Field "estimate" is not defined by type "IssueUpdateInput"')
  })

  test('attachmentLinkURL creates one attachment per url and issue and updates it on a repeat', async () => {
    const vars = { issueId: 'ENG-1', url: 'https://github.com/o/r/pull/1', title: 'PR #1' }
    expect((await gql(ATTACH_URL_MUTATION, vars)).body.data.attachmentLinkURL).toEqual({ success: true })
    expect((await gql(ATTACH_URL_MUTATION, { ...vars, title: 'PR #1 (updated)' })).body.data.attachmentLinkURL).toEqual({ success: true })
    expect(sb.store.data.attachments.map((a) => a.title)).toEqual(['PR #1 (updated)'])
  })

  test('every write gets a distinct, strictly increasing timestamp even with a frozen clock', async () => {
    const stamps: string[] = []
    for (let i = 0; i < 5; i++) {
      await gql(COMMENT_CREATE_MUTATION, { id: crypto.randomUUID(), issueId: 'ENG-1', body: `note ${i}` })
      stamps.push(sb.store.data.comments.at(-1)!.createdAt)
    }
    expect(new Set(stamps).size).toBe(5)
    expect([...stamps].sort()).toEqual(stamps)
  })
})

describe('the Linear sandbox faults and limits', () => {
  test('a ratelimited fault answers HTTP 400 RATELIMITED with the reset headers, refuses every request until the reset, then recovers', async () => {
    sb.setFaults({ failNext: 1, kinds: ['ratelimited'], resetMs: 5000 })
    const client = new LinearClient({ apiKey: AGENT, apiUrl: sb.url })
    const err = await client.client.rawRequest('{ viewer { id } }').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RatelimitedLinearError)
    expect((err as RatelimitedLinearError).requestsResetAt).toBe(T0 + 5000)
    expect((err as RatelimitedLinearError).requestsRemaining).toBe(0)
    now += 4999
    const during = await gql(COMMENT_CREATE_MUTATION, { id: crypto.randomUUID(), issueId: 'ENG-1', body: 'x' })
    expect(during.status).toBe(400)
    expect(during.body.errors[0].extensions).toMatchObject({ code: 'RATELIMITED', type: 'ratelimited' })
    expect(during.headers.get('x-ratelimit-requests-remaining')).toBe('0')
    expect(during.headers.get('x-ratelimit-requests-reset')).toBe(String(T0 + 5000))
    expect(sb.store.data.comments).toHaveLength(2)
    now += 1
    expect((await gql('{ viewer { id } }')).status).toBe(200)
    expect(sb.stats()).toMatchObject({ requests: 3, faultsInjected: 1, requestsDuringRateLimit: 1 })
  })

  test('a 5xx fault answers 503 with a plain body and mutates nothing', async () => {
    sb.setFaults({ failNext: 1, kinds: ['5xx'] })
    const r = await gql(COMMENT_CREATE_MUTATION, { id: crypto.randomUUID(), issueId: 'ENG-1', body: 'x' })
    expect(r.status).toBe(503)
    expect(r.headers.get('content-type')).toStartWith('text/plain')
    expect(sb.store.data.comments).toHaveLength(2)
    expect((await gql('{ viewer { id } }')).status).toBe(200)
  })

  test('failNext fails exactly the next N requests, taking the kinds in turn (timeout drops the connection)', async () => {
    sb.setFaults({ failNext: 3, kinds: ['5xx', 'timeout'], hangMs: 50 })
    expect((await gql('{ viewer { id } }')).status).toBe(503)
    expect(
      await gql('{ viewer { id } }').then(
        () => 'answered',
        () => 'dropped',
      ),
    ).toBe('dropped')
    expect((await gql('{ viewer { id } }')).status).toBe(503)
    expect((await gql('{ viewer { id } }')).status).toBe(200)
    expect(sb.stats().faultsInjected).toBe(3)
  })

  test('a fault rate with a seed injects the same faults on every run', async () => {
    const run = async () => {
      sb.setFaults({ rate: 0.5, seed: 42, kinds: ['5xx'] })
      const out: number[] = []
      for (let i = 0; i < 12; i++) out.push((await gql('{ viewer { id } }')).status)
      return out
    }
    const a = await run()
    expect(await run()).toEqual(a)
    expect(a).toContain(503)
    expect(a).toContain(200)
  })

  test('latencyMs delays every /graphql response but not the admin API', async () => {
    sb.setFaults({ latencyMs: 150 })
    let t = performance.now()
    await gql('{ viewer { id } }')
    expect(performance.now() - t).toBeGreaterThanOrEqual(140)
    t = performance.now()
    await admin('stats')
    expect(performance.now() - t).toBeLessThan(140)
  })

  test("sends Linear's rate-limit and complexity headers and counts operations and complexity in the stats", async () => {
    const r = await poll(MINE)
    expect(r.headers.get('x-complexity')).toBe('4819')
    expect(r.headers.get('x-ratelimit-requests-remaining')).toBe('2499')
    expect(r.headers.get('x-ratelimit-requests-reset')).toBe(String(T0 + 3_600_000))
    expect(r.headers.get('x-ratelimit-complexity-remaining')).toBe(String(3_000_000 - 4819))
    expect(r.headers.get('x-ratelimit-complexity-limit')).toBe('3000000')
    expect(r.headers.get('x-ratelimit-complexity-reset')).toBe(String(T0 + 3_600_000))
    await gql(COMMENT_CREATE_MUTATION, { id: crypto.randomUUID(), issueId: 'ENG-1', body: 'x' })
    expect(sb.stats()).toMatchObject({
      requests: 2,
      queries: 1,
      mutations: 1,
      byOperation: { FactoryPoll: 1, FactoryCommentCreate: 1 },
      complexity: { max: 4819 },
    })
    sb.resetStats()
    expect(sb.stats().requests).toBe(0)
  })

  test('rejects a query over 10,000 complexity points with QUERY_TOO_COMPLEX naming its cost', async () => {
    const r = await poll(MINE, { first: 100, commentsFirst: 50 })
    expect(r.status).toBe(400)
    expect(r.body.errors[0].extensions.code).toBe('QUERY_TOO_COMPLEX')
    expect(r.body.errors[0].message).toMatch(/complexity is \d{5,}, the maximum is 10000/)
    expect(Number(r.headers.get('x-complexity'))).toBeGreaterThan(10_000)
  })

  test('a spent per-user request budget is refused as ratelimited until its window resets', async () => {
    await sb.stop()
    sb = await startSandbox({ seed: SEED, clock: () => now, limits: { requests: 2, windowMs: 1000 } })
    expect((await gql('{ viewer { id } }')).status).toBe(200)
    expect((await gql('{ viewer { id } }')).headers.get('x-ratelimit-requests-remaining')).toBe('0')
    const refused = await gql('{ viewer { id } }')
    expect(refused.body.errors[0].extensions.code).toBe('RATELIMITED')
    expect((await gql('{ viewer { id } }', {}, 'lin_api_test_riley')).status).toBe(200)
    now += 1000
    expect((await gql('{ viewer { id } }')).status).toBe(200)
  })
})

describe('the Linear sandbox data file, admin API and CLI', () => {
  test('keeps its data across a restart through the data file, written atomically', async () => {
    const id = crypto.randomUUID()
    await gql(COMMENT_CREATE_MUTATION, { id, issueId: 'ENG-1', body: 'persist me' })
    await sb.stop()
    sb = await startSandbox({ dataPath: join(dir, 'data.json'), clock: () => now })
    expect(sb.source).toBe('file')
    expect((await gql(COMMENT_QUERY, { id })).body.data.comment.id).toBe(id)
    expect(readdirSync(dir)).toEqual(['data.json'])
    // A seed does not overwrite an existing file unless asked to.
    await sb.stop()
    sb = await startSandbox({ dataPath: join(dir, 'data.json'), seed: { teams: [{ key: 'X', name: 'X' }], users: [] } })
    expect(sb.store.comment(id)).toBeDefined()
  })

  test('a corrupt data file is an error naming its path, and the file is left as it was', async () => {
    const path = join(dir, 'corrupt.json')
    writeFileSync(path, '{"version": 1, "teams": [')
    await expect(startSandbox({ dataPath: path })).rejects.toThrow(`sandbox data file ${path} is corrupt`)
    expect(readFileSync(path, 'utf8')).toBe('{"version": 1, "teams": [')
  })

  test('the admin endpoints seed, show data, comment, assign, move, set faults and report stats; bad input names the field', async () => {
    const seeded = await admin('seed', {
      teams: [{ key: 'APP', name: 'App' }],
      users: [{ name: 'Ann', email: 'ann@x.io', apiKey: 'lin_api_ann_key' }],
      issues: [{ team: 'APP', title: 'One' }],
    })
    expect(seeded.body).toMatchObject({ ok: true, teams: ['APP'], issues: 1 })
    expect((await admin('data')).body.issues).toHaveLength(1)
    expect((await admin('assign', { issue: 'APP-1', assignee: 'ann@x.io' })).body.issue.assigneeId).toBe(
      sb.store.userByEmail('ann@x.io')!.id,
    )
    expect((await admin('assign', { issue: 'APP-1', assignee: null })).body.issue.assigneeId).toBeNull()
    expect((await admin('move', { issue: 'APP-1', state: 'in progress' })).body.issue.stateId).toBe(
      sb.store.teamStates(sb.store.issue('APP-1')!.teamId)[2]!.id,
    )
    expect((await admin('comment', { issue: 'APP-1', user: 'ann@x.io', body: 'hi' })).body.comment.body).toBe('hi')
    expect((await admin('faults', { failNext: 1 })).body.faults).toEqual({ failNext: 1 })
    expect((await admin('faults', { off: true })).body.faults).toEqual({})
    expect((await admin('stats')).body).toMatchObject({ requests: 0, faultsInjected: 0 })
    expect((await admin('stats/reset', {})).body.ok).toBe(true)

    const bad: [string, unknown, string][] = [
      ['seed', { teams: [{ key: 'lower', name: 'x' }], users: [] }, 'seed.teams.0.key'],
      [
        'seed',
        { teams: [{ key: 'A', name: 'A' }], users: [], issues: [{ team: 'A', title: 't', assignee: 'who@x.io' }] },
        'issues.0.assignee',
      ],
      ['comment', { issue: 'APP-1', user: 'nobody@x.io', body: 'x' }, '"user"'],
      ['assign', { issue: 'APP-99', assignee: 'ann@x.io' }, '"issue"'],
      ['move', { issue: 'APP-1', state: 'Nope' }, '"state": Nope is not a state'],
      ['faults', { rate: 2 }, 'faults.rate'],
      ['faults', { kinds: ['boom'] }, 'boom'],
      ['faults', { bogus: 1 }, 'unknown faults field "bogus"'],
    ]
    for (const [path, body, expected] of bad) {
      const r = await admin(path, body)
      expect(r.status).toBe(400)
      expect(r.body.error.message).toContain(expected)
    }
    expect(sb.store.data.teams.map((t) => t.key)).toEqual(['APP'])
    expect((await admin('nope')).status).toBe(404)
  })

  test('the CLI serve starts as a process, answers GraphQL, is driven by the client verbs, and stops cleanly on SIGTERM', async () => {
    const script = join(root, 'scripts/sandbox.ts')
    const data = join(dir, 'cli.json')
    const proc = spawn(process.execPath, [script, 'serve', '--port', '0', '--json', '--seed', fixture, '--data', data], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = ''
        proc.stdout.on('data', (c: Buffer) => {
          out += c.toString()
          if (out.includes('\n')) resolve(out.split('\n')[0]!)
        })
        proc.on('exit', (code) => reject(new Error(`serve exited with ${code}`)))
        setTimeout(() => reject(new Error(`serve printed nothing: ${out}`)), 10_000)
      })
      const info = JSON.parse(line) as { url: string; users: { email: string; apiKey: string }[] }
      expect(info.users.map((u) => u.email)).toEqual(['agent@rose.test', 'riley@rose.test', 'sam@rose.test'])
      const r = await gql('{ viewer { email } }', {}, info.users[0]!.apiKey, info.url)
      expect(r.body.data.viewer.email).toBe('agent@rose.test')

      const cli = (...args: string[]) =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          const p = spawn(process.execPath, [script, ...args, '--url', info.url], { stdio: ['ignore', 'pipe', 'pipe'] })
          let out = ''
          let err = ''
          p.stdout.on('data', (c: Buffer) => (out += c))
          p.stderr.on('data', (c: Buffer) => (err += c))
          p.on('exit', (code) => resolve({ code, out, err }))
        })
      expect((await cli('comment', '--issue', 'ENG-1', '--user', 'riley@rose.test', '--body', 'from the CLI')).code).toBe(0)
      expect((await cli('move', '--issue', 'ENG-1', '--state', 'In Review')).code).toBe(0)
      const badMove = await cli('move', '--issue', 'ENG-1', '--state', 'Nowhere')
      expect(badMove.code).toBe(2)
      expect(badMove.err).toContain('Nowhere is not a state')
      const stats = await cli('stats', '--json')
      expect(JSON.parse(stats.out)).toMatchObject({ requests: 1, queries: 1 })
      expect((await cli('faults', '--rate', '3')).code).toBe(2)
      const saved = JSON.parse(readFileSync(data, 'utf8'))
      expect(saved.comments.map((c: { body: string }) => c.body)).toContain('from the CLI')
    } finally {
      proc.kill('SIGTERM')
    }
    const code = await new Promise<number | null>((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.on('exit', resolve)))
    expect(code).toBe(0)
    expect(existsSync(data)).toBe(true)
  }, 30_000)
})
