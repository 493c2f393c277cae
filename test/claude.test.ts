/** The Claude engine, running the real Claude Code CLI against a scripted fake Anthropic server. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClaudeEngine, type ClaudeOptions } from '../lib/engines/claude.ts'
import { engineEnv } from '../lib/engines/env.ts'
import type { EngineRunInput, PlanStep } from '../lib/engines/types.ts'
import { type AnthropicReply, type AnthropicRequest, type FakeAnthropic, startFakeAnthropic, toolResults } from './fakes/anthropic.ts'
import {
  cmdlinesWith,
  engineBin,
  eventLog,
  eventually,
  groupMembers,
  makeWorkspace,
  megabytePrompt,
  processesWith,
  suiteTitle,
  unique,
  type Workspace,
} from './fakes/engine-harness.ts'
import { deniedEnvFixture } from './fakes/denied-env.ts'

const bin = engineBin('claude')
const T = 60_000

/**
 * A prompt of about `lines` x 50 bytes (here far over Linux's 128 KB limit for one argv element),
 * unique markers at both ends. Claude Code itself refuses 1 MB ("Prompt is too long": over its
 * context window by its own estimate), so its test uses half a megabyte.
 */
if (!bin && process.env.CI) {
  test('the claude CLI is installed (CI installs it with `make engines`)', () => {
    throw new Error('claude CLI not found: run `make engines` (npm ci --prefix engines)')
  })
}

let ws: Workspace
let fake: FakeAnthropic | undefined
afterEach(async () => {
  await fake?.stop()
  fake = undefined
  ws?.cleanup()
})

/** Start a fake with `script`, and return a run input for the real CLI against it. */
async function setup(
  script: (req: AnthropicRequest, n: number) => AnthropicReply | Promise<AnthropicReply>,
  extraEnv: Record<string, string> = {},
) {
  ws = makeWorkspace('rose-claude-')
  fake = await startFakeAnthropic(script)
  const env = engineEnv(
    'claude',
    ws.env({ CLAUDE_AUTH_TOKEN: 'fake-oauth-token', ANTHROPIC_BASE_URL: fake.url, CLAUDE_CODE_MAX_RETRIES: '1', ...extraEnv }),
  )
  const input = (over: Partial<EngineRunInput> = {}): EngineRunInput => ({
    prompt: 'do the thing',
    cwd: ws.repo,
    env,
    timeoutMs: T,
    stallMs: 20_000,
    logPath: ws.logPath,
    ...over,
  })
  return { fake, input }
}

const engine = (opts: ClaudeOptions = {}) => createClaudeEngine({ bin, permissionMode: 'acceptEdits', ...opts })

