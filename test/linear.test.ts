/** The api_key tracker against the sandbox: one request per idle poll, paging only when full, watched issues, errors with codes. */
import { afterEach, describe, expect, test } from 'bun:test'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Sandbox, startSandbox } from '../lib/sandbox/server.ts'
import { createLinearTracker, pollFilter } from '../lib/tracker/linear.ts'
import { newestTimestamp } from '../lib/steps/poll.ts'
import { AGENT_KEY, seedWith } from './helpers.ts'

let sb: Sandbox | undefined
afterEach(async () => {
  await sb?.stop()
  sb = undefined
})

const many = (n: number) => Array.from({ length: n }, (_, i) => ({ team: 'ENG', title: `T${i + 1}`, assignee: 'agent@rose.test' }))

describe('linear tracker', () => {
  test('the first poll pages 50 at a time; later polls use a small page and page on only when it is full', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith([...many(60), { team: 'ENG', title: 'theirs', assignee: 'riley@rose.test' }]) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const first = await t.poll(null)
    expect(first.requests).toBe(2)
    expect(first.issues).toHaveLength(60)
    expect(first.issues.some((i) => i.title === 'theirs')).toBe(false)
    const cursor = newestTimestamp(first.issues, null)
    expect((await t.poll(cursor)).requests).toBe(1)
    // 12 issues change: a page of 10 is full, so one more page.
    for (let i = 1; i <= 12; i++) sb.store.updateIssue(`ENG-${i}`, { title: `T${i} (edited)` })
    const changed = await t.poll(cursor)
    expect(changed.requests).toBe(2)
    expect(changed.issues).toHaveLength(12)
  })

  test('a new comment alone brings its issue back even though the issue itself did not change', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(3)) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const cursor = newestTimestamp((await t.poll(null)).issues, null)
    sb.store.createComment({ issue: 'ENG-2', userId: sb.store.userByEmail('riley@rose.test')!.id, body: 'one more thing' })
    const res = await t.poll(cursor)
    expect(res.issues.map((i) => i.identifier)).toEqual(['ENG-2'])
    expect(res.issues[0]!.comments.at(-1)!.body).toBe('one more thing')
    expect(pollFilter(cursor)).toEqual({
      and: [expect.anything(), { or: [{ updatedAt: { gt: cursor } }, { comments: { some: { createdAt: { gt: cursor } } } }] }],
    })
  })

  test('watched issues come back with their current assignment even when unassigned', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(2)) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const { issues } = await t.poll(null)
    sb.store.updateIssue('ENG-1', { assigneeId: null })
    const res = await t.poll(newestTimestamp(issues, null), { watch: issues.map((i) => i.id) })
    expect(res.requests).toBe(1)
    expect(res.watched.find((w) => w.identifier === 'ENG-1')).toMatchObject({ assigneeId: null })
    expect(res.watched.find((w) => w.identifier === 'ENG-2')!.assigneeId).toBe(issues[0]!.assigneeId)
  })

  test('a wrong key is tracker_auth with a fix; an outage is tracker_unreachable after quick retries', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(1)) })
    const bad = await createLinearTracker({ apiKey: 'lin_api_wrong', apiUrl: sb.url })
      .poll(null)
      .catch((e) => e)
    expect(bad.code).toBe('tracker_auth')
    expect(bad.fix).toContain('token_env')
    expect(bad.exitCode).toBe(1)
    sb.setFaults({ failNext: 3, kinds: ['5xx'] })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url, sleep: async () => {} })
    const down = await t.poll(null).catch((e) => e)
    expect(down.code).toBe('tracker_unreachable')
    expect(sb.stats().faultsInjected).toBe(3)
    expect((await t.poll(null)).issues).toHaveLength(1)
  })

  test('a LINEAR_API_URL without /graphql (the server answers 404) is reported as not a GraphQL endpoint, not as a refused key', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(1)) })
    for (const apiUrl of [sb.baseUrl, `${sb.baseUrl}/api/`]) {
      const err = await createLinearTracker({ apiKey: AGENT_KEY, apiUrl, sleep: async () => {} })
        .poll(null)
        .catch((e) => e)
      expect(err.code, apiUrl).toBe('config_invalid')
      expect(err.message).toContain('LINEAR_API_URL is not a GraphQL endpoint')
      expect(err.message).toContain(apiUrl.replace(/\/$/, ''))
      expect(err.message).toContain('HTTP 404')
      expect(err.fix).toContain(`end LINEAR_API_URL with /graphql (${apiUrl.replace(/\/$/, '')}/graphql)`)
      expect(err.exitCode).toBe(2)
    }
    // A path that answers 200 with something else is no GraphQL endpoint either.
    const stats = await createLinearTracker({ apiKey: AGENT_KEY, apiUrl: `${sb.baseUrl}/_sandbox/stats` })
      .poll(null)
      .catch((e) => e)
    expect(stats.code).toBe('config_invalid')
    expect(stats.message).toContain('LINEAR_API_URL is not a GraphQL endpoint')
    // The right URL with a wrong key is still the key's fault.
    const bad = await createLinearTracker({ apiKey: 'lin_api_wrong', apiUrl: sb.url })
      .poll(null)
      .catch((e) => e)
    expect(bad.code).toBe('tracker_auth')
  })

  test('the newest comments of a long discussion reach the factory whichever way Linear orders a page', async () => {
    const comments = Array.from({ length: 30 }, (_, i) => ({
      user: 'riley@rose.test',
      body: `comment ${i + 1}`,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
    }))
    for (const commentOrder of ['newest_first', 'oldest_first'] as const) {
      sb = await startSandbox({
        port: 0,
        commentOrder,
        seed: seedWith([{ team: 'ENG', title: 'long talk', assignee: 'agent@rose.test', comments }]),
      })
      const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
      const id = sb.store.issue('ENG-1')!.id
      // No run yet: every comment is read (the first page is full: one more request).
      const res = await t.poll(null)
      const bodies = res.issues[0]!.comments.map((c) => c.body)
      expect(bodies.at(-1)).toBe('comment 30')
      expect(bodies).toHaveLength(30)
      expect(res.requests).toBe(2)
      // The last run saw comment 25: newest-first pages already reach it; oldest-first ones page to the end.
      const since = comments[24]!.createdAt
      const later = await t.poll(null, { commentsSince: { [id]: since } })
      expect(later.issues[0]!.comments.at(-1)!.body).toBe('comment 30')
      expect(later.requests).toBe(commentOrder === 'oldest_first' ? 2 : 1)
      const one = await t.getIssue('ENG-1')
      expect(one.issue.comments.at(-1)!.body).toBe('comment 30')
      expect(one.issue.comments).toHaveLength(30)
      await sb.stop()
      sb = undefined
    }
  })

  test('25 comments since the last run are all read (newest first, a full page pages on until the last run), with no note of omission', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(1)) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const first = await t.poll(null)
    const id = first.issues[0]!.id
    const riley = sb.store.userByEmail('riley@rose.test')!.id
    const seen = sb.store.createComment({ issue: 'ENG-1', userId: riley, body: 'seen by run 1' }).createdAt
    for (let i = 1; i <= 25; i++) sb.store.createComment({ issue: 'ENG-1', userId: riley, body: `new ${i}` })
    const res = await t.poll(newestTimestamp(first.issues, null), { commentsSince: { [id]: seen } })
    const bodies = res.issues[0]!.comments.map((c) => c.body)
    for (let i = 1; i <= 25; i++) expect(bodies).toContain(`new ${i}`)
    expect(res.requests).toBe(2)
    expect(res.issues[0]!.commentsOmitted).toBeUndefined()
  })

  test('500 comments on a first read: the newest 100 are kept and the other 400 are counted as omitted', async () => {
    const comments = Array.from({ length: 500 }, (_, i) => ({
      user: 'riley@rose.test',
      body: `c${i + 1}`,
      createdAt: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    }))
    sb = await startSandbox({ port: 0, seed: seedWith([{ team: 'ENG', title: 'long', assignee: 'agent@rose.test', comments }]) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const res = await t.poll(null)
    const it = res.issues[0]!
    expect(it.comments).toHaveLength(100)
    expect(it.comments.at(-1)!.body).toBe('c500')
    expect(it.commentsOmitted).toBe(400)
    // 20 on the first page, then pages of 100: 5 more requests.
    expect(res.requests).toBe(6)
  })

  test('creating a comment twice with the same id reports the second as already there, and nothing is duplicated', async () => {
    sb = await startSandbox({ port: 0, seed: seedWith(many(1)) })
    const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: sb.url })
    const id = '3f1c2b9e-0000-4000-8000-000000000001'
    const issueId = sb.store.issue('ENG-1')!.id
    expect(await t.createComment({ id, issueId, body: 'hello' })).toEqual({ created: true })
    expect(await t.createComment({ id, issueId, body: 'hello' })).toEqual({ created: false })
    expect(sb.store.data.comments.filter((c) => c.id === id)).toHaveLength(1)
  })

  test('a Linear answer whose body trickles forever is cut at the deadline (tracker_unreachable, timed out), retries included', async () => {
    const timers = new Set<ReturnType<typeof setInterval>>()
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"data":')
      const t = setInterval(() => res.write(' '), 50)
      timers.add(t)
      res.on('close', () => clearInterval(t))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`
      const t = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: url, timeoutMs: 400, sleep: async () => {} })
      const t0 = Date.now()
      const err = await t.poll(null).catch((e) => e)
      expect(err.code).toBe('tracker_unreachable')
      expect(err.message).toContain('timed out')
      // Three attempts (two quick retries) of 400 ms each.
      expect(Date.now() - t0).toBeLessThan(4_000)
    } finally {
      for (const t of timers) clearInterval(t)
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }, 15_000)
})
