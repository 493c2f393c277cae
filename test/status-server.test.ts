/** The status server's JSON API (no browser): every route, the error shapes, the token rule, and refresh waking the real loop. */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { type IncomingMessage, request } from 'node:http'
import { join } from 'node:path'
import { readState, updateState } from '../lib/state.ts'
import { type StatusServer, startStatusServer } from '../lib/status-server.ts'
import { fixture, type Fixture, ROOT, until } from './helpers.ts'

let fx: Fixture | undefined
let server: StatusServer | undefined
let loopPid: number | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
  if (loopPid) {
    try {
      process.kill(-loopPid, 'SIGKILL')
    } catch {}
    loopPid = undefined
  }
  await fx?.cleanup()
  fx = undefined
})

const THREE = [
  { team: 'ENG', title: 'Done one', assignee: 'agent@rose.test', priority: 3 },
  { team: 'ENG', title: 'Escalated one', assignee: 'agent@rose.test', priority: 3 },
  { team: 'ENG', title: 'Queued urgent', assignee: 'agent@rose.test', priority: 1 },
]

/** A factory home after one real tick (three issues done), then ENG-2 escalated and ENG-3 queued again. */
async function seededHome(): Promise<Fixture> {
  const f = await fixture({
    issues: THREE,
    agentYaml: (o) =>
      `agents:\n  - name: tester\n    engine: console\n    concurrency: 3\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
  })
  expect((await f.script('start', ['--once', '--config', f.configPath])).code).toBe(0)
  updateState(join(f.home, 'state.json'), (d) => {
    const issues = Object.values(d.agents.tester!.issues)
    Object.assign(
      issues.find((r) => r.identifier === 'ENG-2')!,
      {
        phase: 'escalated',
        attempts: 3,
        lastError: { code: 'engine_stalled', message: 'no output for 300 s' },
      },
    )
    Object.assign(
      issues.find((r) => r.identifier === 'ENG-3')!,
      { phase: 'queued' },
    )
  })
  return f
}

const call = async (s: StatusServer, method: string, path: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: method === 'POST' ? { 'content-type': 'application/json', ...headers } : headers,
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text }
}

describe('GET', () => {
  test('/api/v1/state lists per agent the escalated, the queued in dispatch order and the recent runs with their PR state', async () => {
    fx = await seededHome()
    server = await startStatusServer({ home: fx.home, port: 0, agents: { tester: { engine: 'console' } } })
    const { status, body } = await call(server, 'GET', '/api/v1/state')
    expect(status).toBe(200)
    expect(body).toMatchObject({ home: fx.home, mode: 'watch', pid: process.pid })
    const a = body.agents.tester
    expect(a.engine).toBe('console')
    expect(a.poll.lastPollAt).toBeString()
    expect(a.rateLimit).toBeNull()
    expect(a.running).toEqual([])
    expect(a.queued.map((i: { identifier: string }) => i.identifier)).toEqual(['ENG-3'])
    expect(a.escalated).toMatchObject([{ identifier: 'ENG-2', attempts: 3, lastError: { code: 'engine_stalled' } }])
    const one = a.recent.find((r: { identifier: string }) => r.identifier === 'ENG-1')
    expect(one).toMatchObject({ n: 1, state: 'success', linearState: 'In Review', engine: 'console' })
    // The queued issue's last run is not shown as running: it is over, and the issue waits for its next run.
    expect(a.recent.find((r: { identifier: string }) => r.identifier === 'ENG-3').state).toBe('success')
  }, 60_000)

  test('/api/v1/issues/:key gives the runs with transcript paths, the worktree and the last error with its fix', async () => {
    fx = await seededHome()
    server = await startStatusServer({ home: fx.home, port: 0 })
    const { status, body } = await call(server, 'GET', '/api/v1/issues/ENG-2')
    expect(status).toBe(200)
    expect(body).toMatchObject({ agent: 'tester', identifier: 'ENG-2', phase: 'escalated', group: 'escalated', linearState: 'In Review' })
    expect(body.lastError).toMatchObject({ code: 'engine_stalled', fix: expect.stringContaining('stall_seconds') })
    expect(body.next).toContain('rose-factory retry --issue ENG-2')
    expect(body.worktree).toBe(join(fx.home, 'worktrees', 'tester', 'ENG-2'))
    expect(body.runs[0].transcript).toEqual({ path: join(fx.home, 'logs', 'tester', 'ENG-2', 'run-1.log'), exists: true })
  }, 60_000)

  test('/ serves the status page', async () => {
    fx = await fixture({ issues: [] })
    server = await startStatusServer({ home: fx.home, port: 0 })
    const page = await call(server, 'GET', '/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.body).toContain('<title>rose-factory status</title>')
    expect(page.body).toContain('/api/v1/state')
  }, 30_000)
})

describe('errors are {"error":{"code","message"}} with the status that fits', () => {
  test('404 for an unknown issue or route, 405 with Allow for a wrong method, 400 for a bad key, an unknown agent or a POST without JSON', async () => {
    fx = await seededHome()
    server = await startStatusServer({ home: fx.home, port: 0 })
    const cases: [string, string, number, string, RegExp][] = [
      ['GET', '/api/v1/issues/ENG-99', 404, 'issue_unknown', /no issue ENG-99 on record/],
      ['POST', '/api/v1/issues/ENG-99/retry', 404, 'issue_unknown', /ENG-99/],
      ['GET', '/api/v1/nope', 404, 'not_found', /no API route \/api\/v1\/nope/],
      ['GET', '/favicon.ico', 404, 'not_found', /the status page is at \//],
      ['POST', '/api/v1/state', 405, 'method_not_allowed', /use GET/],
      ['GET', '/api/v1/refresh', 405, 'method_not_allowed', /use POST/],
      ['GET', '/api/v1/issues/ENG-2/retry', 405, 'method_not_allowed', /use POST/],
      ['DELETE', '/', 405, 'method_not_allowed', /use GET/],
      ['GET', '/api/v1/issues/%E0%A4%A', 400, 'bad_request', /not valid percent-encoding/],
      ['GET', '/api/v1/issues/ENG-1?agent=nope', 400, 'usage', /unknown agent "nope".*tester/],
    ]
    for (const [method, path, code, errorCode, message] of cases) {
      const res = await call(server, method, path)
      expect([path, res.status], JSON.stringify(res.body)).toEqual([path, code])
      expect(res.body).toEqual({ error: { code: errorCode, message: expect.stringMatching(message) } })
    }
    expect((await call(server, 'POST', '/api/v1/state')).headers.get('allow')).toBe('GET')
    const form = await fetch(`${server.url}/api/v1/issues/ENG-2/retry`, { method: 'POST', headers: { 'content-type': 'text/plain' } })
    expect(form.status).toBe(400)
    expect(await form.json()).toEqual({ error: { code: 'bad_request', message: 'POST needs Content-Type: application/json' } })
    // Nothing above changed anything.
    const phases = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues).map((r) => [r.identifier, r.phase])
    expect(phases.sort()).toEqual([
      ['ENG-1', 'done'],
      ['ENG-2', 'escalated'],
      ['ENG-3', 'queued'],
    ])
  }, 60_000)

  test('POST /api/v1/refresh on a server that owns no loop is 409 and says why', async () => {
    fx = await fixture({ issues: [] })
    server = await startStatusServer({ home: fx.home, port: 0 })
    const res = await call(server, 'POST', '/api/v1/refresh')
    expect(res.status).toBe(409)
    expect(res.body.error.code).toBe('not_owner')
    expect(res.body.error.message).toContain('owns no loop to tick')
  }, 30_000)
})

describe('POST retry and cancel', () => {
  test('retry queues an escalated issue (then 409: already queued); cancel of a done issue is 409 with the reason', async () => {
    fx = await seededHome()
    server = await startStatusServer({ home: fx.home, port: 0 })
    const retry = await call(server, 'POST', '/api/v1/issues/ENG-2/retry')
    expect(retry.status).toBe(200)
    expect(retry.body).toMatchObject({ ok: true, issue: { identifier: 'ENG-2', phase: 'queued', attempts: 0 } })
    const again = await call(server, 'POST', '/api/v1/issues/ENG-2/retry')
    expect(again.status).toBe(409)
    expect(again.body.error).toMatchObject({
      code: 'phase_conflict',
      message: expect.stringContaining('queued: already queued or running'),
    })
    const cancelDone = await call(server, 'POST', '/api/v1/issues/ENG-1/cancel')
    expect(cancelDone.status).toBe(409)
    expect(cancelDone.body.error.message).toContain('done: nothing queued or running to cancel')
    const cancel = await call(server, 'POST', '/api/v1/issues/ENG-3/cancel')
    expect(cancel.status).toBe(200)
    expect(cancel.body).toMatchObject({ ok: true, run: 'no run was under way', issue: { phase: 'released', group: 'released' } })
    expect(cancel.body.issue.next).toContain('rose-factory retry --issue ENG-3')
  }, 60_000)
})

describe('the token', () => {
  test('a non-loopback --host without ROSE_STATUS_TOKEN is refused with exit 2, by status --serve and by start --port', async () => {
    fx = await fixture({ issues: [] })
    for (const [script, args] of [
      ['status', ['--serve', '0', '--host', '0.0.0.0']],
      ['start', ['--port', '0', '--host', '0.0.0.0', '--config', fx.configPath]],
    ] as const) {
      const res = await fx.script(script, [...args])
      expect(res.code, res.stderr).toBe(2)
      expect(res.stderr).toContain('--host 0.0.0.0 exposes the status API beyond this machine, and ROSE_STATUS_TOKEN is not set')
      expect(res.stderr).toContain('fix: export ROSE_STATUS_TOKEN=')
    }
  }, 30_000)

  test('when set, every API call needs it as a Bearer token (401 otherwise); the page itself carries no data', async () => {
    fx = await fixture({ issues: [] })
    const token = 'status-token-for-tests-0001'
    server = await startStatusServer({ home: fx.home, port: 0, token })
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: token }] as Record<string, string>[]) {
      const res = await call(server, 'GET', '/api/v1/state', headers)
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer')
      expect(res.body.error.code).toBe('unauthorized')
    }
    expect((await call(server, 'GET', '/api/v1/state', { authorization: `Bearer ${token}` })).status).toBe(200)
    expect((await call(server, 'POST', '/api/v1/refresh', {})).status).toBe(401)
    expect((await call(server, 'GET', '/')).status).toBe(200)
  }, 30_000)

  test('without a token, a request naming a host other than loopback is refused (DNS rebinding)', async () => {
    fx = await fixture({ issues: [] })
    server = await startStatusServer({ home: fx.home, port: 0 })
    const res = await new Promise<{ status: number; body: string }>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: server!.port, path: '/api/v1/state', headers: { host: 'evil.example:80' } },
        (r: IncomingMessage) => {
          let body = ''
          r.on('data', (c: Buffer) => (body += c))
          r.on('end', () => resolve({ status: r.statusCode!, body }))
        },
      )
      req.end()
    })
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body).error.code).toBe('bad_host')
  }, 30_000)
})

describe('start --port', () => {
  test('serves the loop it runs: POST /api/v1/refresh ticks now, long before the poll interval, and a newly assigned issue runs', async () => {
    fx = await fixture({
      issues: [{ team: 'ENG', title: 'Later', priority: 2 }],
      agentYaml: (o) =>
        `poll_interval_seconds: 3600\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n`,
    })
    const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', fx.configPath, '--port', '0'], {
      cwd: fx.dir,
      env: fx.env,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    })
    loopPid = child.pid
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    await until('the server listens', () => /status page and API on (http:\/\/\S+)/.test(stderr))
    const url = /status page and API on (http:\/\/\S+)/.exec(stderr)![1]!
    await until('the first tick', () => existsSync(join(fx!.home, 'poll', 'tester.json')))
    const state = await (await fetch(`${url}/api/v1/state`)).json()
    expect(state).toMatchObject({ mode: 'loop', agents: { tester: { engine: 'console', running: [], queued: [] } } })

    fx.sandbox.store.updateIssue('ENG-1', { assigneeId: fx.sandbox.store.userByEmail('agent@rose.test')!.id })
    const res = await fetch(`${url}/api/v1/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(202)
    // The run moves the issue to In Review, then records that it is done.
    const phase = () => Object.values(readState(join(fx!.home, 'state.json')).agents.tester?.issues ?? {})[0]?.phase
    await until('ENG-1 is done', () => phase() === 'done')
    const detail = await (await fetch(`${url}/api/v1/issues/ENG-1`)).json()
    expect(detail).toMatchObject({ phase: 'done', linearState: 'In Review' })
    process.kill(-child.pid!, 'SIGTERM')
    expect(await new Promise((r) => child.on('close', r))).toBe(0)
    loopPid = undefined
  }, 60_000)
})
