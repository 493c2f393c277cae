/** An agent's MCP servers: their `${NAME}` secrets reach the server the real CLI starts, never the engine's env, shell or transcript. */
import { afterEach, describe, expect, test } from 'bun:test'
import { copyFileSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { agentSecretEnvs, parseConfig } from '../lib/config.ts'
import { createClaudeEngine } from '../lib/engines/claude.ts'
import { createCodexEngine } from '../lib/engines/codex.ts'
import { engineEnv } from '../lib/engines/env.ts'
import { probeBwrap } from '../lib/engines/isolate.ts'
import { claudeMcpJson, codexMcpToml, resolveMcpServers } from '../lib/engines/mcp.ts'
import type { EngineRunInput } from '../lib/engines/types.ts'
import { redactorFor } from '../lib/log.ts'
import { startFakeAnthropic, toolResults } from './fakes/anthropic.ts'
import { engineBin, makeWorkspace, suiteTitle, unique, type Workspace } from './fakes/engine-harness.ts'
import { startFakeOpenAI, toolOutputs } from './fakes/openai.ts'
import { rejection } from './helpers.ts'

const T = 60_000
/** The FactoryError `f` throws. */
const thrown = (f: () => unknown) => rejection((async () => f())())
const SERVER = fileURLToPath(new URL('./fixtures/mcp-env-server.js', import.meta.url))
const SECRET_NAME = 'ROSE_TEST_MCP_TOKEN'

const agentYaml = (mcp: string, extra = '') =>
  `agents:\n  - name: a\n    engine: claude\n    tracker: { mode: api_key, token_env: K }\n    repo: { url: /tmp/r }\n    isolation: none\n${extra}    mcp_servers:\n${mcp}`
const probe = `      probe: { command: node, args: [x.js], env: { PROBE_KEY: "\${${SECRET_NAME}}", MODE: "\${literal-ish}" } }\n`

describe('mcp_servers in agents.yaml', () => {
  test('a ${NAME} the environment lacks is reported at load with where it is written and how to set it', async () => {
    const err = await thrown(() => parseConfig(agentYaml(probe), 'agents.yaml', { K: 'k' }))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain(`agents[0].mcp_servers.probe.env.PROBE_KEY: environment variable ${SECRET_NAME} is not set`)
    expect(err.fix).toContain(`export ${SECRET_NAME}=`)
  })

  test('a referenced variable is one of the agent secrets: redacted, denied to the engine, refused in engine_env', async () => {
    const env = { K: 'k', [SECRET_NAME]: 'the-mcp-secret-value', PATH: '/bin' }
    const agent = parseConfig(agentYaml(probe), 'agents.yaml', env).agents[0]!
    expect(agentSecretEnvs(agent)).toContain(SECRET_NAME)
    expect(redactorFor(env, agentSecretEnvs(agent))('token the-mcp-secret-value here')).not.toContain('the-mcp-secret-value')
    expect(JSON.stringify(engineEnv('claude', env, agentSecretEnvs(agent), [SECRET_NAME]))).not.toContain('the-mcp-secret-value')
    const err = await thrown(() => parseConfig(agentYaml(probe, `    engine_env: [${SECRET_NAME}]\n`), 'agents.yaml', env))
    expect(err.message).toContain(`engine_env[0]: ${SECRET_NAME} holds a secret`)
    // Only a whole `${NAME}` value is a reference; anything else is taken literally.
    expect(resolveMcpServers(agent.mcp_servers, env).probe!.env).toEqual({ PROBE_KEY: 'the-mcp-secret-value', MODE: '${literal-ish}' })
  })

  test('an unknown key in a server is an error naming it', async () => {
    const err = await thrown(() => parseConfig(agentYaml('      probe: { command: node, cwd: /x }\n'), 'agents.yaml', { K: 'k' }))
    expect(err.message).toContain('unknown key "cwd"')
  })

  test('the Claude JSON and the Codex TOML carry command, args and env, quoted', () => {
    const servers = { 'my-db': { command: 'npx', args: ['-y', 'a "b"'], env: { TOKEN: 'v\\1' } } }
    expect(JSON.parse(claudeMcpJson(servers))).toEqual({ mcpServers: { 'my-db': { type: 'stdio', ...servers['my-db'] } } })
    expect(codexMcpToml(servers)).toBe('[mcp_servers."my-db"]\ncommand = "npx"\nargs = ["-y", "a \\"b\\""]\nenv = { "TOKEN" = "v\\\\1" }\n')
  })
})

let ws: Workspace | undefined
let stop: (() => Promise<void>) | undefined
afterEach(async () => {
  await stop?.()
  ws?.cleanup()
  ws = stop = undefined
})

const bwrap = probeBwrap()
/** Each real-CLI test runs as is, and inside bwrap when it works here (the config file must be bound, the secret still out of the shell). */
const MODES = [
  { mode: 'none', skip: '' },
  { mode: 'namespace', skip: bwrap.version ? '' : ` (skipped: ${bwrap.problem}; apt-get install bubblewrap)` },
] as const

/** A workspace, the secret, and the run input whose MCP server dumps its env to `dump`; `dir` is where the run writes its config. */
function mcpRun(engine: 'claude' | 'codex', mode: 'none' | 'namespace', extra: Record<string, string>, allow: string[] = []) {
  ws = makeWorkspace(`rose-mcp-${engine}-`)
  const secret = unique('mcp-secret')
  // Inside the namespace only the worktree is writable, and the test tree is out of sight: server and dump live in the worktree.
  const server = mode === 'namespace' ? join(ws.repo, 'mcp-env-server.js') : SERVER
  if (mode === 'namespace') copyFileSync(SERVER, server)
  const dump = join(mode === 'namespace' ? ws.repo : ws.root, 'mcp-env.json')
  const processEnv = ws.env({ ...extra, [SECRET_NAME]: secret })
  const servers = resolveMcpServers(
    { probe: { command: 'node', args: [server, dump], env: { PROBE_KEY: `\${${SECRET_NAME}}` } } },
    processEnv,
  )
  const factoryHome = join(ws.root, 'factory')
  const logPath = ws.logPath
  const input: EngineRunInput = {
    prompt: 'use the probe',
    cwd: ws.repo,
    env: engineEnv(engine, processEnv, [SECRET_NAME], allow),
    timeoutMs: T,
    stallMs: 30_000,
    logPath,
    redact: redactorFor(processEnv, [SECRET_NAME]),
    mcpServers: servers,
    isolation: mode === 'namespace' ? { mode, agent: 'tester', factoryHome, bwrap: bwrap.path } : undefined,
  }
  const home = join(factoryHome, 'engine-home', 'tester')
  const dir =
    mode === 'none'
      ? engine === 'claude'
        ? join(logPath, '..')
        : join(ws.home, '.codex')
      : engine === 'claude'
        ? home
        : join(home, '.codex')
  return { secret, dump, input, dir }
}

/** Config files the run left behind in `dir` (it removes its own when it ends). */
const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('rose-mcp-'))

