/**
 * agent_session mode end to end, all real processes on 127.0.0.1: the sandbox (Linear's schema,
 * agent sessions, signed webhooks, client_credentials), a relay process on SQLite, the worker
 * (`start --once` with the console engine), a bare origin and the fake GitHub. The worker holds
 * only the relay's worker token; every Linear call goes through the relay.
 */
import { afterAll, afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { sandboxDelegate, sandboxPrompt, sandboxSessions, sandboxSetWebhook } from '../lib/sandbox/client.ts'
import { startSandbox, type Sandbox } from '../lib/sandbox/server.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { spawnRelay, type RelayProcess } from './fakes/relay-process.ts'
import { WEBHOOK_SECRET, WORKER_TOKEN } from './fakes/webhooks.ts'
import { gitSync, makeOrigin, ROOT, tempDir } from './helpers.ts'

const GH_TOKEN = 'gh-test-token-agent-session'
const APP_TOKEN = 'lin_oauth_test_rosie_app_token'
const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

interface Setup {
  dir: string
  home: string
  sandbox: Sandbox
  relay: RelayProcess
  gh: Awaited<ReturnType<typeof startFakeGitHub>>
  origin: string
  env: Record<string, string>
  /** `start --once` (or other args) as the worker, to the end. */
  start(args?: string[]): Promise<{ code: number | null; stderr: string }>
  session(id: string): Promise<{ status: string; activities: { id: string; content: { type: string; body?: string; action?: string } }[] }>
  stop(): Promise<void>
}
let s: Setup | undefined

async function setup(): Promise<Setup> {
  const dir = tempDir('rose-session-')
  dirs.push(dir)
  const home = join(dir, 'home')
  mkdirSync(home, { recursive: true })
  const origin = makeOrigin(dir)
  const sandbox = await startSandbox({
    port: 0,
    dataPath: join(dir, 'sandbox.json'),
    seed: {
      organization: { name: 'Rose Test', urlKey: 'rose-test' },
      teams: [{ key: 'ENG', name: 'Engineering' }],
      users: [
        { name: 'Riley Reviewer', email: 'riley@rose.test', apiKey: 'lin_api_test_riley_key' },
        {
          name: 'Rosie',
          email: 'rosie@app.rose.test',
          apiKey: APP_TOKEN,
          app: { clientId: 'rosie-client', clientSecret: 'rosie-client-secret' },
        },
      ],
      issues: [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz answers ok' }],
    },
  })
  const relay = await spawnRelay(['--local-queue', join(dir, 'relay', 'queue.db'), '--client-credentials'], {
    FACTORY_HOME: join(dir, 'relay-home'),
    LINEAR_CLIENT_ID: 'rosie-client',
    LINEAR_CLIENT_SECRET: 'rosie-client-secret',
    LINEAR_API_URL: sandbox.url,
    LINEAR_OAUTH_URL: sandbox.baseUrl,
  })
  await sandboxSetWebhook(sandbox.baseUrl, { url: `${relay.url}/webhooks/linear`, secret: WEBHOOK_SECRET })
  const gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], origin) !== '' })
  writeFileSync(
    join(home, 'agents.yaml'),
    `poll_interval_seconds: 1\nagents:\n  - name: rosie\n    engine: console\n    tracker: { mode: agent_session, relay_url: ${relay.url}, token_env: FACTORY_RELAY_WORKER_TOKEN, activity_interval_seconds: 0 }\n    repo: { url: ${origin}, base: main, github: acme/app }\n`,
  )
  // The worker's env: the relay's worker token and GitHub's; no Linear token at all.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    FACTORY_HOME: home,
    FACTORY_RELAY_WORKER_TOKEN: WORKER_TOKEN,
    FACTORY_GITHUB_TOKEN: GH_TOKEN,
    GITHUB_API_URL: gh.url,
  }
  return {
    dir,
    home,
    sandbox,
    relay,
    gh,
    origin,
    env,
    start(args = ['--once']) {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), ...args], {
          cwd: dir,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let stderr = ''
        child.stdout.on('data', (d) => (stderr += d))
        child.stderr.on('data', (d) => (stderr += d))
        child.on('close', (code) => resolve({ code, stderr }))
      })
    },
    async session(id) {
      const all = await sandboxSessions(sandbox.baseUrl)
      return all.find((x: { id: string }) => x.id === id)
    },
    async stop() {
      await relay.stop()
      await gh.stop()
      await sandbox.stop()
    },
  }
}

beforeEach(async () => {
  s = await setup()
})
afterEach(async () => {
  await s?.stop()
})

const delegate = async () =>
  (await sandboxDelegate(s!.sandbox.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test', app: 'rosie@app.rose.test' })).session.id as string
const issueState = () => {
  const d = s!.sandbox.store.data
  const i = s!.sandbox.store.issue('ENG-1')!
  return d.states.find((x) => x.id === i.stateId)!.name
}

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
