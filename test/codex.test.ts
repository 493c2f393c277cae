/** The Codex engine, running the real Codex CLI against a scripted fake OpenAI Responses server. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { createCodexEngine, type CodexOptions } from '../lib/engines/codex.ts'
import { engineEnv } from '../lib/engines/env.ts'
import { probeBwrap } from '../lib/engines/isolate.ts'
import type { EngineRunInput } from '../lib/engines/types.ts'
import { deniedEnvFixture } from './fakes/denied-env.ts'
import {
  cmdlinesWith,
  engineBin,
  eventLog,
  eventually,
  groupMembers,
  makeWorkspace,
  megabytePrompt,
  suiteTitle,
  unique,
  type Workspace,
} from './fakes/engine-harness.ts'
import { type FakeOpenAI, type OpenAIReply, type OpenAIRequest, startFakeOpenAI, toolOutputs } from './fakes/openai.ts'

const bin = engineBin('codex')
const T = 60_000

/** A prompt of about 1 MB (far over Linux's 128 KB limit for one argv element), unique markers at both ends. */
if (!bin && process.env.CI) {
  test('the codex CLI is installed (CI installs it with `make engines`)', () => {
    throw new Error('codex CLI not found: run `make engines` (npm ci --prefix engines)')
  })
}

let ws: Workspace
let fake: FakeOpenAI | undefined
afterEach(async () => {
  await fake?.stop()
  fake = undefined
  ws?.cleanup()
})

/** Point Codex at the fake: a custom provider reading its key from FAKE_KEY, retrying nothing. */
function fakeProvider(url: string): string[] {
  return [
    'model_provider=fake',
    `model_providers.fake={name="fake",base_url="${url}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}`,
  ]
}

async function setup(script: (req: OpenAIRequest, n: number) => OpenAIReply | Promise<OpenAIReply>) {
  ws = makeWorkspace('rose-codex-')
  fake = await startFakeOpenAI(script)
  const env = engineEnv('codex', ws.env({ FAKE_KEY: 'fake-key' }), [], ['FAKE_KEY'])
  const input = (over: Partial<EngineRunInput> = {}): EngineRunInput => ({
    prompt: 'do the thing',
    cwd: ws.repo,
    env,
    timeoutMs: T,
    stallMs: 20_000,
    logPath: ws.logPath,
    ...over,
  })
  const engine = (opts: CodexOptions = {}, url = fake!.url) =>
    createCodexEngine({
      bin,
      sandbox: 'workspace-write',
      model: 'gpt-5.5',
      ...opts,
      config: [...fakeProvider(url), ...(opts.config ?? [])],
    })
  return { fake, input, engine }
}

