/**
 * Adapter overhead: wall time of a scripted one-turn run through the engine adapter vs the bare CLI
 * with the same argv and env against the same fake model server, N runs each, interleaved.
 * Prints a Markdown snippet for BENCHMARKS.md. Target: overhead < max(5 %, 50 ms).
 *
 *   node_modules/.bin/bun bench/engine-overhead.ts [--runs 10]
 */
import { spawn } from 'node:child_process'
import { claudeArgv, claudeEnvAdditions, createClaudeEngine, type ClaudeOptions } from '../lib/engines/claude.ts'
import { codexArgv, createCodexEngine, type CodexOptions } from '../lib/engines/codex.ts'
import { engineEnv } from '../lib/engines/env.ts'
import type { Engine, EngineRunInput } from '../lib/engines/types.ts'
import { startFakeAnthropic } from '../test/fakes/anthropic.ts'
import { engineBin, makeWorkspace } from '../test/fakes/engine-harness.ts'
import { startFakeOpenAI } from '../test/fakes/openai.ts'

const runsArg = process.argv.indexOf('--runs')
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10

interface Case {
  engine: Engine
  argv: string[]
  env: Record<string, string>
  input: () => EngineRunInput
  stop: () => Promise<void>
}

/** The bare CLI: same argv, env and prompt on stdin, stdout drained, no parsing, no transcript. */
function bare(argv: string[], env: Record<string, string>, cwd: string): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdin.end('say done')
    child.stdout.resume()
    child.stderr.resume()
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`bare ${argv[0]} exited ${code}`))))
  })
}

async function adapter(c: Case): Promise<number> {
  const started = performance.now()
  const r = await c.engine.run(c.input())
  if (r.status !== 'success') throw new Error(`adapter run ${r.status}: ${r.summary}`)
  return performance.now() - started
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function claudeCase(bin: string, ws: ReturnType<typeof makeWorkspace>): Promise<Case> {
  const fake = await startFakeAnthropic(() => ({ kind: 'text', text: 'done' }))
  const opts: ClaudeOptions = { bin, permissionMode: 'acceptEdits' }
  const env = engineEnv('claude', ws.env({ CLAUDE_AUTH_TOKEN: 'fake', ANTHROPIC_BASE_URL: fake.url }))
  const input = (): EngineRunInput => ({ prompt: 'say done', cwd: ws.repo, env, timeoutMs: 60_000, stallMs: 30_000, logPath: ws.logPath })
  return {
    engine: createClaudeEngine(opts),
    argv: claudeArgv(bin, opts, input()),
    env: { ...env, ...claudeEnvAdditions(opts) },
    input,
    stop: fake.stop,
  }
}

async function codexCase(bin: string, ws: ReturnType<typeof makeWorkspace>): Promise<Case> {
  const fake = await startFakeOpenAI(() => ({ kind: 'text', text: 'done' }))
  const provider = `model_providers.fake={name="fake",base_url="${fake.url}",wire_api="responses",env_key="FAKE_KEY"}`
  const opts: CodexOptions = { bin, sandbox: 'workspace-write', model: 'gpt-5.5', config: ['model_provider=fake', provider] }
  const env = engineEnv('codex', ws.env({ FAKE_KEY: 'fake' }))
  const input = (): EngineRunInput => ({ prompt: 'say done', cwd: ws.repo, env, timeoutMs: 60_000, stallMs: 30_000, logPath: ws.logPath })
  return { engine: createCodexEngine(opts), argv: codexArgv(bin, opts, input()), env, input, stop: fake.stop }
}

const rows: string[] = []
for (const name of ['claude', 'codex'] as const) {
  const bin = engineBin(name)
  if (!bin) {
    rows.push(`| ${name} | - | - | - | - | not installed (run \`make engines\`) |`)
    continue
  }
  const ws = makeWorkspace(`rose-bench-${name}-`)
  const c = name === 'claude' ? await claudeCase(bin, ws) : await codexCase(bin, ws)
  try {
    await adapter(c) // warm the page cache and the CLI's first-run files in HOME
    await bare(c.argv, c.env, ws.repo)
    const a: number[] = []
    const b: number[] = []
    for (let i = 0; i < RUNS; i++) {
      // Interleave, alternating which goes first, so drift hits both sides alike.
      if (i % 2) {
        b.push(await bare(c.argv, c.env, ws.repo))
        a.push(await adapter(c))
      } else {
        a.push(await adapter(c))
        b.push(await bare(c.argv, c.env, ws.repo))
      }
    }
    const ma = median(a)
    const mb = median(b)
    const over = ma - mb
    const ok = over < Math.max(0.05 * mb, 50)
    rows.push(
      `| ${name} | ${ma.toFixed(0)} ms | ${mb.toFixed(0)} ms | ${over >= 0 ? '+' : ''}${over.toFixed(1)} ms | ${(ma / mb).toFixed(3)} | ${ok ? 'yes' : 'NO'} |`,
    )
  } finally {
    await c.stop()
    ws.cleanup()
  }
}

console.log(`### Engine adapter overhead (${RUNS} one-turn runs each, interleaved, fake model on 127.0.0.1)

| engine | adapter (median) | bare CLI (median) | overhead | ratio | under max(5 %, 50 ms) |
|---|---|---|---|---|---|
${rows.join('\n')}

Same argv and env on both sides; the adapter adds proc.run, line parsing (zod), the transcript file,
events, and the /proc scan for leftover processes. \`bun bench/engine-overhead.ts --runs ${RUNS}\`, ${new Date().toISOString().slice(0, 10)}.`)
