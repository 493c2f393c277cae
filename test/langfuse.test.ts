/**
 * Langfuse traces: the batch a run plans (checked against the documented ingestion shapes), the
 * sender's retry and warnings, and the real pipeline against a fake ingestion server on 127.0.0.1:
 * one trace per run, no secret in any payload, a Langfuse outage never fails a run, and with the
 * variables unset no request and lib/langfuse.ts never loaded.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.ts'
import { agentContext } from '../lib/context.ts'
import type { Engine } from '../lib/engines/types.ts'
import { planTrace, type RunFacts, traceId } from '../lib/langfuse.ts'
import { sendBatch, type SendDeps } from '../lib/langfuse-send.ts'
import { langfuseSecretNames, langfuseSettings, langfuseWarning } from '../lib/langfuse-settings.ts'
import { redactorFor } from '../lib/log.ts'
import { runIssue } from '../lib/run.ts'
import { readState } from '../lib/state.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { ingestionEventSchema, type RecordedEvent, startFakeLangfuse } from './fakes/langfuse.ts'
import { type Fixture, fixture, gitSync, ROOT } from './helpers.ts'

const PUBLIC = 'langfuse-test-public-0123'
const SECRET = 'langfuse-test-secret-4567'
const LINEAR_KEY = 'lin_api_langfuse_agent_key_5150'
const GH_TOKEN = 'github-test-token-langfuse-77'
const SECRETS = [SECRET, LINEAR_KEY, GH_TOKEN]

const stops: (() => Promise<void>)[] = []
let fx: Fixture | undefined
afterEach(async () => {
  for (const s of stops.splice(0)) await s()
  await fx?.cleanup()
  fx = undefined
})

const FACTS: RunFacts = {
  agent: 'tester',
  issueId: 'issue-uuid-1',
  identifier: 'ENG-7',
  title: 'Add a health check',
  runNumber: 2,
  engine: 'claude',
  model: 'claude-sonnet-4-5',
  outcome: 'success',
  prUrl: 'http://127.0.0.1:1/acme/app/pull/3',
  summary: 'Added /healthz.',
  usage: { inputTokens: 1200, outputTokens: 340, cachedInputTokens: 800 },
  costUsd: 0.0421,
  steps: {
    claim: { start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T00:00:00.250Z' },
    worktree: { start: '2026-01-01T00:00:00.250Z', end: '2026-01-01T00:00:01.000Z' },
    engine: { start: '2026-01-01T00:00:01.000Z', end: '2026-01-01T00:01:01.000Z' },
    report: { start: '2026-01-01T00:01:01.000Z', end: '2026-01-01T00:01:03.000Z' },
  },
}
const NOW = new Date('2026-01-01T00:01:03.500Z')
const noRedact = (t: string) => t

describe('the trace of a run', () => {
  test('one trace with a span per step, the engine a generation with its model, tokens and cost, each event in the documented shape', () => {
    const { batch } = planTrace(FACTS, noRedact, NOW)
    expect(batch.map((e) => e.type)).toEqual(['trace-create', 'span-create', 'span-create', 'generation-create', 'span-create'])
    for (const e of batch) expect(ingestionEventSchema.safeParse(e).error).toBeUndefined()
    const [trace, ...obs] = batch
    expect(trace!.body).toMatchObject({
      id: traceId('tester', 'issue-uuid-1', 2),
      name: 'ENG-7 run #2',
      timestamp: '2026-01-01T00:00:00.000Z',
      sessionId: 'tester/ENG-7',
      tags: ['tester', 'claude', 'success'],
      input: 'Add a health check',
      output: 'Added /healthz.',
      metadata: {
        agent: 'tester',
        issue: 'ENG-7',
        run: 2,
        engine: 'claude',
        model: 'claude-sonnet-4-5',
        outcome: 'success',
        durationMs: 63_000,
        inputTokens: 1200,
        outputTokens: 340,
        costUsd: 0.0421,
        prUrl: 'http://127.0.0.1:1/acme/app/pull/3',
      },
    })
    expect(obs.map((o) => o.body.name)).toEqual(['claim', 'worktree', 'engine', 'report'])
    expect(obs.every((o) => o.body.traceId === trace!.body.id && o.body.level === 'DEFAULT')).toBe(true)
    expect(obs[2]!.body).toMatchObject({
      model: 'claude-sonnet-4-5',
      usageDetails: { input: 1200, output: 340, total: 1540, cached_input: 800 },
      costDetails: { total: 0.0421 },
      startTime: '2026-01-01T00:00:01.000Z',
      endTime: '2026-01-01T00:01:01.000Z',
      metadata: { durationMs: 60_000, engine: 'claude' },
    })
  })

  test('the same run planned again (a resumed report) has the same trace and observation ids; another run another trace', () => {
    const first = planTrace(FACTS, noRedact, NOW).batch
    const later = { ...FACTS, steps: { ...FACTS.steps, report: { start: '2026-01-01T01:00:00.000Z', end: '2026-01-01T01:00:02.000Z' } } }
    const again = planTrace(later, noRedact, new Date('2026-01-01T01:00:03.000Z')).batch
    expect(again.map((e) => e.body.id)).toEqual(first.map((e) => e.body.id))
    // Identical content is the identical event (Langfuse drops the repeat); changed content is an update.
    expect(planTrace(FACTS, noRedact, new Date()).batch.map((e) => e.id)).toEqual(first.map((e) => e.id))
    expect(again.at(-1)!.id).not.toBe(first.at(-1)!.id)
    const next = planTrace({ ...FACTS, runNumber: 3 }, noRedact, NOW).batch
    expect(next[0]!.body.id).not.toBe(first[0]!.body.id)
    expect(new Set([...first, ...next].map((e) => e.body.id)).size).toBe(10)
  })

  test("a failure is on the step that failed (the engine's on its generation) with the run's error code as outcome", () => {
    const failed = planTrace({ ...FACTS, outcome: 'engine_timeout', error: { step: 'engine', message: 'run #2 timeout' } }, noRedact, NOW)
    const engine = failed.batch.find((e) => e.body.name === 'engine')!
    expect(engine.body).toMatchObject({ level: 'ERROR', statusMessage: 'run #2 timeout' })
    expect(failed.batch[0]!.body).toMatchObject({ output: 'run #2 timeout', tags: ['tester', 'claude', 'engine_timeout'] })
    expect(failed.batch.filter((e) => e.body.level === 'ERROR')).toHaveLength(1)
  })

  test('every string goes through the redactor: a token in the title, the summary or the error never leaves', () => {
    const redact = redactorFor({ LINEAR_API_KEY: LINEAR_KEY, LANGFUSE_SECRET_KEY: SECRET, GITHUB_TOKEN: GH_TOKEN })
    const leaky = {
      ...FACTS,
      title: `rotate ${LINEAR_KEY}`,
      summary: `printed ${GH_TOKEN} and ${SECRET}`,
      error: { step: 'report' as const, message: `push failed for ${GH_TOKEN}` },
    }
    const text = JSON.stringify(planTrace(leaky, redact, NOW))
    for (const s of SECRETS) expect(text).not.toContain(s)
    expect(text).toContain('rotate ***')
  })
})

describe('settings', () => {
  test('tracing is on only with LANGFUSE_HOST and both keys; a half set-up is named with its fix; Secret Manager is asked only once the host is set', () => {
    const keys = { LANGFUSE_PUBLIC_KEY: PUBLIC, LANGFUSE_SECRET_KEY: SECRET }
    expect(langfuseSettings(keys)).toBeUndefined()
    expect(langfuseWarning(keys)).toContain('LANGFUSE_HOST is not')
    expect(langfuseSecretNames(keys)).toEqual([])
    const host = { LANGFUSE_HOST: 'http://127.0.0.1:3000' }
    expect(langfuseWarning(host)).toContain('LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not')
    expect(langfuseSecretNames(host)).toEqual(['LANGFUSE_PUBLIC_KEY', 'LANGFUSE_SECRET_KEY'])
    expect(langfuseSettings({ ...host, ...keys })).toEqual({ host: 'http://127.0.0.1:3000', publicKey: PUBLIC, secretKey: SECRET })
    expect(langfuseWarning({ ...host, ...keys })).toBeUndefined()
    expect(langfuseWarning({})).toBeUndefined()
    // The host is no secret (warnings name it); the keys are.
    expect(redactorFor({ ...host, ...keys })(`to ${host.LANGFUSE_HOST} as ${PUBLIC}:${SECRET}`)).toBe(`to ${host.LANGFUSE_HOST} as ***:***`)
  })
})

const fastDeps = (over: Partial<SendDeps> = {}): SendDeps => ({
  fetch: (url, init) => fetch(url, init),
  sleep: async () => {},
  timeoutMs: 5_000,
  ...over,
})
const settingsFor = (host: string) => ({ host, publicKey: PUBLIC, secretKey: SECRET })

describe('sending', () => {
  test('a 207 with refused events says which; the request carries Basic auth and nothing else secret', async () => {
    const lf = await startFakeLangfuse({ publicKey: PUBLIC, secretKey: SECRET, mode: 'refuse' })
    stops.push(lf.stop)
    const res = await sendBatch(settingsFor(lf.url), planTrace(FACTS, noRedact, NOW), fastDeps())
    expect(res).toMatchObject({ sent: true, refused: expect.arrayContaining([expect.objectContaining({ status: 403 })]) })
    expect(lf.requests).toHaveLength(1)
    expect(lf.requests[0]!.invalid).toEqual([])
    expect(lf.requests[0]!.raw).not.toContain(SECRET)
  })

  test('a 500 is tried once more, then given up with the host named; wrong keys are not retried', async () => {
    const lf = await startFakeLangfuse({ publicKey: PUBLIC, secretKey: SECRET, mode: 'fail' })
    stops.push(lf.stop)
    const res = await sendBatch(settingsFor(`${lf.url}/`), planTrace(FACTS, noRedact, NOW), fastDeps())
    expect(res).toEqual({ sent: false, problem: `${lf.url} answered HTTP 500` })
    expect(lf.requests).toHaveLength(2)
    lf.setMode('normal')
    const wrong = await sendBatch({ ...settingsFor(lf.url), secretKey: 'not-the-secret' }, planTrace(FACTS, noRedact, NOW), fastDeps())
    expect(wrong).toEqual({ sent: false, problem: `${lf.url} answered HTTP 401 (check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)` })
    expect(lf.requests).toHaveLength(3)
  })

  test('an endpoint that never answers is given up after the time budget; one that refuses connections after a second try', async () => {
    const hung = createServer(() => {}) // accepts, never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r))
    stops.push(() => new Promise<void>((r) => (hung.closeAllConnections(), hung.close(() => r()))))
    const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`
    expect(await sendBatch(settingsFor(url), planTrace(FACTS, noRedact, NOW), fastDeps({ timeoutMs: 300 }))).toEqual({
      sent: false,
      problem: `${url} did not answer within 300 ms`,
    })
    let calls = 0
    const counting = fastDeps({ fetch: (u, i) => (calls++, fetch(u, i)) })
    const closed = await sendBatch(settingsFor('http://127.0.0.1:1'), planTrace(FACTS, noRedact, NOW), counting)
    expect(closed).toMatchObject({ sent: false, problem: expect.stringContaining('http://127.0.0.1:1 unreachable') })
    expect(calls).toBe(2)
  })
})

/** agents.yaml: the console engine, PRs to acme/app on the fake GitHub. */
const yaml = (origin: string) =>
  `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${origin}, base: main, github: acme/app }\n`
