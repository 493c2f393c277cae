/**
 * agent_session mode end to end, all real processes on 127.0.0.1: the sandbox (Linear's schema,
 * agent sessions, signed webhooks, client_credentials), a relay process on SQLite, the worker
 * (`start --once` with the console engine), a bare origin and the fake GitHub. The worker holds
 * only the relay's worker token; every Linear call goes through the relay.
 */
import { afterAll, afterEach, beforeEach, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxMention, sandboxPrompt } from '../lib/sandbox/client.ts'
import { APP_TOKEN, removeSetups, setup, type Setup } from './fakes/agent-session-setup.ts'
import { WORKER_TOKEN } from './fakes/webhooks.ts'
import { gitSync } from './helpers.ts'

afterAll(removeSetups)
let s: Setup | undefined

beforeEach(async () => {
  s = await setup()
})
afterEach(async () => {
  await s?.stop()
})

const delegate = () => s!.delegate()
const issueState = () => s!.issueState()

test('a delegated issue: first thought from the relay, progress activities, the PR on the session, In Review, one final response', async () => {
  const sessionId = await delegate()
  const run = await s!.start()
  expect(run.code, run.stderr).toBe(0)
  const session = await s!.session(sessionId)
  const types = session.activities.map((a) => a.content.type)
  console.log(`activities: ${types.join(' ')}`)
  expect(types[0]).toBe('thought') // the relay's "Received: queued for a worker"
  expect(types.filter((t) => t === 'response')).toHaveLength(1)
  expect(types.at(-1)).toBe('response')
  expect(types.filter((t) => t === 'action').length).toBeGreaterThan(0)
  expect(session.status).toBe('complete')
  expect(s!.gh.prs).toHaveLength(1)
  const links = s!.sandbox.store.data.agentSessions.find((x) => x.id === sessionId)?.externalUrls ?? []
  expect(JSON.stringify(links)).toContain(s!.gh.prs[0]!.html_url)
  expect(issueState()).toBe('In Review')
  // In this mode the response IS the summary: no comment on the issue.
  const issue = s!.sandbox.store.issue('ENG-1')!
  expect(s!.sandbox.store.data.comments.filter((c) => c.issueId === issue.id)).toHaveLength(0)
  // The worker's home and logs hold no Linear token.
  const files = readdirSync(s!.home, { recursive: true }).map(String)
  for (const f of files.filter((x) => x.endsWith('.json') || x.endsWith('.log') || x.endsWith('.yaml'))) {
    let text = ''
    try {
      text = readFileSync(join(s!.home, f), 'utf8')
    } catch {
      continue
    }
    expect(text.includes(APP_TOKEN), f).toBe(false)
  }
  expect(run.stderr).not.toContain(APP_TOKEN)
  expect(run.stderr).not.toContain(WORKER_TOKEN)
}, 120_000)

test('a reply in the session reruns in the same worktree with the reply as the prompt, and answers once more', async () => {
  const sessionId = await delegate()
  expect((await s!.start()).code).toBe(0)
  await sandboxPrompt(s!.sandbox.baseUrl, { session: sessionId, body: 'please also add a test', user: 'riley@rose.test' })
  const again = await s!.start()
  expect(again.code, again.stderr).toBe(0)
  const session = await s!.session(sessionId)
  expect(session.activities.filter((a) => a.content.type === 'response')).toHaveLength(2)
  expect(s!.gh.prs).toHaveLength(1)
  const branch = s!.gh.prs[0]!.head
  const notes = gitSync(['show', `${branch}:FACTORY_NOTES.md`], s!.origin)
  expect(notes).toContain('please also add a test')
}, 120_000)

test('stop on a queued session: nothing runs, one response says it stopped', async () => {
  const sessionId = await delegate()
  await Bun.sleep(300)
  await sandboxPrompt(s!.sandbox.baseUrl, { session: sessionId, signal: 'stop', user: 'riley@rose.test' })
  const run = await s!.start()
  expect(run.code, run.stderr).toBe(0)
  const session = await s!.session(sessionId)
  const responses = session.activities.filter((a) => a.content.type === 'response')
  expect(responses).toHaveLength(1)
  expect(responses[0]!.content.body).toContain('Stopped as asked')
  expect(s!.gh.prs).toHaveLength(0)
}, 120_000)

test('a mention on an issue delegated to nobody runs it and makes the agent its delegate', async () => {
  const { session } = await sandboxMention(s!.sandbox.baseUrl, {
    issue: 'ENG-1',
    user: 'riley@rose.test',
    app: 'rosie@app.rose.test',
    body: '@rosie can you take this?',
  })
  const issue = () => s!.sandbox.store.issue('ENG-1')!
  expect(issue().delegateId).toBeNull()
  const run = await s!.start()
  expect(run.code, run.stderr).toBe(0)
  expect(issue().delegateId).toBe(s!.sandbox.store.userByEmail('rosie@app.rose.test')!.id)
  expect(issueState()).toBe('In Review')
  expect((await s!.session(session.id)).activities.at(-1)?.content.type).toBe('response')
}, 120_000)

test('stop on a finished session is answered that nothing was running, and runs nothing', async () => {
  const sessionId = await delegate()
  expect((await s!.start()).code).toBe(0)
  await sandboxPrompt(s!.sandbox.baseUrl, { session: sessionId, signal: 'stop', user: 'riley@rose.test' })
  const again = await s!.start()
  expect(again.code, again.stderr).toBe(0)
  const responses = (await s!.session(sessionId)).activities.filter((a) => a.content.type === 'response')
  expect(responses).toHaveLength(2)
  expect(responses[1]!.content.body).toContain('Nothing was running')
  expect(s!.gh.prs).toHaveLength(1)
  expect(s!.record()?.runs).toHaveLength(1)
}, 120_000)
