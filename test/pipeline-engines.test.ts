/**
 * The whole pipeline with the REAL Claude Code and Codex CLIs (scripted model servers on
 * 127.0.0.1): the model edits a file, the factory pushes and reports it; a reviewer comment
 * reruns it, resuming the session.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { readState } from '../lib/state.ts'
import { startFakeAnthropic } from './fakes/anthropic.ts'
import { startFakeLangfuse } from './fakes/langfuse.ts'
import { engineBin, suiteTitle } from './fakes/engine-harness.ts'
import { startFakeOpenAI } from './fakes/openai.ts'
import { type Fixture, fixture, gitSync } from './helpers.ts'

const claudeBin = engineBin('claude')
const codexBin = engineBin('codex')
const ISSUES = [{ team: 'ENG', title: 'Say hello', description: 'Add hello.txt', assignee: 'agent@rose.test' }]

let fx: Fixture | undefined
const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const s of stops.splice(0)) await s()
  await fx?.cleanup()
  fx = undefined
})

/** agents.yaml for a Codex agent pointed at the fake Responses server (plus `extra` agent lines). */
function codexYaml(origin: string, fakeUrl: string, ...extra: string[]): string {
  return [
    'agents:',
    '  - name: tester',
    '    engine: codex',
    '    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }',
    `    repo: { url: ${origin}, base: main }`,
    // The engine's env is an allow-list: the fake provider's key variable must be named.
    '    engine_env: [FAKE_KEY]',
    ...extra,
    '    codex:',
    `      bin: ${codexBin}`,
    '      model: gpt-5.5',
    '      config:',
    "        - 'model_provider=fake'",
    `        - 'model_providers.fake={name="fake",base_url="${fakeUrl}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}'`,
    '',
  ].join('\n')
}

async function rerunAfterComment(f: Fixture, env: Record<string, string>) {
  const reviewer = f.sandbox.store.userByEmail('riley@rose.test')!
  f.sandbox.store.createComment({ issue: 'ENG-1', userId: reviewer.id, body: 'Please say goodbye too.' })
  return f.script('start', ['--once', '--config', f.configPath], env)
}

describe.skipIf(!claudeBin && !process.env.CI)(suiteTitle('claude', 'pipeline with Claude Code', claudeBin), () => {
  test('the model writes a file: pushed, reported with its summary and cost; a comment reruns it resuming the session', async () => {
    expect(claudeBin).toBeDefined()
    let worktree = ''
    const fake = await startFakeAnthropic((req, n) => {
      const lastUser = JSON.stringify(req.messages.at(-1))
      if (n === 0) return { kind: 'tool_use', name: 'Write', input: { file_path: join(worktree, 'hello.txt'), content: 'hello\n' } }
      if (lastUser.includes('Please say goodbye too.'))
        return { kind: 'tool_use', name: 'Write', input: { file_path: join(worktree, 'bye.txt'), content: 'bye\n' } }
      if (lastUser.includes('tool_result') && JSON.stringify(req.messages).includes('bye.txt'))
        return { kind: 'text', text: 'Added bye.txt.' }
      return { kind: 'text', text: 'Added hello.txt.' }
    })
    stops.push(fake.stop)
    fx = await fixture({
      issues: ISSUES,
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    claude: { bin: ${claudeBin} }\n`,
    })
    worktree = join(realpathSync(fx.home), 'worktrees', 'tester', 'ENG-1')
    // Langfuse on: the real CLI's usage and cost reach the run's trace, and no secret does.
    const langfuse = await startFakeLangfuse({ publicKey: 'pk-lf-pipeline', secretKey: 'sk-lf-pipeline-secret' })
    stops.push(langfuse.stop)
    const env = {
      ANTHROPIC_BASE_URL: fake.url,
      CLAUDE_AUTH_TOKEN: 'fake-oauth-token',
      CLAUDE_CODE_MAX_RETRIES: '1',
      OPENAI_API_KEY: 'sk-should-never-reach-the-engine',
      LANGFUSE_HOST: langfuse.url,
      LANGFUSE_PUBLIC_KEY: 'pk-lf-pipeline',
      LANGFUSE_SECRET_KEY: 'sk-lf-pipeline-secret',
    }

    const first = await fx.script('start', ['--once', '--config', fx.configPath], env)
    expect(first.code, first.stderr).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    const branch = fx.originBranches().find((b) => b !== 'main')!
    expect(gitSync(['show', `${branch}:hello.txt`], fx.origin)).toBe('hello')
    const summary = fx.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))
    expect(summary).toHaveLength(1)
    expect(summary[0]!.body).toContain('Added hello.txt.')
    const rec = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.sessionId).toMatch(/^[0-9a-f-]{36}$/)
    expect(rec.runs[0]!.costUsd).toBeGreaterThan(0)
    expect(rec.runs[0]!.usage?.outputTokens).toBeGreaterThan(0)
    const usage = rec.runs[0]!.usage!
    const generation = langfuse.events().find((e) => e.type === 'generation-create')!
    expect(langfuse.requests.flatMap((r) => r.invalid)).toEqual([])
    expect(generation.body).toMatchObject({
      usageDetails: { input: usage.inputTokens, output: usage.outputTokens, total: usage.inputTokens + usage.outputTokens },
      costDetails: { total: rec.runs[0]!.costUsd },
    })
    for (const r of langfuse.requests)
      for (const secret of ['fake-oauth-token', 'sk-lf-pipeline-secret', 'sk-should-never-reach-the-engine', fx.env.ROSE_TEST_LINEAR_KEY!])
        expect(r.raw.includes(secret), secret).toBe(false)

    const requestsBefore = fake.requests.length
    const second = await rerunAfterComment(fx, env)
    expect(second.code, second.stderr).toBe(0)
    // The resumed conversation carries the first run's turns, then the new comment.
    const resumed = JSON.stringify(fake.requests[requestsBefore]!.messages)
    expect(resumed).toContain('Added hello.txt.')
    expect(resumed).toContain('Please say goodbye too.')
    expect(gitSync(['show', `${branch}:bye.txt`], fx.origin)).toBe('bye')
    expect(fx.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))).toHaveLength(2)
  }, 120_000)
})

describe.skipIf(!claudeBin && !process.env.CI)(suiteTitle('claude', 'limits with Claude Code', claudeBin), () => {
  test('a run over limits.max_cost_usd is stopped by Claude itself, reported with the limit and its cost, and not retried', async () => {
    expect(claudeBin).toBeDefined()
    const fake = await startFakeAnthropic(() => ({
      kind: 'tool_use',
      name: 'Bash',
      input: { command: 'echo working' },
      usage: { input_tokens: 100_000, output_tokens: 10_000 },
    }))
    stops.push(fake.stop)
    fx = await fixture({
      issues: ISSUES,
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    limits: { max_cost_usd: 0.01 }\n    claude: { bin: ${claudeBin} }\n`,
    })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], {
      ANTHROPIC_BASE_URL: fake.url,
      CLAUDE_AUTH_TOKEN: 'fake-oauth-token',
      CLAUDE_CODE_MAX_RETRIES: '1',
    })
    expect(res.code).toBe(1)
    // Claude stopped after the first expensive turn.
    expect(fake.requests.length).toBeLessThanOrEqual(2)
    const rec = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.runs[0]!.errorCode).toBe('limit_max_cost')
    expect(rec.runs[0]!.costUsd).toBeGreaterThan(0.01)
    expect(rec.phase).toBe('failed')
    const report = fx.issue('ENG-1').comments.find((c) => c.body.includes(COMMENT_MARKER))!
    expect(report.body).toContain('Over limits.max_cost_usd')
  }, 120_000)
})

