/**
 * The adapters' own logic, without the real CLIs: the argv they build, and how output lines,
 * exit codes, kills and cancellations become an EngineResult (a shell script stands in for the CLI).
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { claudeArgv, claudeHandler, createClaudeEngine } from '../lib/engines/claude.ts'
import type { LineHandler } from '../lib/engines/cli.ts'
import { CONSOLE_OUTPUT, createConsoleEngine } from '../lib/engines/console.ts'
import { codexArgv, codexHandler, createCodexEngine } from '../lib/engines/codex.ts'
import { parseClaudeLine, parseCodexLine } from '../lib/engines/lines.ts'
import type { EngineEvent, EngineRunInput } from '../lib/engines/types.ts'

const dir = mkdtempSync(join(tmpdir(), 'rose-adapters-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

/** A stand-in CLI: a shell script with `body`. */
function script(body: string): string {
  const path = join(dir, `cli-${++n}.sh`)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}
const input = (over: Partial<EngineRunInput> = {}): EngineRunInput => ({
  prompt: 'p',
  cwd: dir,
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  timeoutMs: 20_000,
  stallMs: 10_000,
  logPath: join(dir, 'logs', `run-${++n}.log`),
  ...over,
})
const INIT = '{"type":"system","subtype":"init","session_id":"s-1"}'
const RESULT =
  '{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s-1","total_cost_usd":0.5,"usage":{"input_tokens":1,"output_tokens":2}}'

describe('argv', () => {
  test('claude: print mode, stream-json and the options, no prompt (it goes on stdin); --resume on reruns', () => {
    const opts = {
      permissionMode: 'acceptEdits' as const,
      allowedTools: ['Bash', 'Edit'],
      model: 'sonnet',
      maxTurns: 5,
      appendSystemPrompt: 'be brief',
      extraArgs: ['--x'],
    }
    // The prompt goes on stdin, never in argv (ps shows argv; a long one fails with E2BIG).
    expect(claudeArgv('claude', opts, {})).toEqual([
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'acceptEdits',
      '--allowedTools=Bash,Edit',
      '--model',
      'sonnet',
      '--max-turns',
      '5',
      '--append-system-prompt=be brief',
      '--x',
    ])
    expect(claudeArgv('claude', {}, { resume: 'sess-1' })).toEqual([
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--resume',
      'sess-1',
    ])
  })

  test('codex: exec --json in the cwd with the quiet flags and - (prompt on stdin); resume keeps -C, -s and every -c', () => {
    const opts = { sandbox: 'workspace-write' as const, model: 'gpt-5.5', config: ['a=1'] }
    const common = [
      'codex',
      'exec',
      '--json',
      '-C',
      '/w',
      '--skip-git-repo-check',
      '-s',
      'workspace-write',
      '-m',
      'gpt-5.5',
      '-c',
      'a=1',
      '-c',
      'analytics.enabled=false',
      '--disable',
      'apps',
      '--disable',
      'plugins',
    ]
    // `-`: the prompt is read from stdin.
    expect(codexArgv('codex', opts, { cwd: '/w' })).toEqual([...common, '-'])
    expect(codexArgv('codex', opts, { cwd: '/w', resume: 't-1' })).toEqual([...common, 'resume', 't-1', '-'])
  })
})

describe('line parsing', () => {
  test('unknown line types are tolerated; non-JSON or schema-breaking lines are malformed', () => {
    expect(parseClaudeLine('{"type":"rate_limit_event"}')).toEqual({ kind: 'unknown', type: 'rate_limit_event' })
    expect(parseClaudeLine('not json').kind).toBe('malformed')
    expect(parseClaudeLine('{"type":"assistant","message":{}}').kind).toBe('malformed')
    expect(parseClaudeLine('{"type":"assistant","message":{"content":[{"type":"text"}]}}').kind).toBe('malformed')
    expect(parseClaudeLine('{"type":"assistant","message":{"content":[{"type":"server_tool_use","x":1}]}}').kind).toBe('line')
    expect(parseCodexLine('{"type":"item.completed","item":{"id":"i","type":"todo_list","items":[]}}').kind).toBe('line')
    expect(parseCodexLine('{"type":"item.completed","item":{"id":"i","type":"agent_message"}}').kind).toBe('malformed')
    expect(parseCodexLine('{"type":"turn.failed"}').kind).toBe('malformed')
    expect(parseCodexLine('   ')).toEqual({ kind: 'blank' })
  })
})