const ISSUE = [{ team: 'ENG', title: `Rotate the key ${LINEAR_KEY}`, description: 'It leaked.', assignee: 'agent@rose.test' }]

/** A fixture with a fake GitHub and a fake Langfuse; `env` for the scripts (Langfuse on). */
async function pipeline(mode: 'normal' | 'fail' = 'normal') {
  fx = await fixture({ issues: ISSUE, agentYaml: yaml, agentKey: LINEAR_KEY })
  const f = fx
  const gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], f.origin) !== '' })
  const lf = await startFakeLangfuse({ publicKey: PUBLIC, secretKey: SECRET, mode })
  stops.push(gh.stop, lf.stop)
  const github = { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: GH_TOKEN }
  const env = { ...github, LANGFUSE_HOST: lf.url, LANGFUSE_PUBLIC_KEY: PUBLIC, LANGFUSE_SECRET_KEY: SECRET }
  return { f, gh, lf, github, env, once: (e: Record<string, string> = env) => f.script('start', ['--once', '--config', f.configPath], e) }
}

const traces = (events: RecordedEvent[]) => events.filter((e) => e.type === 'trace-create')

describe('through the pipeline', () => {
  test('start --once: one trace for the run with its four steps, issue, agent, engine, outcome and PR; a rerun is a second trace; no secret in any payload', async () => {
    const { f, gh, lf, once } = await pipeline()
    const first = await once()
    expect(first.code, first.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    expect(lf.requests).toHaveLength(1)
    expect(lf.requests[0]!.invalid).toEqual([])
    const events = lf.events()
    expect(events.map((e) => `${e.type} ${e.body.name}`)).toEqual([
      'trace-create ENG-1 run #1',
      'span-create claim',
      'span-create worktree',
      'generation-create engine',
      'span-create report',
    ])
    const issueId = f.issue('ENG-1').id
    expect(traces(events)[0]!.body).toMatchObject({
      id: traceId('tester', issueId, 1),
      input: 'Rotate the key ***',
      metadata: { agent: 'tester', issue: 'ENG-1', run: 1, engine: 'console', outcome: 'success', prUrl: gh.prs[0]!.html_url },
    })
    // The console engine reports zero tokens and no cost: they are sent as such.
    expect(events.find((e) => e.type === 'generation-create')!.body).toMatchObject({
      usageDetails: { input: 0, output: 0, total: 0 },
      costDetails: { total: 0 },
    })

    f.comment('ENG-1', 'riley@rose.test', 'Please also log it.')
    const second = await once()
    expect(second.code, second.stderr).toBe(0)
    expect(lf.requests).toHaveLength(2)
    const ids = traces(lf.events()).map((t) => t.body.id)
    expect(ids).toEqual([traceId('tester', issueId, 1), traceId('tester', issueId, 2)])
    expect(lf.requests.every((r) => r.authorization === `Basic ${Buffer.from(`${PUBLIC}:${SECRET}`).toString('base64')}`)).toBe(true)
    for (const r of lf.requests) for (const s of SECRETS) expect(r.raw).not.toContain(s)
  }, 60_000)

  test('a run whose report is resumed after a crash sends its trace once, under the same run id, with the engine step from its record', async () => {
    const { f, lf, env, once } = await pipeline()
    const crashed = await once({ ...env, ROSE_CRASH_AT: 'after_comment', ROSE_CRASH_KILL_PARENT: '1' })
    expect(crashed.code).toBeNull()
    expect(lf.requests).toHaveLength(0)
    const restarted = await once()
    expect(restarted.code, restarted.stderr).toBe(0)
    expect(restarted.stderr).not.toContain('console> session') // the engine did not run again
    const events = lf.events()
    expect(traces(events).map((t) => t.body.id)).toEqual([traceId('tester', f.issue('ENG-1').id, 1)])
    expect(events.filter((e) => e.type !== 'trace-create').map((e) => e.body.name)).toEqual(['claim', 'worktree', 'engine', 'report'])
    const run = readState(join(f.home, 'state.json')).agents.tester!.issues[f.issue('ENG-1').id]!.runs[0]!
    expect(events.find((e) => e.body.name === 'engine')!.body).toMatchObject({ startTime: run.startedAt, endTime: run.endedAt })
  }, 60_000)

  test('Langfuse down (500, then closed): the runs still succeed, and a warning names the host', async () => {
    const { f, lf, env, once } = await pipeline('fail')
    const res = await once()
    expect(res.code, res.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    expect(lf.requests).toHaveLength(2) // one retry
    expect(res.stderr).toContain(`Langfuse trace of run #1 not sent: ${lf.url} answered HTTP 500; the run is not affected`)

    await lf.stop()
    f.comment('ENG-1', 'riley@rose.test', 'Once more.')
    const again = await once(env)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toContain(`Langfuse trace of run #2 not sent: ${lf.url} unreachable`)
    expect(readState(join(f.home, 'state.json')).agents.tester!.issues[f.issue('ENG-1').id]!.phase).toBe('done')
  }, 60_000)

  test('the variables unset: a run sends nothing and never loads lib/langfuse.ts (loaded when they are set)', async () => {
    const { f, lf, github, env } = await pipeline()
    const modules = join(f.dir, 'modules.json')
    const run = (e: Record<string, string>) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [join(ROOT, 'test', 'fixtures', 'modules-loaded.ts'), 'run', '--issue', 'ENG-1', '--config', f.configPath],
          { cwd: f.dir, env: { ...f.env, ...e, ROSE_MODULES_OUT: modules }, stdio: ['ignore', 'ignore', 'pipe'] },
        )
        let stderr = ''
        child.stderr.on('data', (d) => (stderr += d))
        child.on('close', (code) => resolve({ code, stderr }))
      })
    const loaded = () =>
      (JSON.parse(readFileSync(modules, 'utf8')) as string[])
        .filter((m) => /\/lib\/langfuse[^/]*\.ts$/.test(m))
        .map((m) => m.slice(ROOT.length))
    const off = await run(github)
    expect(off.code, off.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    expect(lf.requests).toHaveLength(0)
    expect(loaded()).toEqual(['/lib/langfuse-settings.ts'])

    // The same check sees the module when tracing is on (so the absence above is real).
    writeFileSync(modules, '[]')
    f.comment('ENG-1', 'riley@rose.test', 'And again.')
    const on = await run(env)
    expect(on.code, on.stderr).toBe(0)
    expect(loaded()).toContain('/lib/langfuse.ts')
    expect(lf.requests).toHaveLength(1)
  }, 60_000)
})

