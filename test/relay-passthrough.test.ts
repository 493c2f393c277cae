/**
 * POST /linear/graphql (lib/relay/passthrough.ts) against the fake Linear: forwarded with the
 * app's token (never the worker's), Linear's answer returned as is, one rate-limit view per
 * workspace (RATELIMITED to everyone until the reset, read by @linear/sdk and our tracker errors
 * like Linear's own), unknown and revoked workspaces, oversized bodies, a 401 healed by one refresh.
 */
import { LinearClient, RatelimitedLinearError } from '@linear/sdk'
import { afterAll, afterEach, beforeEach, expect, test } from 'bun:test'
import { graphqlPassthrough, MAX_GRAPHQL_BODY, type Passthrough } from '../lib/relay/passthrough.ts'
import { markRevoked } from '../lib/relay/tokens.ts'
import { toTrackerError } from '../lib/tracker/errors.ts'
import { captureStderr, CLIENT_SECRET, relayOAuthFixture, type RelayOAuthFixture } from './fakes/relay-oauth-fixture.ts'

const WORKER_TOKEN = 'relay-worker-bearer-for-the-test'
const logs = captureStderr()
const issued = new Set<string>()
let f: RelayOAuthFixture
let pass: Passthrough

beforeEach(async () => {
  f = await relayOAuthFixture()
  pass = graphqlPassthrough({ keeper: f.keeper, settings: f.settings, deps: { now: () => f.clock.now } })
  expect((await f.install()).status).toBe(200)
})
afterEach(async () => {
  for (const t of f.fake.issued) issued.add(t)
  await f.close()
})
afterAll(() => logs.stop())

function workerRequest(body: unknown, org: string | null = 'org-rose'): Request {
  const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${WORKER_TOKEN}` }
  if (org) headers['x-linear-organization'] = org
  return new Request('http://127.0.0.1:9/linear/graphql', {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

/** The pass-through behind a real HTTP server, as a worker's Linear client sees it. */
function serve() {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req) => pass.handle(req) })
  return { url: `http://127.0.0.1:${server.port}/graphql`, stop: () => server.stop(true) }
}

test("a worker's document reaches Linear with the app's token (not the worker's) and Linear's status, body and rate-limit headers come back", async () => {
  const res = await pass.handle(workerRequest({ query: 'query Mine { issues { nodes { id } } }', variables: { first: 3 } }))
  expect(res.status).toBe(200)
  expect(await res.json()).toEqual({
    data: { echo: { query: 'query Mine { issues { nodes { id } } }', variables: { first: 3 }, organizationId: 'org-rose' } },
  })
  expect(res.headers.get('x-ratelimit-requests-remaining')).toBe('4999')
  const sent = f.fake.graphqlRequests.at(-1)!
  expect(sent.authorization).toBe(`Bearer ${await f.keeper.accessToken('org-rose')}`)
  expect(JSON.stringify(f.fake.graphqlRequests).includes(WORKER_TOKEN)).toBe(false)
  expect(pass.rateLimits()['org-rose']).toMatchObject({ remaining: 4999, limitedUntil: 0 })
})

