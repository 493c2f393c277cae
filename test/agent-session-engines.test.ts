/**
 * agent_session mode with the REAL Claude Code and Codex CLIs (scripted model servers on 127.0.0.1): their
 * events become the session's activities (the tool call replaced by its result, the final response
 * carrying the model's summary), and a reply resumes the engine's own session or thread. `doctor`
 * checks Linear through the relay with the worker token.
 */
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxPrompt } from '../lib/sandbox/client.ts'
import { startFakeAnthropic } from './fakes/anthropic.ts'
import { startFakeOpenAI } from './fakes/openai.ts'
import { removeSetups, setup, type Setup } from './fakes/agent-session-setup.ts'
import { engineBin, suiteTitle } from './fakes/engine-harness.ts'
import { gitSync, ROOT } from './helpers.ts'

const claudeBin = engineBin('claude')
const codexBin = engineBin('codex')
let s: Setup | undefined
const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
  await s?.stop()
  s = undefined
})
afterAll(removeSetups)

describe.skipIf(!claudeBin && !process.env.CI)(suiteTitle('claude', 'agent_session with Claude Code', claudeBin), () => {
  test('a delegated issue run by Claude Code shows its tool call and summary in the session; a reply resumes its session', async () => {
    expect(claudeBin).toBeDefined()
    let worktree = ''
    const fake = await startFakeAnthropic((req, n) => {
      const lastUser = JSON.stringify(req.messages.at(-1))
      if (n === 0) return { kind: 'tool_use', name: 'Write', input: { file_path: join(worktree, 'health.txt'), content: 'ok\n' } }
      if (lastUser.includes('also say why'))
        return { kind: 'tool_use', name: 'Write', input: { file_path: join(worktree, 'why.txt'), content: 'probes\n' } }
      if (lastUser.includes('tool_result') && JSON.stringify(req.messages).includes('why.txt'))
        return { kind: 'text', text: 'Added why.txt.' }
      return { kind: 'text', text: 'Added health.txt for the health check.' }
    })
    stops.push(fake.stop)
    s = await setup({ engine: 'claude', agentLines: `    claude: { bin: ${claudeBin} }\n` })
    worktree = join(realpathSync(s.home), 'worktrees', 'rosie', 'ENG-1')
    const env = { ANTHROPIC_BASE_URL: fake.url, CLAUDE_AUTH_TOKEN: 'fake-oauth-token', CLAUDE_CODE_MAX_RETRIES: '1' }

    // Async: the sandbox answers from this process, so its event loop must keep running.
    const doctor = Bun.spawn([process.execPath, join(ROOT, 'scripts', 'doctor.ts'), '--json'], {
      env: { ...s.env, ...env },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const checks = JSON.parse(await new Response(doctor.stdout).text()) as { name: string; status: string; detail: string }[]
    await doctor.exited
    const linear = checks.find((c) => c.name === 'linear')!
    expect(linear.status, linear.detail).toBe('ok')
    expect(linear.detail).toContain('/linear/graphql answers; the app user is Rosie')
    expect(checks.find((c) => c.name === 'relay')?.status).toBe('ok')

    const sessionId = await s.delegate()
    const first = await s.start(['--once'], env)
    expect(first.code, first.stderr).toBe(0)
    const session = await s.session(sessionId)
    const contents = session.activities.map((a) => a.content)
    expect(contents.some((c) => c.type === 'action' && c.action === 'Write')).toBe(true)
    expect(contents.at(-1)).toMatchObject({ type: 'response' })
    expect(contents.at(-1)!.body).toContain('Added health.txt for the health check.')
    expect(s.issueState()).toBe('In Review')
    const branch = s.gh.prs[0]!.head
    expect(gitSync(['show', `${branch}:health.txt`], s.origin)).toBe('ok')

    const before = fake.requests.length
    await sandboxPrompt(s.sandbox.baseUrl, { session: sessionId, body: 'please also say why', user: 'riley@rose.test' })
    const second = await s.start(['--once'], env)
    expect(second.code, second.stderr).toBe(0)
    // The resumed conversation carries the first run's turns, then the reply.
    const resumed = JSON.stringify(fake.requests[before]!.messages)
    expect(resumed).toContain('Added health.txt for the health check.')
    expect(resumed).toContain('please also say why')
    expect(gitSync(['show', `${branch}:why.txt`], s.origin)).toBe('probes')
    expect((await s.session(sessionId)).activities.filter((a) => a.content.type === 'response')).toHaveLength(2)
    expect(s.gh.prs).toHaveLength(1)
  }, 180_000)
})

describe.skipIf(!codexBin && !process.env.CI)(suiteTitle('codex', 'agent_session with Codex', codexBin), () => {
  test('a delegated issue run by Codex: its patch pushed, its summary the final response; a reply resumes its thread', async () => {
    expect(codexBin).toBeDefined()
    const fake = await startFakeOpenAI((req, n) => {
      const input = JSON.stringify(req.body.input)
      if (n === 0) return { kind: 'apply_patch', patch: '*** Begin Patch\n*** Add File: health.txt\n+ok\n*** End Patch\n' }
      if (input.includes('also say why') && !input.includes('why.txt'))
        return { kind: 'apply_patch', patch: '*** Begin Patch\n*** Add File: why.txt\n+probes\n*** End Patch\n' }
      return { kind: 'text', text: input.includes('why.txt') ? 'Added why.txt.' : 'Added health.txt.' }
    })
    stops.push(fake.stop)
    const codexLines = [
      '    engine_env: [FAKE_KEY]',
      '    codex:',
      `      bin: ${codexBin}`,
      '      model: gpt-5.5',
      '      config:',
      "        - 'model_provider=fake'",
      `        - 'model_providers.fake={name="fake",base_url="${fake.url}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}'`,
      '',
    ].join('\n')
    s = await setup({ engine: 'codex', agentLines: codexLines })
    mkdirSync(join(s.dir, '.codex'), { recursive: true })
    const env = { FAKE_KEY: 'fake-key' }
    const sessionId = await s.delegate()
    const first = await s.start(['--once'], env)
    expect(first.code, first.stderr).toBe(0)
    const contents = (await s.session(sessionId)).activities.map((a) => a.content)
    expect(contents.at(-1)).toMatchObject({ type: 'response' })
    expect(contents.at(-1)!.body).toContain('Added health.txt.')
    expect(s.issueState()).toBe('In Review')
    const branch = s.gh.prs[0]!.head
    expect(gitSync(['show', `${branch}:health.txt`], s.origin)).toBe('ok')

    const before = fake.requests.length
    await sandboxPrompt(s.sandbox.baseUrl, { session: sessionId, body: 'please also say why', user: 'riley@rose.test' })
    const second = await s.start(['--once'], env)
    expect(second.code, second.stderr).toBe(0)
    const resumed = JSON.stringify(fake.requests[before]!.input ?? fake.requests[before])
    expect(resumed).toContain('Added health.txt.')
    expect(resumed).toContain('please also say why')
    expect(gitSync(['show', `${branch}:why.txt`], s.origin)).toBe('probes')
    expect((await s.session(sessionId)).activities.filter((a) => a.content.type === 'response')).toHaveLength(2)
  }, 180_000)
})