describe.skipIf(!codexBin && !process.env.CI)(suiteTitle('codex', 'pipeline with Codex', codexBin), () => {
  test('the model patches a file: pushed and reported with usage; a comment reruns it resuming the thread', async () => {
    expect(codexBin).toBeDefined()
    const fake = await startFakeOpenAI((req, n) => {
      const input = JSON.stringify(req.body.input)
      if (n === 0) return { kind: 'apply_patch', patch: '*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n' }
      if (input.includes('Please say goodbye too.') && !input.includes('bye.txt'))
        return { kind: 'apply_patch', patch: '*** Begin Patch\n*** Add File: bye.txt\n+bye\n*** End Patch\n' }
      return { kind: 'text', text: input.includes('bye.txt') ? 'Added bye.txt.' : 'Added hello.txt.' }
    })
    stops.push(fake.stop)
    fx = await fixture({
      issues: ISSUES,
      agentYaml: (o) => codexYaml(o, fake.url),
    })
    mkdirSync(join(fx.dir, '.codex'), { recursive: true })
    const env = { FAKE_KEY: 'fake-key' }
    const first = await fx.script('start', ['--once', '--config', fx.configPath], env)
    expect(first.code, first.stderr).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    const branch = fx.originBranches().find((b) => b !== 'main')!
    expect(gitSync(['show', `${branch}:hello.txt`], fx.origin)).toBe('hello')
    const rec = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.sessionId).toBeTruthy()
    expect(rec.runs[0]!.usage?.inputTokens).toBeGreaterThan(0)
    expect(fx.issue('ENG-1').comments.find((c) => c.body.includes(COMMENT_MARKER))!.body).toContain('Added hello.txt.')

    const before = fake.requests.length
    const second = await rerunAfterComment(fx, env)
    expect(second.code, second.stderr).toBe(0)
    const resumed = JSON.stringify(fake.requests[before]!.input ?? fake.requests[before])
    expect(resumed).toContain('Added hello.txt.')
    expect(resumed).toContain('Please say goodbye too.')
    expect(gitSync(['show', `${branch}:bye.txt`], fx.origin)).toBe('bye')
    // Codex reports the thread's running total; the second run records only its own share.
    const runs = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.runs
    expect(runs[1]!.usageThreadTotal!.inputTokens).toBeGreaterThan(runs[0]!.usageThreadTotal!.inputTokens)
    expect(runs[1]!.usage!.inputTokens).toBe(runs[1]!.usageThreadTotal!.inputTokens - runs[0]!.usageThreadTotal!.inputTokens)
  }, 120_000)
})

describe.skipIf(!codexBin && !process.env.CI)(suiteTitle('codex', 'limits with Codex', codexBin), () => {
  test('a run over limits.max_turns is stopped, reported with the limit it hit, and not retried', async () => {
    expect(codexBin).toBeDefined()
    const fake = await startFakeOpenAI((_req, n) => ({ kind: 'shell', command: `echo step ${n}` }))
    stops.push(fake.stop)
    fx = await fixture({
      issues: ISSUES,
      agentYaml: (o) => codexYaml(o, fake.url, '    limits: { max_turns: 2 }'),
    })
    mkdirSync(join(fx.dir, '.codex'), { recursive: true })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], { FAKE_KEY: 'fake-key' })
    expect(res.code).toBe(1)
    const rec = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.runs[0]!.errorCode).toBe('limit_max_turns')
    expect(rec.phase).toBe('failed')
    expect(rec.nextRetryAt).toBeUndefined()
    const report = fx.issue('ENG-1').comments.find((c) => c.body.includes(COMMENT_MARKER))!
    expect(report.body).toContain('limit_max_turns')
    expect(report.body).toContain('limits.max_turns (2)')
    expect(fx.issue('ENG-1').state).toBe('In Progress')
  }, 120_000)
})