const claude = engineBin('claude')
describe.skipIf(!claude)(suiteTitle('claude', 'An MCP server started by the real Claude Code', claude), () => {
  for (const { mode, skip } of MODES)
    test.skipIf(!!skip)(
      `isolation ${mode}: it gets the secret in its env and lists its tool; the env the model runs does not hold it, nor does the transcript${skip}`,
      async () => {
        const fake = await startFakeAnthropic((req) =>
          toolResults(req.body).length ? { kind: 'text', text: 'done' } : { kind: 'tool_use', name: 'Bash', input: { command: 'env' } },
        )
        stop = fake.stop
        const { secret, dump, input, dir } = mcpRun('claude', mode, { CLAUDE_AUTH_TOKEN: 'fake-oauth-token', ANTHROPIC_BASE_URL: fake.url })
        const r = await createClaudeEngine({ bin: claude, permissionMode: 'bypassPermissions' }).run(input)
        const transcript = readFileSync(r.logPath, 'utf8')
        expect(r.status, `${r.summary}\n${transcript}`).toBe('success')
        expect(JSON.parse(readFileSync(dump, 'utf8')).PROBE_KEY).toBe(secret)
        expect(readFileSync(`${dump}.methods`, 'utf8')).toContain('tools/list')
        expect(fake.requests[0].tools.map((t: { name: string }) => t.name)).toContain('mcp__probe__whoami')
        const seen = toolResults(fake.requests.at(-1)).join('\n')
        expect(seen).toContain('PATH=')
        expect(seen).not.toContain(secret)
        expect(transcript).toContain(`--mcp-config=${dir}/rose-mcp-`)
        expect(transcript).toContain('--strict-mcp-config')
        expect(transcript).not.toContain(secret)
        expect(leftovers(dir)).toEqual([])
      },
      T,
    )
})

const codex = engineBin('codex')
describe.skipIf(!codex)(suiteTitle('codex', 'An MCP server started by the real Codex', codex), () => {
  for (const { mode, skip } of MODES)
    test.skipIf(!!skip)(
      `isolation ${mode}: it gets the secret in its env and lists its tool; the shell the model runs does not hold it, nor does the transcript${skip}`,
      async () => {
        const fake = await startFakeOpenAI((req) =>
          toolOutputs(req.body).length ? { kind: 'text', text: 'done' } : { kind: 'shell', command: 'env' },
        )
        stop = fake.stop
        const { secret, dump, input, dir } = mcpRun('codex', mode, { FAKE_KEY: 'fake-key' }, ['FAKE_KEY'])
        const provider = `model_providers.fake={name="fake",base_url="${fake.url}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}`
        const engine = createCodexEngine({
          bin: codex,
          sandbox: 'workspace-write',
          model: 'gpt-5.5',
          // Codex's own shell env filter off, so only our scrub is tested.
          config: ['model_provider=fake', provider, 'shell_environment_policy.ignore_default_excludes=true'],
        })
        const r = await engine.run(input)
        const transcript = readFileSync(r.logPath, 'utf8')
        expect(r.status, `${r.summary}\n${transcript}`).toBe('success')
        expect(JSON.parse(readFileSync(dump, 'utf8')).PROBE_KEY).toBe(secret)
        // Codex always defers MCP tools behind tool_search: the server saw the listing, the model gets it on demand.
        expect(readFileSync(`${dump}.methods`, 'utf8')).toContain('tools/list')
        const seen = toolOutputs(fake.requests.at(-1)).join('\n')
        expect(seen).toContain('PATH=')
        expect(seen).not.toContain(secret)
        expect(transcript).toMatch(/"-p","rose-mcp-[0-9a-f]{16}"/)
        expect(transcript).not.toContain(secret)
        expect(leftovers(dir)).toEqual([])
      },
      T,
    )
})