test('the org can come from the caller instead of the header', async () => {
  const res = await pass.handle(workerRequest({ query: '{ viewer { id } }' }, null), { orgId: 'org-rose' })
  expect(res.status).toBe(200)
  const none = await pass.handle(workerRequest({ query: '{ viewer { id } }' }, null))
  expect(none.status).toBe(400)
  expect(((await none.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('X-Linear-Organization')
})

test('after Linear says RATELIMITED, a second caller is answered RATELIMITED at once without reaching Linear, until the reset', async () => {
  const relay = serve()
  try {
    const resetAt = f.clock.now + 60_000
    f.fake.rateLimitUntil(resetAt)
    const first = await pass.handle(workerRequest({ query: '{ a }' }))
    expect(first.status).toBe(400)
    const reached = f.fake.counts.graphql

    // A second worker, through @linear/sdk over HTTP, as the worker side will call it.
    const client = new LinearClient({ apiKey: WORKER_TOKEN, apiUrl: relay.url, headers: { 'X-Linear-Organization': 'org-rose' } })
    let caught: unknown
    try {
      await client.client.rawRequest('query Second { viewer { id } }')
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(RatelimitedLinearError)
    expect((caught as RatelimitedLinearError).requestsResetAt).toBe(resetAt)
    const tracker = toTrackerError(caught, 'a test read', f.clock.now)
    expect(tracker.code).toBe('tracker_rate_limited')
    expect(tracker.details?.resetAt).toBe(resetAt)

    const third = await pass.handle(workerRequest({ query: '{ c }' }))
    expect(third.status).toBe(400)
    const body = (await third.json()) as { errors: { extensions: { code: string; type: string } }[] }
    expect(body.errors[0]!.extensions).toMatchObject({ code: 'RATELIMITED', type: 'ratelimited' })
    expect(third.headers.get('x-ratelimit-requests-reset')).toBe(String(resetAt))
    expect(f.fake.counts.graphql).toBe(reached)

    f.clock.now = resetAt + 1
    const after = await pass.handle(workerRequest({ query: '{ d }' }))
    expect(after.status).toBe(200)
    expect(f.fake.counts.graphql).toBe(reached + 1)
  } finally {
    relay.stop()
  }
})

test('a reply saying 0 requests remain closes the gate until its reset: the next caller is answered RATELIMITED without reaching Linear', async () => {
  f.fake.requestsRemaining = 0
  expect((await pass.handle(workerRequest({ query: '{ a }' }))).status).toBe(200)
  const reached = f.fake.counts.graphql
  const next = await pass.handle(workerRequest({ query: '{ b }' }))
  expect(next.status).toBe(400)
  expect(next.headers.get('x-ratelimit-requests-reset')).toBe(String(f.clock.now + 3600_000))
  expect(f.fake.counts.graphql).toBe(reached)
})

test('an org without an install is a 404 naming it; a revoked install is a 403 saying to reinstall via /oauth/authorize', async () => {
  const unknown = await pass.handle(workerRequest({ query: '{ a }' }, 'org-elsewhere'))
  expect(unknown.status).toBe(404)
  expect(JSON.stringify(await unknown.json())).toContain('org-elsewhere')
  await markRevoked(f.store, 'org-rose', 'PermissionChange: access removed', { kind: 'permission_change', now: f.clock.now })
  const revoked = await pass.handle(workerRequest({ query: '{ a }' }))
  expect(revoked.status).toBe(403)
  expect(JSON.stringify(await revoked.json())).toContain('/oauth/authorize')
  expect(f.fake.counts.graphql).toBe(1) // only the install's own identity read
})

test('a body over 1 MiB is refused with 413 and never reaches Linear, with or without a Content-Length', async () => {
  const big = JSON.stringify({ query: '{ a }', variables: { blob: 'x'.repeat(MAX_GRAPHQL_BODY) } })
  const declared = await pass.handle(workerRequest(big))
  expect(declared.status).toBe(413)
  const encoder = new TextEncoder()
  const streamed = new Request('http://127.0.0.1:9/linear/graphql', {
    method: 'POST',
    headers: { 'x-linear-organization': 'org-rose' },
    body: new ReadableStream({
      start(c) {
        for (let i = 0; i < 17; i++) c.enqueue(encoder.encode('y'.repeat(64 * 1024)))
        c.close()
      },
    }),
  })
  expect((await pass.handle(streamed)).status).toBe(413)
  expect(f.fake.counts.graphql).toBe(1)
})

test('a token Linear no longer accepts (401) is refreshed once and the request retried: the worker sees 200', async () => {
  f.fake.revokeAccessToken(await f.keeper.accessToken('org-rose'))
  const res = await pass.handle(workerRequest({ query: '{ a }' }))
  expect(res.status).toBe(200)
  expect(f.fake.counts.refresh_token).toBe(1)
})

test('no token, code or client secret appeared in any log line of these tests', () => {
  const leaked = [...issued, CLIENT_SECRET].filter((s) => logs.text().includes(s))
  expect(leaked).toEqual([])
})