describe.skipIf(!bin)(suiteTitle('codex', 'The Codex engine against a fake model', bin), () => {
  test(
    'a run where the model patches a file ends in success with the final text, thread and usage',
    async () => {
      const patch = '*** Begin Patch\n*** Update File: README.md\n@@\n-# sample\n+# sample, patched by the fake\n*** End Patch\n'
      const { input, engine } = await setup((_req, n) =>
        n === 0 ? { kind: 'apply_patch', patch } : { kind: 'text', text: 'Patched README.md.' },
      )
      const log = eventLog()
      const r = await engine().run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('success')
      expect(r.summary).toBe('Patched README.md.')
      expect(r.sessionId).toMatch(/^[0-9a-f-]{36}$/)
      expect(readFileSync(join(ws.repo, 'README.md'), 'utf8')).toBe('# sample, patched by the fake\n')
      // The fake reports 200 input (50 cached) + 40 output tokens per request, two requests.
      expect(r.usage).toEqual({ inputTokens: 400, outputTokens: 80, cachedInputTokens: 100 })
      expect(r.costUsd).toBeUndefined()
      expect(r.exitCode).toBe(0)
      expect(r.malformedLines).toBe(0)
      // First the process (recorded with the run's lock), then the session.
      expect(log.events[0]).toEqual({ kind: 'spawned', pid: expect.any(Number), pgid: expect.any(Number), tag: expect.any(String) })
      expect(log.events[1]).toEqual({ kind: 'started', sessionId: r.sessionId })
      expect(log.events).toContainEqual({ kind: 'action', tool: 'apply_patch', input: `update ${join(ws.repo, 'README.md')}` })
      expect(log.events).toContainEqual(expect.objectContaining({ kind: 'action_result', tool: 'apply_patch', isError: false }))
      expect(log.events.at(-1)).toEqual({ kind: 'text', text: 'Patched README.md.' })
      expect(readFileSync(r.logPath, 'utf8')).toContain('"type":"turn.completed"')
    },
    T,
  )

  test(
    'a rerun with the thread id resumes the conversation the model saw before',
    async () => {
      const { fake, input, engine } = await setup((_req, n) => ({ kind: 'text', text: n === 0 ? 'first answer' : 'second answer' }))
      const first = await engine().run(input({ prompt: 'first prompt' }))
      expect(first.status).toBe('success')
      const second = await engine().run(input({ prompt: 'second prompt', resume: first.sessionId }))
      expect(second.status).toBe('success')
      expect(second.summary).toBe('second answer')
      expect(second.sessionId).toBe(first.sessionId)
      const conversation = JSON.stringify(fake.requests[1].input)
      expect(conversation).toContain('first prompt')
      expect(conversation).toContain('first answer')
      expect(conversation).toContain('second prompt')
      // Codex reports the thread's running total, so a resumed run includes the first one.
      expect(second.usage?.inputTokens).toBe(400)
    },
    T,
  )

  test(
    'a 1 MB prompt goes in on stdin: the model receives it whole, and no command line on the machine shows it',
    async () => {
      const { prompt, marker } = megabytePrompt(16_000)
      let visible: number[] | undefined
      const { fake, input, engine } = await setup(() => {
        // While the engine waits for the model: what `ps` shows anyone on the machine.
        visible = cmdlinesWith(marker)
        return { kind: 'text', text: 'read it all' }
      })
      const r = await engine().run(input({ prompt }))
      expect(r.status, r.summary).toBe('success')
      expect(JSON.stringify(fake.requests[0])).toContain(JSON.stringify(prompt).slice(1, -1))
      expect(visible).toEqual([])
    },
    T,
  )

  test(
    'a model server error fails the run with the server error text in the summary',
    async () => {
      // Codex shows the body of a 503 (a 500 it replaces with a generic "high demand" message).
      const { input, engine } = await setup(() => ({ kind: 'http_error', status: 503, message: 'the fake model is unavailable' }))
      const log = eventLog()
      const r = await engine().run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('failed')
      expect(r.errorCode).toBe('engine_failed')
      expect(r.summary).toContain('the fake model is unavailable')
      expect(r.exitCode).toBe(1)
      expect(log.events).toContainEqual(expect.objectContaining({ kind: 'error' }))
    },
    T,
  )

  test(
    'a model server that is gone is reported as stalled with the connection error, not left reconnecting',
    async () => {
      // Codex retries a refused connection forever ("Reconnecting..."); those lines are not progress.
      const { input, engine } = await setup(() => ({ kind: 'text', text: 'unused' }))
      const r = await engine({}, 'http://127.0.0.1:9/v1').run(input({ stallMs: 2500 }))
      expect(r.status).toBe('stalled')
      expect(r.summary).toContain('Reconnecting')
      expect(r.summary).toContain('Connection failed')
    },
    T,
  )

  test(
    'a stalled stream is killed within the stall timeout plus grace, leaving no process behind',
    async () => {
      const token = unique('stall')
      let pgid: number | undefined
      let hungAt = 0
      const { input, engine } = await setup(() => {
        hungAt = Date.now()
        return { kind: 'hang' }
      })
      const stallMs = 1500
      const r = await engine().run(
        input({ prompt: `work ${token}`, stallMs, onEvent: (e) => void (e.kind === 'spawned' && (pgid = e.pgid)) }),
      )
      const killedAfter = Date.now() - hungAt
      expect(r.status).toBe('stalled')
      expect(r.errorCode).toBe('engine_stalled')
      expect(r.sessionId).toBeDefined()
      expect(killedAfter).toBeLessThan(stallMs + 2000 + 500)
      expect(pgid).toBeGreaterThan(1)
      expect(await eventually(() => groupMembers(pgid!).length === 0)).toBe(true)
      expect(() => process.kill(-pgid!, 0)).toThrow()
    },
    T,
  )

  const bwrap = probeBwrap()
  test.skipIf(!bwrap.version)(
    `under isolation: namespace Codex runs inside bwrap with its own sandbox off: the patch lands, its shell sees only its own processes${bwrap.version ? '' : ` (skipped: ${bwrap.problem}; apt-get install bubblewrap)`}`,
    async () => {
      const patch = '*** Begin Patch\n*** Update File: README.md\n@@\n-# sample\n+# sample, patched inside the namespace\n*** End Patch\n'
      const { fake, input, engine } = await setup((req, n) => {
        if (n === 0)
          return {
            kind: 'shell',
            command: `ls /proc | grep -c '^[0-9]' ; test -e /proc/${process.pid} && echo SEES-DRIVER; echo HOME=$HOME`,
          }
        if (n === 1) return { kind: 'apply_patch', patch }
        return { kind: 'text', text: 'done' }
      })
      const factoryHome = join(ws.root, 'factory')
      const r = await engine().run(input({ isolation: { mode: 'namespace', agent: 'tester', factoryHome, bwrap: bwrap.path } }))
      expect({ status: r.status, summary: r.summary }).toEqual({ status: 'success', summary: 'done' })
      expect(readFileSync(join(ws.repo, 'README.md'), 'utf8')).toBe('# sample, patched inside the namespace\n')
      const seen = toolOutputs(fake.requests[1]).join('\n')
      expect(seen).not.toContain('SEES-DRIVER')
      expect(seen).toContain(`HOME=${join(realpathSync(factoryHome), 'engine-home', 'tester')}`)
      expect(Number(seen.match(/^(\d+)$/m)?.[1])).toBeLessThan(10)
      const transcript = readFileSync(r.logPath, 'utf8')
      expect(transcript).toContain('"danger-full-access"')
      expect(transcript).toContain('[rose] engine isolation: namespace')
    },
    T,
  )

  test(
    "the model's update_plan reaches the caller as the whole plan on each change, the step being worked on in progress",
    async () => {
      const plan = (done: number) => ({
        plan: ['Read the issue', 'Fix the bug', 'Add a test'].map((step, i) => ({
          step,
          status: i < done ? 'completed' : i === done ? 'in_progress' : 'pending',
        })),
      })
      const { fake, input, engine } = await setup((_req, n) =>
        n === 0
          ? { kind: 'function_call', name: 'update_plan', arguments: plan(0) }
          : n === 1
            ? { kind: 'function_call', name: 'update_plan', arguments: plan(2) }
            : { kind: 'text', text: 'Planned.' },
      )
      const log = eventLog()
      const r = await engine({ config: ['tools.update_plan={enabled=true}'] }).run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('success')
      expect(fake.requests[0].tools.map((t: { name?: string }) => t.name)).toContain('update_plan')
      const plans = log.events.filter((e) => e.kind === 'plan')
      expect(plans).toEqual([
        {
          kind: 'plan',
          items: [
            { content: 'Read the issue', status: 'inProgress' },
            { content: 'Fix the bug', status: 'pending' },
            { content: 'Add a test', status: 'pending' },
          ],
        },
        {
          kind: 'plan',
          items: [
            { content: 'Read the issue', status: 'completed' },
            { content: 'Fix the bug', status: 'completed' },
            { content: 'Add a test', status: 'inProgress' },
          ],
        },
      ])
      expect(log.events.filter((e) => e.kind === 'action')).toEqual([])
    },
    T,
  )

  describe('environment scrubbing', () => {
    const fixture = deniedEnvFixture()
    beforeAll(() => fixture.set())
    afterAll(() => fixture.restore())

    test(
      'the shell the model runs sees none of the denied variables, a variable the agent names in engine_env, and no other',
      async () => {
        const { fake, input, engine } = await setup((req) =>
          toolOutputs(req.body).length ? { kind: 'text', text: 'looked at env' } : { kind: 'shell', command: 'env' },
        )
        // Built from the real process env, which now holds every denied variable (private dirs on top).
        const env = engineEnv(
          'codex',
          { ...process.env, ...ws.env({ FAKE_KEY: 'fake-key' }) },
          [fixture.agentTokenEnv],
          ['FAKE_KEY', fixture.markerName],
        )
        // Codex can also filter the shell env itself; switch that off so only our scrub is tested.
        const r = await engine({ config: ['shell_environment_policy.ignore_default_excludes=true'] }).run(input({ env }))
        expect(r.status).toBe('success')
        const seen = toolOutputs(fake.requests.at(-1)).join('\n')
        expect(seen).toContain(`${fixture.markerName}=${fixture.markerValue}`)
        // An allow-list: this token-looking canary is on no list of ours, and it does not get through.
        expect(seen).not.toContain(fixture.canaryValue)
        expect(fixture.leaks(seen)).toEqual([])
      },
      T,
    )
  })
})

describe('The Codex engine without its binary', () => {
  test('a missing binary gives engine_missing with the install fix, as a result not a throw', async () => {
    ws = makeWorkspace('rose-codex-')
    const missing = join(ws.root, 'no-such-codex')
    const r = await createCodexEngine({ bin: missing }).run({
      prompt: 'x',
      cwd: ws.repo,
      env: {},
      timeoutMs: 1000,
      stallMs: 1000,
      logPath: ws.logPath,
    })
    expect(r.status).toBe('failed')
    expect(r.errorCode).toBe('engine_missing')
    expect(r.summary).toContain(missing)
    expect(r.summary).toContain('npm install -g @openai/codex')
    expect(r.summary).toContain('make engines')
    expect(existsSync(missing)).toBe(false)
  })
})
