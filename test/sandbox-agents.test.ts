/**
 * The Linear sandbox speaks agent sessions: sessions and activities through the factory's agent
 * documents, Linear's status rules, ephemeral replacement, duplicate ids, session updates, and
 * AgentSessionEvent webhooks delivered to a real HTTP receiver, signed so that @linear/sdk's
 * LinearWebhookClient accepts them, retried, redelivered and duplicated on demand.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LinearWebhookClient } from '@linear/sdk/webhooks'
import {
  sandboxDeliveries,
  sandboxDelegate,
  sandboxDuplicate,
  sandboxMention,
  sandboxPrompt,
  sandboxRedeliver,
  sandboxSessions,
} from '../lib/sandbox/client.ts'
import { startSandbox, type Sandbox, type SandboxSeed } from '../lib/sandbox/server.ts'
import { signWebhook, stampedBody } from '../lib/sandbox/webhook-sign.ts'
import {
  AGENT_ACTIVITY_CREATE_MUTATION,
  AGENT_ACTIVITY_QUERY,
  AGENT_SESSION_QUERY,
  AGENT_SESSION_UPDATE_MUTATION,
  SESSION_ACTIVITIES_PAGE,
} from '../lib/tracker/documents.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const BASE = JSON.parse(readFileSync(join(root, 'test/fixtures/sandbox-seed.json'), 'utf8')) as SandboxSeed
const SEED: SandboxSeed = {
  ...BASE,
  users: [
    ...BASE.users,
    { name: 'Rosie', email: 'rosie@oauthapp.rose.test', apiKey: 'lin_oauth_test_rosie', app: { clientId: 'rosie-client' } },
  ],
}
const APP = 'lin_oauth_test_rosie'
const RILEY = 'lin_api_test_riley'
const SECRET = 'sandbox-webhook-secret-for-tests'
const T0 = Date.parse('2025-03-01T12:00:00.000Z')

interface Received {
  headers: IncomingHttpHeaders
  raw: string
  body: any
}

/** A webhook receiver on 127.0.0.1 that records every request and answers with the next planned status (then 200; 0: never answers). */
async function startReceiver() {
  const received: Received[] = []
  const plan: number[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      received.push({ headers: req.headers, raw, body: JSON.parse(raw) })
      const status = plan.shift() ?? 200
      if (status) res.writeHead(status).end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}/webhooks/linear`,
    received,
    plan,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}

let now = T0
let sb: Sandbox
let dir: string
let rx: Awaited<ReturnType<typeof startReceiver>>

beforeEach(async () => {
  now = T0
  dir = mkdtempSync(join(tmpdir(), 'sandbox-agents-'))
  rx = await startReceiver()
  sb = await startSandbox({ seed: SEED, clock: () => now, dataPath: join(dir, 'data.json'), webhook: { url: rx.url, secret: SECRET } })
})

afterEach(async () => {
  await sb.stop()
  await rx.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function gql(query: string, variables: Record<string, unknown>, key = APP) {
  const res = await fetch(sb.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  })
  return { status: res.status, body: (await res.json()) as any }
}

const delegate = async (issue = 'ENG-1') => (await sandboxDelegate(sb.baseUrl, { issue, user: 'riley@rose.test' })).session.id as string
const post = (agentSessionId: string, content: Record<string, unknown>, extra: Record<string, unknown> = {}, key = APP) =>
  gql(AGENT_ACTIVITY_CREATE_MUTATION, { input: { agentSessionId, content, ...extra } }, key)
const status = async (id: string) =>
  (await gql(AGENT_SESSION_QUERY, { id, activitiesFirst: SESSION_ACTIVITIES_PAGE })).body.data.agentSession.status
const verifier = new LinearWebhookClient(SECRET)
/** Wait until `cond` holds (deliveries happen in the background); fails with `what` if it never does. */
async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 500 && !cond(); i++) await Bun.sleep(10)
  if (!cond()) throw new Error(`never happened: ${what}`)
}

describe('webhook signatures', () => {
  test("signWebhook signs the raw body as @linear/sdk's LinearWebhookClient verifies it; a tampered or stale body is rejected", () => {
    const raw = stampedBody({ type: 'AgentSessionEvent', action: 'created' }, Date.now())
    expect(verifier.verify(Buffer.from(raw), signWebhook(raw, SECRET))).toBe(true)
    expect(verifier.parseData(Buffer.from(raw), signWebhook(raw, SECRET))).toMatchObject({ action: 'created' })
    const tampered = raw.replace('created', 'prompted')
    expect(() => verifier.verify(Buffer.from(tampered), signWebhook(raw, SECRET))).toThrow('Invalid webhook signature')
    expect(() => verifier.verify(Buffer.from(raw), signWebhook(raw, 'another-secret'))).toThrow('Invalid webhook signature')
    const stale = stampedBody({ type: 'AgentSessionEvent' }, Date.now() - 61_000)
    expect(() => verifier.verify(Buffer.from(stale), signWebhook(stale, SECRET))).toThrow('Invalid webhook timestamp')
  })
})

describe('agent sessions and activities', () => {
  test('a delegated session is pending, then follows its last activity: active, awaitingInput, pending after a prompt, complete', async () => {
    const id = await delegate()
    expect(sb.store.issue('ENG-1')!.delegateId).toBe(sb.store.userByEmail('rosie@oauthapp.rose.test')!.id)
    const read = await gql(AGENT_SESSION_QUERY, { id, activitiesFirst: SESSION_ACTIVITIES_PAGE })
    expect(read.body.data.agentSession).toMatchObject({
      id,
      status: 'pending',
      appUser: { name: 'Rosie' },
      creator: { email: 'riley@rose.test' },
      externalLinks: [],
      issue: { identifier: 'ENG-1', title: 'Add a health check endpoint', description: 'GET /healthz answers 200.' },
      activities: { nodes: [] },
    })
    expect(read.body.data.agentSession.issue.url).toContain('/rose-test/issue/ENG-1/')
    expect((await post(id, { type: 'thought', body: 'Received' })).body.data.agentActivityCreate.success).toBe(true)
    expect(await status(id)).toBe('active')
    await post(id, { type: 'elicitation', body: 'Which port?' })
    expect(await status(id)).toBe('awaitingInput')
    await sandboxPrompt(sb.baseUrl, { session: id, body: '8080' })
    expect(await status(id)).toBe('pending')
    await post(id, { type: 'action', action: 'Edited', parameter: 'server.ts', result: 'ok' })
    await post(id, { type: 'response', body: 'Done: PR opened.' })
    const done = await gql(AGENT_SESSION_QUERY, { id, activitiesFirst: SESSION_ACTIVITIES_PAGE })
    expect(done.body.data.agentSession.status).toBe('complete')
    expect(done.body.data.agentSession.activities.nodes.map((n: any) => n.content)).toEqual([
      { type: 'response', body: 'Done: PR opened.' },
      { type: 'action', action: 'Edited', parameter: 'server.ts', result: 'ok' },
      { type: 'prompt', body: '8080' },
      { type: 'elicitation', body: 'Which port?' },
      { type: 'thought', body: 'Received' },
    ])
    const errored = await delegate('ENG-2')
    await post(errored, { type: 'error', body: 'git push failed' })
    expect(await status(errored)).toBe('error')
  })

  test('an ephemeral activity is replaced by the next one; ephemeral is refused on a response and prompts are refused from the agent', async () => {
    const id = await delegate()
    const eph = (await post(id, { type: 'action', action: 'Running', parameter: 'bun test' }, { ephemeral: true })).body.data
    await post(id, { type: 'thought', body: 'Tests pass' })
    const nodes = (await gql(AGENT_SESSION_QUERY, { id, activitiesFirst: 5 })).body.data.agentSession.activities.nodes
    expect(nodes.map((n: any) => n.content.body ?? n.content.action)).toEqual(['Tests pass'])
    const found = await gql(AGENT_ACTIVITY_QUERY, { id: eph.agentActivityCreate.agentActivity.id })
    expect(found.body.data.agentActivity.agentSession.id).toBe(id)
    const ephResponse = await post(id, { type: 'response', body: 'x' }, { ephemeral: true })
    expect(ephResponse.body.errors[0].message).toContain('ephemeral is allowed on thought and action only')
    expect((await post(id, { type: 'prompt', body: 'x' })).body.errors[0].message).toContain('an agent cannot create them')
    expect((await post(id, { type: 'thought' })).body.errors[0].message).toContain('needs content.body')
  })

  test('a duplicate client-chosen activity id is refused with HTTP 200 and an error naming the id, and nothing is duplicated', async () => {
    const id = await delegate()
    const activityId = crypto.randomUUID()
    const first = await post(id, { type: 'thought', body: 'Queued' }, { id: activityId })
    expect(first.body.data.agentActivityCreate).toEqual({ success: true, agentActivity: { id: activityId } })
    const again = await post(id, { type: 'thought', body: 'Queued' }, { id: activityId })
    expect(again.status).toBe(200)
    expect(again.body.data).toBeNull()
    expect(again.body.errors[0]).toMatchObject({
      message: `AgentActivity with id ${activityId} already exists`,
      path: ['agentActivityCreate'],
      extensions: { code: 'INVALID_INPUT', type: 'invalid input', userError: true },
    })
    expect(sb.store.data.agentActivities.filter((a) => a.id === activityId)).toHaveLength(1)
    expect((await gql(AGENT_ACTIVITY_QUERY, { id: activityId })).body.data.agentActivity).toEqual({ id: activityId, agentSession: { id } })
  })

  test('a missing session is "Entity not found: AgentSession" (a userError), and another user may not post to or update the session', async () => {
    const missing = await post(crypto.randomUUID(), { type: 'thought', body: 'hi' })
    expect(missing.status).toBe(200)
    expect(missing.body.errors[0]).toMatchObject({ message: 'Entity not found: AgentSession', extensions: { userError: true } })
    const id = await delegate()
    const foreign = await post(id, { type: 'thought', body: 'hi' }, {}, RILEY)
    expect(foreign.body.errors[0].extensions.code).toBe('FORBIDDEN')
    const update = await gql(AGENT_SESSION_UPDATE_MUTATION, { id, input: { plan: [] } }, RILEY)
    expect(update.body.errors[0].extensions.code).toBe('FORBIDDEN')
  })

  test('agentSessionUpdate replaces or adds/removes external URLs and replaces the whole plan; a bad plan status is refused', async () => {
    const id = await delegate()
    const pr = { label: 'PR #7', url: 'https://github.com/acme/app/pull/7' }
    const set = await gql(AGENT_SESSION_UPDATE_MUTATION, { id, input: { externalUrls: [pr] } })
    expect(set.body.data.agentSessionUpdate).toEqual({ success: true, agentSession: { id, status: 'pending', externalLinks: [pr] } })
    const log = { label: 'Log', url: 'http://127.0.0.1:9/log' }
    const added = await gql(AGENT_SESSION_UPDATE_MUTATION, { id, input: { addedExternalUrls: [log], removedExternalUrls: [pr.url] } })
    expect(added.body.data.agentSessionUpdate.agentSession.externalLinks).toEqual([log])
    const plan = [
      { content: 'Read the issue', status: 'completed' },
      { content: 'Write the endpoint', status: 'inProgress' },
    ]
    await gql(AGENT_SESSION_UPDATE_MUTATION, { id, input: { plan } })
    expect(sb.store.data.agentSessions.find((s) => s.id === id)!.plan).toEqual(plan)
    const bad = await gql(AGENT_SESSION_UPDATE_MUTATION, { id, input: { plan: [{ content: 'x', status: 'done' }] } })
    expect(bad.body.errors[0].message).toContain('plan[0] must be {content, status}')
  })

  test('an active session reads as stale 30 minutes after its last activity, and the next activity revives it', async () => {
    const id = await delegate()
    await post(id, { type: 'thought', body: 'Working' })
    now += 29 * 60_000
    expect(await status(id)).toBe('active')
    now += 2 * 60_000
    expect(await status(id)).toBe('stale')
    await post(id, { type: 'thought', body: 'Still here' })
    expect(await status(id)).toBe('active')
  })

  test('sessions and activities survive a restart through the data file', async () => {
    const id = await delegate()
    await post(id, { type: 'thought', body: 'Persisted' })
    await sb.stop()
    sb = await startSandbox({ clock: () => now, dataPath: join(dir, 'data.json') })
    const nodes = (await gql(AGENT_SESSION_QUERY, { id, activitiesFirst: 5 })).body.data.agentSession.activities.nodes
    expect(nodes.map((n: any) => n.content.body)).toEqual(['Persisted'])
  })
})

describe('AgentSessionEvent webhooks', () => {
  test('delegating sends one signed `created` webhook with the payload fields of Linear, verified by the real SDK', async () => {
    const before = Date.now()
    const res = await sandboxDelegate(sb.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test', app: 'rosie' })
    expect(rx.received).toHaveLength(1)
    const [hit] = rx.received
    expect(hit!.headers['content-type']).toBe('application/json')
    expect(hit!.headers['linear-event']).toBe('AgentSessionEvent')
    expect(hit!.headers['linear-delivery']).toBe(res.delivery.id)
    expect(hit!.headers['linear-delivery']).toMatch(/^[0-9a-f-]{36}$/)
    expect(verifier.verify(Buffer.from(hit!.raw), hit!.headers['linear-signature'] as string)).toBe(true)
    const body = hit!.body
    const org = sb.store.data.organization.id
    const appId = sb.store.userByEmail('rosie@oauthapp.rose.test')!.id
    expect(body).toMatchObject({
      type: 'AgentSessionEvent',
      action: 'created',
      organizationId: org,
      oauthClientId: 'rosie-client',
      appUserId: appId,
      webhookId: sb.webhooks.webhookId(),
      agentSession: {
        id: res.session.id,
        status: 'pending',
        appUserId: appId,
        organizationId: org,
        creator: { email: 'riley@rose.test' },
        issue: { identifier: 'ENG-1', title: 'Add a health check endpoint', team: { key: 'ENG' } },
      },
    })
    expect(body.webhookTimestamp).toBeGreaterThanOrEqual(before)
    expect(Number.isNaN(Date.parse(body.createdAt))).toBe(false)
    expect(body.promptContext).toContain('<issue identifier="ENG-1">')
    expect(body.promptContext).toContain('<title>Add a health check endpoint</title>')
    expect(body.promptContext).toContain('Use the existing router.')
    expect(body.previousComments.map((c: any) => c.body)).toEqual(['Use the existing router.', 'On it.'])
    const [delivery] = await sandboxDeliveries(sb.baseUrl)
    expect(delivery).toMatchObject({ id: res.delivery.id, action: 'created', state: 'delivered', agentSessionId: res.session.id })
    expect(delivery.attempts.map((a: any) => a.status)).toEqual([200])
  })

  test('mentioning the app adds the comment and makes it the primary directive thread of the session', async () => {
    const out = await sandboxMention(sb.baseUrl, {
      issue: 'ENG-5',
      user: 'sam@rose.test',
      body: 'could you rotate these?',
    })
    const comment = sb.store.comment(out.session.commentId)!
    expect(comment.body).toBe('@rosie could you rotate these?')
    expect(rx.received[0]!.body.agentSession.comment).toMatchObject({ id: comment.id, body: comment.body })
    expect(rx.received[0]!.body.promptContext).toContain(`<primary-directive-thread comment-id="${comment.id}">`)
    expect(sb.store.issue('ENG-5')!.delegateId).toBeNull()
  })

  test('a prompt sends `prompted` with the prompt activity (content.body) and a stop signal when asked', async () => {
    const id = await delegate()
    const reply = await sandboxPrompt(sb.baseUrl, { session: id, body: 'use port 8080' })
    const stop = await sandboxPrompt(sb.baseUrl, { session: id, signal: 'stop' })
    expect(rx.received.map((r) => r.body.action)).toEqual(['created', 'prompted', 'prompted'])
    for (const r of rx.received) expect(verifier.verify(Buffer.from(r.raw), r.headers['linear-signature'] as string)).toBe(true)
    expect(rx.received[1]!.body.agentActivity).toMatchObject({
      id: reply.activity.id,
      agentSessionId: id,
      content: { type: 'prompt', body: 'use port 8080' },
      signal: null,
      user: { email: 'riley@rose.test' },
    })
    expect(rx.received[2]!.body.agentActivity).toMatchObject({ id: stop.activity.id, content: { type: 'prompt' }, signal: 'stop' })
    expect(rx.received[2]!.body.promptContext).toBeUndefined()
  })

  test('a non-2xx answer is retried after the configured delays under the same Linear-Delivery, re-signed with a fresh timestamp', async () => {
    await sb.stop()
    sb = await startSandbox({ seed: SEED, webhook: { url: rx.url, secret: SECRET, retryDelaysMs: [20, 50] } })
    rx.plan.push(500, 503)
    const res = await sandboxDelegate(sb.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test' })
    expect(res.delivery.attempts.map((a: any) => a.status)).toEqual([500])
    await until(() => rx.received.length === 3, 'two retries')
    expect(new Set(rx.received.map((r) => r.headers['linear-delivery']))).toEqual(new Set([res.delivery.id]))
    for (const r of rx.received) expect(verifier.verify(Buffer.from(r.raw), r.headers['linear-signature'] as string)).toBe(true)
    const stamps = rx.received.map((r) => r.body.webhookTimestamp as number)
    expect(stamps[1]!).toBeGreaterThan(stamps[0]!)
    expect(stamps[2]!).toBeGreaterThan(stamps[1]!)
    await until(() => sb.webhooks.deliveries[0]!.state === 'delivered', 'the delivery recorded as delivered')
    expect(sb.webhooks.deliveries[0]!.attempts.map((a) => a.status)).toEqual([500, 503, 200])
  })

  test('a receiver that does not answer within timeoutMs (Linear: 5 s) is a failed attempt, retried like a non-2xx', async () => {
    await sb.stop()
    sb = await startSandbox({ seed: SEED, webhook: { url: rx.url, secret: SECRET, retryDelaysMs: [10], timeoutMs: 200 } })
    rx.plan.push(0)
    const res = await sandboxDelegate(sb.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test' })
    expect(res.delivery.attempts[0]).toMatchObject({ status: null, error: 'no answer within 200 ms' })
    await until(() => sb.webhooks.deliveries[0]!.state === 'delivered', 'the retry answered')
    expect(sb.webhooks.deliveries[0]!.attempts.map((a) => a.status)).toEqual([null, 200])
  })

  test('redeliver repeats a delivery under its id; duplicate sends it again under a new id; both are recorded', async () => {
    const first = await sandboxDelegate(sb.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test' })
    await sandboxRedeliver(sb.baseUrl, first.delivery.id)
    const dup = await sandboxDuplicate(sb.baseUrl)
    const deliveries = rx.received.map((r) => r.headers['linear-delivery'])
    expect(deliveries).toEqual([first.delivery.id, first.delivery.id, dup.delivery.id])
    expect(dup.delivery.id).not.toBe(first.delivery.id)
    expect(rx.received.map((r) => r.body.agentSession.id)).toEqual(Array(3).fill(first.session.id))
    const recorded = await sandboxDeliveries(sb.baseUrl)
    expect(recorded.map((d: any) => [d.id, d.duplicateOf, d.attempts.length])).toEqual([
      [first.delivery.id, null, 2],
      [dup.delivery.id, first.delivery.id, 1],
    ])
    expect(await sandboxSessions(sb.baseUrl, 'ENG-1')).toHaveLength(1)
  })

  test('a receiver that is down is recorded as a failed delivery with the error, and the session still exists', async () => {
    await rx.stop()
    const res = await sandboxDelegate(sb.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test' })
    expect(res.delivery.state).toBe('failed')
    expect(res.delivery.attempts[0]).toMatchObject({ status: null })
    expect(res.delivery.attempts[0].error).toBeTruthy()
    expect(sb.store.data.agentSessions).toHaveLength(1)
    rx = await startReceiver()
  })
})

describe('the sandbox CLI agent verbs', () => {
  test('serve --webhook-url sends webhooks; delegate, prompt, stop, deliveries and activities drive it from other processes', async () => {
    const script = join(root, 'scripts/sandbox.ts')
    const seedFile = join(dir, 'seed.json')
    writeFileSync(seedFile, JSON.stringify(SEED))
    const env = { ...process.env, SANDBOX_WEBHOOK_SECRET: SECRET }
    const proc = spawn(process.execPath, [script, 'serve', '--json', '--seed', seedFile, '--webhook-url', rx.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    })
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = ''
        proc.stdout.on('data', (c: Buffer) => {
          out += c.toString()
          if (out.includes('\n')) resolve(out.split('\n')[0]!)
        })
        proc.on('exit', (code) => reject(new Error(`serve exited with ${code}`)))
      })
      const info = JSON.parse(line) as { baseUrl: string; users: { email: string; app: boolean }[] }
      expect(info.users.filter((u) => u.app).map((u) => u.email)).toEqual(['rosie@oauthapp.rose.test'])
      const cli = (...args: string[]) =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          const p = spawn(process.execPath, [script, ...args, '--url', info.baseUrl], { stdio: ['ignore', 'pipe', 'pipe'] })
          let out = ''
          let err = ''
          p.stdout.on('data', (c: Buffer) => (out += c))
          p.stderr.on('data', (c: Buffer) => (err += c))
          p.on('exit', (code) => resolve({ code, out, err }))
        })
      const delegated = await cli('delegate', '--issue', 'ENG-1', '--app', 'rosie')
      expect(delegated.code).toBe(0)
      const session = JSON.parse(delegated.out).session
      // Without --user the human is the issue's assignee.
      expect(rx.received[0]!.body.agentSession).toMatchObject({ id: session.id, creator: { email: 'agent@rose.test' } })
      expect((await cli('prompt', '--session', session.id, '--body', 'also add a test')).code).toBe(0)
      expect((await cli('stop', '--session', session.id)).code).toBe(0)
      expect(rx.received.map((r) => [r.body.action, r.body.agentActivity?.signal ?? null])).toEqual([
        ['created', null],
        ['prompted', null],
        ['prompted', 'stop'],
      ])
      for (const r of rx.received) expect(verifier.verify(Buffer.from(r.raw), r.headers['linear-signature'] as string)).toBe(true)
      const listed = JSON.parse((await cli('deliveries')).out)
      expect(listed.map((d: any) => [d.action, d.state, d.attempts.map((a: any) => a.status)])).toEqual([
        ['created', 'delivered', [200]],
        ['prompted', 'delivered', [200]],
        ['prompted', 'delivered', [200]],
      ])
      const sessions = JSON.parse((await cli('activities', '--issue', 'ENG-1')).out)
      expect(sessions[0].activities.map((a: any) => [a.content.body, a.signal])).toEqual([
        ['also add a test', null],
        ['Stop', 'stop'],
      ])
      const bad = await cli('prompt', '--session', 'nope', '--body', 'x')
      expect(bad.code).toBe(2)
      expect(bad.err).toContain('Entity not found: AgentSession')
    } finally {
      proc.kill('SIGTERM')
    }
    expect(
      await new Promise<number | null>((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.on('exit', resolve))),
    ).toBe(0)
  }, 30_000)
})
