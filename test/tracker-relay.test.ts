/**
 * Linear through the relay, as a worker in agent_session mode reaches it: a real relay process
 * (SQLite, client_credentials against the sandbox) and the sandbox (Linear's schema). The worker
 * holds only the relay's worker token: the api_key tracker's reads and moves, and the agent-session
 * calls (activities with our ids, the session's links and plan), all go through /linear/graphql.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { stableUuid } from '../lib/comments.ts'
import { isRetryable } from '../lib/errors.ts'
import { sandboxDelegate, sandboxSessions } from '../lib/sandbox/client.ts'
import type { Sandbox } from '../lib/sandbox/server.ts'
import { agentSessionClient } from '../lib/tracker/agent-session.ts'
import { createRelayTracker } from '../lib/tracker/relay.ts'
import type { RelayProcess } from './fakes/relay-process.ts'
import { sandboxWithRelay, type SandboxRelay } from './fakes/sandbox-relay.ts'
import { WORKER_TOKEN } from './fakes/webhooks.ts'
import { rejection } from './helpers.ts'

let both: SandboxRelay
let sandbox: Sandbox
let relay: RelayProcess
let orgId: string
let sessionId: string

beforeAll(async () => {
  both = await sandboxWithRelay('tracker-relay-')
  ;({ sandbox, relay } = both)
  orgId = sandbox.store.data.organization.id
  const { session } = await sandboxDelegate(sandbox.baseUrl, { issue: 'ENG-1', user: 'reviewer@sandbox.local', app: 'rosie' })
  sessionId = session.id
})
afterAll(async () => {
  await both?.stop()
})

const visible = async () => (await sandboxSessions(sandbox.baseUrl, 'ENG-1')).find((s: { id: string }) => s.id === sessionId)

test('the api_key tracker pointed at the relay polls, reads and moves the issue delegated to the app, with only the worker token', async () => {
  const tracker = createRelayTracker({ relayUrl: relay.url, token: WORKER_TOKEN, orgId })
  const polled = await tracker.poll(null)
  expect(polled.viewer.name.toLowerCase()).toContain('rosie')
  const issue = polled.issues.find((i) => i.identifier === 'ENG-1')!
  expect(issue.delegateId).toBe(polled.viewer.id)

  const { issue: read } = await tracker.getIssue('ENG-1')
  const started = read.team.states.find((s) => s.type === 'started')!
  await tracker.moveIssue(read.id, started.id)
  expect((await tracker.getIssue('ENG-1')).issue.state.id).toBe(started.id)
  expect(tracker.requests()).toBe(4)
  // The relay forwarded them with the app's token; the worker token never left the relay.
  expect(relay.output()).not.toContain(WORKER_TOKEN)
})

test('through the relay, a wrong worker token is relay_auth and an unknown workspace is relay_not_installed, neither retried', async () => {
  const bad = createRelayTracker({ relayUrl: relay.url, token: 'not-a-worker-token', orgId, sleep: async () => {} })
  const auth = await rejection(bad.getIssue('ENG-1'))
  expect(auth.code).toBe('relay_auth')
  expect(auth.fix).toContain('FACTORY_RELAY_WORKER_TOKEN')
  expect(bad.requests()).toBe(1)

  const stranger = agentSessionClient({ relayUrl: relay.url, token: WORKER_TOKEN, orgId: 'org-nobody-installed' })
  const none = await rejection(stranger.getSession(sessionId))
  expect(none.code).toBe('relay_not_installed')
  expect(isRetryable(none.code)).toBe(false)
  expect(stranger.requests()).toBe(1)
})

test('activities land in the session under our ids, an ephemeral action is replaced by its result, and a repeated id counts as posted', async () => {
  const client = agentSessionClient({ relayUrl: relay.url, token: WORKER_TOKEN, orgId })
  const id = (n: number) => stableUuid(`tracker-relay-test/${sessionId}/${n}`)
  expect(await client.postActivity({ id: id(1), sessionId, content: { type: 'thought', body: 'Reading the issue' } })).toEqual({
    posted: true,
  })
  await client.postActivity({ id: id(2), sessionId, content: { type: 'action', action: 'Bash', parameter: 'ls' }, ephemeral: true })
  await client.postActivity({ id: id(3), sessionId, content: { type: 'action', action: 'Bash', parameter: 'ls', result: 'README.md' } })
  // A retry of a create whose first attempt landed: nothing duplicated.
  const before = client.requests()
  expect(await client.postActivity({ id: id(3), sessionId, content: { type: 'action', action: 'Bash', parameter: 'ls' } })).toEqual({
    posted: false,
  })
  expect(client.requests() - before).toBe(2)

  const s = await visible()
  const ours = s.activities.filter((a: { id: string }) => [id(1), id(2), id(3)].includes(a.id))
  expect(ours.map((a: { id: string; content: { type: string } }) => [a.id, a.content.type])).toEqual([
    [id(1), 'thought'],
    [id(3), 'action'],
  ])
  expect(ours[1].content).toEqual({ type: 'action', action: 'Bash', parameter: 'ls', result: 'README.md' })
})

test("the session's PR link and whole plan are set, and read back with the newest activities", async () => {
  const client = agentSessionClient({ relayUrl: relay.url, token: WORKER_TOKEN, orgId })
  const plan = [
    { content: 'Read the code', status: 'completed' as const },
    { content: 'Fix the thing', status: 'inProgress' as const },
  ]
  await client.updateSession(sessionId, { addedExternalUrls: [{ label: 'PR #7', url: 'https://github.test/o/r/pull/7' }], plan })
  const s = await client.getSession(sessionId)
  expect(s.externalLinks).toEqual([{ label: 'PR #7', url: 'https://github.test/o/r/pull/7' }])
  expect(s.issue?.identifier).toBe('ENG-1')
  expect(s.activities.nodes.length).toBeGreaterThan(0)
  expect((await visible()).plan).toEqual(plan)
})

test('a session that is gone is tracker_refused at once: final, one create and one look-up, no retry loop', async () => {
  const client = agentSessionClient({ relayUrl: relay.url, token: WORKER_TOKEN, orgId })
  const gone = '00000000-0000-4000-8000-000000000000'
  const e = await rejection(client.postActivity({ id: stableUuid('gone'), sessionId: gone, content: { type: 'thought', body: 'hello?' } }))
  expect(e.code).toBe('tracker_refused')
  expect(e.message).toContain('Entity not found: AgentSession')
  expect(isRetryable(e.code)).toBe(false)
  expect(client.requests()).toBe(2)
  expect((await rejection(client.updateSession(gone, { plan: [] }))).code).toBe('tracker_refused')
  expect(client.requests()).toBe(3)
})

test('RATELIMITED from the relay waits for its reset and then posts; a reset further than the longest wait gives up as tracker_rate_limited', async () => {
  let now = 1_000_000
  const slept: number[] = []
  let replies: (() => Response)[] = []
  const limited = (resetAt: number) => () =>
    Response.json(
      { errors: [{ message: 'Rate limit exceeded', extensions: { code: 'RATELIMITED', type: 'ratelimited', userError: true } }] },
      { status: 400, headers: { 'x-ratelimit-requests-reset': String(resetAt) } },
    )
  const ok = () => Response.json({ data: { agentActivityCreate: { success: true, agentActivity: { id: 'a' } } } })
  const deps = {
    fetch: async () => replies.shift()!(),
    sleep: async (ms: number) => void (slept.push(ms), (now += ms)),
    now: () => now,
  }
  const client = agentSessionClient({ relayUrl: 'http://127.0.0.1:9', token: WORKER_TOKEN, orgId, deps })
  replies = [limited(now + 20_000), ok]
  expect(await client.postActivity({ id: 'a', sessionId, content: { type: 'thought', body: 'x' } })).toEqual({ posted: true })
  expect(slept).toEqual([20_050])

  const patient = agentSessionClient({ relayUrl: 'http://127.0.0.1:9', token: WORKER_TOKEN, orgId, deps, maxWaitMs: 60_000 })
  replies = [limited(now + 30 * 60_000), () => Response.json({ data: { agentActivity: null } })]
  expect((await rejection(patient.postActivity({ id: 'b', sessionId, content: { type: 'thought', body: 'x' } }))).code).toBe(
    'tracker_rate_limited',
  )
})