describe.skipIf(!bin)(suiteTitle('claude', 'The Claude engine against a fake model', bin), () => {
  test(
    'a run where the model writes a file ends in success with the final text, session, usage and cost',
    async () => {
      const { input } = await setup((_req, n) =>
        n === 0
          ? { kind: 'tool_use', name: 'Write', input: { file_path: join(ws.repo, 'NOTES.md'), content: 'hello from the fake\n' } }
          : { kind: 'text', text: 'Wrote NOTES.md.' },
      )
      const log = eventLog()
      const r = await engine().run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('success')
      expect(r.summary).toBe('Wrote NOTES.md.')
      expect(r.sessionId).toMatch(/^[0-9a-f-]{36}$/)
      expect(readFileSync(join(ws.repo, 'NOTES.md'), 'utf8')).toBe('hello from the fake\n')
      // The fake reports 120 input + 10 cache-read + 30 output tokens per request, two requests.
      expect(r.usage).toEqual({ inputTokens: 260, outputTokens: 60, cachedInputTokens: 20 })
      expect(r.costUsd).toBeGreaterThan(0)
      expect(r.exitCode).toBe(0)
      expect(r.malformedLines).toBe(0)
      // First the process (recorded with the run's lock), then the session.
      expect(log.events[0]).toEqual({ kind: 'spawned', pid: expect.any(Number), pgid: expect.any(Number), tag: expect.any(String) })
      expect(log.events[1]).toEqual({ kind: 'started', sessionId: r.sessionId })
      expect(log.events).toContainEqual(expect.objectContaining({ kind: 'action', tool: 'Write' }))
      expect(log.events).toContainEqual(expect.objectContaining({ kind: 'action_result', tool: 'Write', isError: false }))
      expect(log.events.at(-1)).toEqual({ kind: 'text', text: 'Wrote NOTES.md.' })
      const transcript = readFileSync(r.logPath, 'utf8')
      expect(transcript).toContain('"type":"result"')
      expect(transcript).toContain('[debug] {"type":"rate_limit_event"')
    },
    T,
  )

  test(
    'a rerun with the session id resumes the conversation the model saw before',
    async () => {
      const { fake, input } = await setup((req, n) => ({
        kind: 'text',
        text: n === 0 ? 'first answer' : `second answer after ${req.messages.length} messages`,
      }))
      const first = await engine().run(input({ prompt: 'first prompt' }))
      expect(first.status).toBe('success')
      const second = await engine().run(input({ prompt: 'second prompt', resume: first.sessionId }))
      expect(second.status).toBe('success')
      expect(second.sessionId).toBe(first.sessionId)
      const conversation = JSON.stringify(fake.requests[1].messages)
      expect(conversation).toContain('first prompt')
      expect(conversation).toContain('first answer')
      expect(conversation).toContain('second prompt')
    },
    T,
  )

  test(
    'a 500 KB prompt goes in on stdin: the model receives it whole, and no command line on the machine shows it',
    async () => {
      const { prompt, marker } = megabytePrompt()
      let visible: number[] | undefined
      const { fake, input } = await setup(() => {
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
      const { input } = await setup(() => ({
        kind: 'http_error',
        status: 529,
        errorType: 'overloaded_error',
        message: 'the fake model is overloaded',
      }))
      const log = eventLog()
      const r = await engine().run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('failed')
      expect(r.errorCode).toBe('engine_failed')
      expect(r.summary).toContain('the fake model is overloaded')
      expect(r.exitCode).toBe(1)
      expect(log.events).toContainEqual(expect.objectContaining({ kind: 'error' }))
    },
    T,
  )

  test(
    'a model server that is gone fails the run with the connection error in the summary',
    async () => {
      const { input } = await setup(() => ({ kind: 'text', text: 'unused' }), { ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' })
      const r = await engine().run(input())
      expect(r.status).toBe('failed')
      expect(r.errorCode).toBe('engine_failed')
      expect(r.summary).toMatch(/Unable to connect|ConnectionRefused/)
    },
    T,
  )

  test(
    'a stalled stream is killed within the stall timeout plus grace, leaving no process behind',
    async () => {
      const token = unique('stall')
      const sleeper = `sleep ${4000 + Math.floor(Math.random() * 900)}`
      let pgid: number | undefined
      let hungAt = 0
      const { input } = await setup((_req, n) => {
        // Claude runs each Bash command in a process group of its own: a background job escapes
        // the engine's group, which is why the adapter also reaps by its run tag.
        if (n === 0) return { kind: 'tool_use', name: 'Bash', input: { command: `${sleeper} >/dev/null 2>&1 & echo started` } }
        hungAt = Date.now()
        return { kind: 'hang' }
      })
      // Long enough that Claude's own start-up (seconds on a loaded machine) is not mistaken for the stall.
      const stallMs = 4000
      const r = await engine({ permissionMode: 'bypassPermissions' }).run(
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
      expect(processesWith(sleeper)).toEqual([])
    },
    T,
  )

  test(
    'the OAuth token goes in on a file descriptor: the model server gets it as Bearer, and no environ the shell can walk up to holds it',
    async () => {
      const token = unique('fake-oauth-fd')
      // The model's shell prints the environ of itself and of every ancestor (Claude Code included).
      const walk =
        'p=$$; while [ "$p" -gt 1 ]; do echo "== $p"; tr "\\0" "\\n" < /proc/$p/environ; p=$(awk "{print \\$4}" /proc/$p/stat); done'
      const { fake, input } = await setup(
        (req) =>
          toolResults(req.body).length ? { kind: 'text', text: 'walked' } : { kind: 'tool_use', name: 'Bash', input: { command: walk } },
        { CLAUDE_AUTH_TOKEN: token },
      )
      const r = await engine({ permissionMode: 'bypassPermissions' }).run(input())
      expect(r.status, `${r.summary}\n${readFileSync(r.logPath, 'utf8')}`).toBe('success')
      expect(fake.headers.length).toBeGreaterThan(0)
      for (const h of fake.headers) expect(h.authorization).toBe(`Bearer ${token}`)
      const seen = toolResults(fake.requests.at(-1)).join('\n')
      expect(seen).toContain('== ')
      // Which path ran: the fd variable, never the token variable.
      expect(seen).toContain('CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR=3')
      expect(seen).not.toContain('CLAUDE_CODE_OAUTH_TOKEN=')
      expect(seen).not.toContain(token)
      expect(readFileSync(r.logPath, 'utf8')).not.toContain(token)
    },
    T,
  )

  test(
    "the model's task list (TaskCreate, TaskUpdate) reaches the caller as the whole plan each time it changes, not as tool calls",
    async () => {
      const { fake, input } = await setup((_req, n) => {
        const steps: AnthropicReply[] = [
          { kind: 'tool_use', name: 'TaskCreate', input: { subject: 'Read the issue', description: 'read it', activeForm: 'Reading' } },
          { kind: 'tool_use', name: 'TaskCreate', input: { subject: 'Fix the bug', description: 'fix it' } },
          { kind: 'tool_use', name: 'TaskUpdate', input: { taskId: '1', status: 'in_progress' } },
          { kind: 'tool_use', name: 'TaskList', input: {} },
          { kind: 'tool_use', name: 'TaskUpdate', input: { taskId: '1', status: 'completed' } },
        ]
        return steps[n] ?? { kind: 'text', text: 'Planned.' }
      })
      const log = eventLog()
      const r = await engine().run(input({ onEvent: log.onEvent }))
      expect(r.status).toBe('success')
      expect(fake.requests[0].tools.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['TaskCreate', 'TaskUpdate']))
      const read: PlanStep = { content: 'Read the issue', status: 'pending' }
      const fix: PlanStep = { content: 'Fix the bug', status: 'pending' }
      expect(log.events.filter((e) => e.kind === 'plan')).toEqual([
        { kind: 'plan', items: [read] },
        { kind: 'plan', items: [read, fix] },
        { kind: 'plan', items: [{ ...read, status: 'inProgress' }, fix] },
        { kind: 'plan', items: [{ ...read, status: 'completed' }, fix] },
      ])
      expect(log.events.filter((e) => e.kind === 'action' || e.kind === 'action_result')).toEqual([])
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
        const { fake, input } = await setup((req) =>
          toolResults(req.body).length
            ? { kind: 'text', text: 'looked at env' }
            : { kind: 'tool_use', name: 'Bash', input: { command: 'env' } },
        )
        // Built from the real process env, which now holds every denied variable (private dirs on top).
        const { CLAUDE_CONFIG_DIR: _, ...processEnv } = process.env
        const env = engineEnv(
          'claude',
          { ...processEnv, ...ws.env({ ANTHROPIC_BASE_URL: fake.url }) },
          [fixture.agentTokenEnv],
          [fixture.markerName],
        )
        expect(env.CLAUDE_CODE_OAUTH_TOKEN).toBeDefined()
        const r = await engine({ permissionMode: 'bypassPermissions' }).run(input({ env }))
        expect(r.status).toBe('success')
        const seen = toolResults(fake.requests.at(-1)).join('\n')
        expect(seen).toContain(`${fixture.markerName}=${fixture.markerValue}`)
        // An allow-list: this token-looking canary is on no list of ours, and it does not get through.
        expect(seen).not.toContain(fixture.canaryValue)
        expect(seen).toContain('PATH=')
        expect(fixture.leaks(seen)).toEqual([])
      },
      T,
    )
  })
})

describe('The Claude engine without its binary', () => {
  test('a missing binary gives engine_missing with the install fix, as a result not a throw', async () => {
    ws = makeWorkspace('rose-claude-')
    const missing = join(ws.root, 'no-such-claude')
    const r = await createClaudeEngine({ bin: missing }).run({
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
    expect(r.summary).toContain('npm install -g @anthropic-ai/claude-code')
    expect(r.summary).toContain('make engines')
    expect(existsSync(missing)).toBe(false)
  })
})