describe('in process, with an engine that reports usage and prints secrets', () => {
  test('the generation carries its model, tokens and cost; what it printed is redacted', async () => {
    const { f, lf, github, env } = await pipeline()
    const config = parseConfig(
      `agents:\n  - name: tester\n    engine: claude\n    claude: { model: claude-sonnet-4-5 }\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${f.origin}, base: main, github: acme/app }\n`,
      f.configPath,
      { ...f.env, ...github },
    )
    const ctx = agentContext({ config, configPath: f.configPath, agent: config.agents[0]!, env: { ...f.env, ...env } })
    const engine: Engine = {
      name: 'claude',
      run: async (input) => {
        writeFileSync(join(input.cwd, 'healthz.txt'), 'ok\n')
        return {
          status: 'success',
          summary: `Done. The env had ${LINEAR_KEY}, ${GH_TOKEN} and ${SECRET}.`,
          exitCode: 0,
          logPath: input.logPath,
          usage: { inputTokens: 5000, outputTokens: 700 },
          costUsd: 0.125,
        }
      },
    }
    const res = await runIssue(ctx, 'ENG-1', { fetch: true, engine })
    expect(res).toMatchObject({ ok: true, outcome: 'success', runNumber: 1 })
    expect(lf.requests.map((r) => r.invalid)).toEqual([[]])
    const received = lf.events()
    const gen = received.find((e) => e.type === 'generation-create')!
    expect(gen.body).toMatchObject({
      model: 'claude-sonnet-4-5',
      usageDetails: { input: 5000, output: 700, total: 5700 },
      costDetails: { total: 0.125 },
      output: 'Done. The env had ***, *** and ***.',
    })
    expect(received[0]!.body).toMatchObject({
      metadata: { engine: 'claude', model: 'claude-sonnet-4-5', inputTokens: 5000, costUsd: 0.125 },
    })
  }, 60_000)
})