describe('runs with a stand-in CLI', () => {
  test('malformed lines are counted and unknown ones kept at debug level, without failing the run', async () => {
    const bin = script(
      `echo '${INIT}'; echo 'garbage'; echo '{"type":"assistant","message":{}}'; echo '{"type":"brand_new"}'; echo '${RESULT}'`,
    )
    const r = await createClaudeEngine({ bin }).run(input())
    expect(r).toMatchObject({ status: 'success', summary: 'done', sessionId: 's-1', costUsd: 0.5, malformedLines: 2 })
    const transcript = readFileSync(r.logPath, 'utf8')
    expect(transcript).toContain('[debug] {"type":"brand_new"}')
    expect(transcript).toContain('[malformed] not JSON: garbage')
  })

  test('a non-zero exit without a result fails with the stderr text; a clean exit without one fails too', async () => {
    const bad = await createClaudeEngine({ bin: script(`echo "error: unknown option '--nope'" >&2; exit 1`) }).run(input())
    expect(bad).toMatchObject({ status: 'failed', errorCode: 'engine_failed', exitCode: 1 })
    expect(bad.summary).toContain("unknown option '--nope'")
    expect(readFileSync(bad.logPath, 'utf8')).toContain("[stderr] error: unknown option '--nope'")
    const quiet = await createClaudeEngine({ bin: script(`echo '${INIT}'`) }).run(input())
    expect(quiet).toMatchObject({ status: 'failed', errorCode: 'engine_failed', sessionId: 's-1' })
    expect(quiet.summary).toContain('without a final result')
  })

  test('the hard timeout and a caller abort kill the run as timeout and cancelled', async () => {
    const bin = script(`echo '${INIT}'; while true; do echo '{"type":"system","subtype":"tick"}'; sleep 0.1; done`)
    const t = await createClaudeEngine({ bin }).run(input({ timeoutMs: 600 }))
    expect(t).toMatchObject({ status: 'timeout', errorCode: 'engine_timeout', sessionId: 's-1' })
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 300)
    const c = await createClaudeEngine({ bin }).run(input({ signal: ac.signal }))
    expect(c).toMatchObject({ status: 'cancelled', errorCode: 'engine_cancelled' })
  })

  test('codex printing only "Reconnecting..." is stalled even though it keeps printing', async () => {
    const bin = script(`echo '{"type":"thread.started","thread_id":"t-1"}'
while true; do echo '{"type":"error","message":"Reconnecting... waiting for network (Connection failed)"}'; sleep 0.1; done`)
    const started = Date.now()
    const r = await createCodexEngine({ bin }).run(input({ stallMs: 700 }))
    expect(r).toMatchObject({ status: 'stalled', errorCode: 'engine_stalled', sessionId: 't-1' })
    expect(r.summary).toContain('Reconnecting')
    expect(Date.now() - started).toBeLessThan(700 + 2000)
  })

  test('the engine gets its env re-scrubbed plus the run switches, and a throwing listener breaks nothing', async () => {
    const bin = script(`echo '${INIT}'
echo "{\\"type\\":\\"result\\",\\"subtype\\":\\"success\\",\\"is_error\\":false,\\"session_id\\":\\"s-1\\",\\"result\\":\\"gh=$GITHUB_TOKEN sandbox=$IS_SANDBOX quiet=$DISABLE_TELEMETRY tagged=\${ROSE_ENGINE_RUN:+yes}\\"}"`)
    const env = { PATH: process.env.PATH ?? '/bin', GITHUB_TOKEN: 'ghp_should_not_pass' }
    const r = await createClaudeEngine({ bin, permissionMode: 'bypassPermissions' }).run(
      input({
        env,
        onEvent: () => {
          throw new Error('listener bug')
        },
      }),
    )
    const sandbox = process.getuid?.() === 0 ? '1' : ''
    expect(r).toMatchObject({ status: 'success', summary: `gh= sandbox=${sandbox} quiet=1 tagged=yes` })
  })
})

describe('todo lists as the plan', () => {
  const collect = (handler: (emit: (e: EngineEvent) => void) => LineHandler, lines: unknown[]) => {
    const events: EngineEvent[] = []
    const h = handler((e) => events.push(e))
    for (const l of lines) h.line(JSON.stringify(l))
    return events
  }
  const use = (id: string, name: string, input: unknown) => ({
    type: 'assistant',
    message: { content: [{ type: 'tool_use', id, name, input }] },
  })
  const result = (id: string, content: string, is_error = false) => ({
    type: 'user',
    message: { content: [{ type: 'tool_result', tool_use_id: id, content, is_error }] },
  })

  test("claude's TodoWrite (older CLIs) replaces the whole plan; in_progress reads inProgress; no action is shown", () => {
    const events = collect(claudeHandler, [
      use('t1', 'TodoWrite', {
        todos: [
          { content: 'a', status: 'in_progress', activeForm: 'A' },
          { content: 'b', status: 'pending' },
        ],
      }),
      result('t1', 'Todos have been modified successfully'),
      use('t2', 'TodoWrite', { todos: [{ content: 'a', status: 'completed' }] }),
    ])
    expect(events).toEqual([
      {
        kind: 'plan',
        items: [
          { content: 'a', status: 'inProgress' },
          { content: 'b', status: 'pending' },
        ],
      },
      { kind: 'plan', items: [{ content: 'a', status: 'completed' }] },
    ])
  })

  test('a deleted task leaves the plan, a failed TaskCreate adds nothing, and a todo tool with another shape stays an action', () => {
    const events = collect(claudeHandler, [
      use('c1', 'TaskCreate', { subject: 'keep', description: '' }),
      result('c1', 'Task #1 created successfully: keep'),
      use('c2', 'TaskCreate', { subject: 'refused', description: '' }),
      result('c2', 'Task list is full', true),
      use('c3', 'TaskCreate', { subject: 'drop', description: '' }),
      result('c3', 'Task #3 created successfully: drop'),
      use('u1', 'TaskUpdate', { taskId: '3', status: 'deleted' }),
      use('w1', 'TodoWrite', { list: 'not the shape we know' }),
    ])
    expect(events.filter((e) => e.kind === 'plan').at(-1)).toEqual({ kind: 'plan', items: [{ content: 'keep', status: 'pending' }] })
    expect(events.filter((e) => e.kind === 'action')).toEqual([
      { kind: 'action', tool: 'TodoWrite', input: '{"list":"not the shape we know"}' },
    ])
  })

  test("codex's todo_list item is the plan once per change (item.completed repeating the last update adds nothing)", () => {
    const item = (completed: boolean[]) => ({
      id: 'item_0',
      type: 'todo_list',
      items: completed.map((c, i) => ({ text: `step ${i}`, completed: c })),
    })
    const events = collect(codexHandler, [
      { type: 'item.started', item: item([false, false]) },
      { type: 'item.updated', item: item([true, false]) },
      { type: 'item.completed', item: item([true, false]) },
    ])
    expect(events).toEqual([
      {
        kind: 'plan',
        items: [
          { content: 'step 0', status: 'inProgress' },
          { content: 'step 1', status: 'pending' },
        ],
      },
      {
        kind: 'plan',
        items: [
          { content: 'step 0', status: 'completed' },
          { content: 'step 1', status: 'inProgress' },
        ],
      },
    ])
  })
})

describe('the console engine', () => {
  test('reports a thought, a plan, its write with a result and the final text, and writes each prompt it gets into its notes', async () => {
    const cwd = mkdtempSync(join(dir, 'console-'))
    const events: EngineEvent[] = []
    const engine = createConsoleEngine()
    const first = await engine.run(input({ cwd, prompt: 'Fix the thing\nplease', onEvent: (e) => events.push(e) }))
    expect(first.status).toBe('success')
    expect(events.map((e) => e.kind)).toEqual(['started', 'thought', 'plan', 'action', 'action_result', 'plan', 'text'])
    expect(events.at(-2)).toEqual({
      kind: 'plan',
      items: [
        { content: 'Read the prompt', status: 'completed' },
        { content: `Write ${CONSOLE_OUTPUT}`, status: 'completed' },
      ],
    })
    expect(readFileSync(join(cwd, CONSOLE_OUTPUT), 'utf8')).toBe('# Notes from the console engine\n\nFix the thing\nplease')
    // A reply in the session is the next run's whole prompt: the notes change, so the run has a commit to make.
    await engine.run(input({ cwd, prompt: 'also update the docs', resume: first.sessionId }))
    expect(readFileSync(join(cwd, CONSOLE_OUTPUT), 'utf8')).toBe('# Notes from the console engine\n\nalso update the docs')
  })
})
