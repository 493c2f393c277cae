/**
 * The Claude Code engine: `claude -p --output-format stream-json --verbose ...` with the prompt on
 * stdin (never in argv: `ps` would show private issue text, and a long one fails with E2BIG),
 * `--resume <session>` for reruns. Notes on the CLI: ../shared/notes/engines.md.
 */
import { parseClaudeLine, isKnownAssistantBlock, type ClaudeLine } from './lines.ts'
import { emitter, runEngineCli, type LineHandler, type LineKind, type Outcome } from './cli.ts'
import { CLAUDE_TOKEN_TARGET } from './env.ts'
import { mcpHandover, type McpHandover } from './mcp.ts'
import { claudeTaskList } from './todo.ts'
import type { Engine, EngineEvent, EngineRunInput } from './types.ts'

export interface ClaudeOptions {
  bin?: string
  permissionMode?: 'acceptEdits' | 'bypassPermissions' | 'default' | 'plan'
  allowedTools?: string[]
  model?: string
  maxTurns?: number
  appendSystemPrompt?: string
  extraArgs?: string[]
}

/** Quiet, offline-safe switches: without them the CLI phones api.anthropic.com (telemetry, updates). */
export const CLAUDE_QUIET_ENV: Readonly<Record<string, string>> = {
  DISABLE_TELEMETRY: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  DISABLE_AUTOUPDATER: '1',
}

/** The argv of one Claude Code run (bin first); the prompt goes on stdin. */
export function claudeArgv(bin: string, opts: ClaudeOptions, input: Pick<EngineRunInput, 'resume'>): string[] {
  const argv = [bin, '-p', '--output-format', 'stream-json', '--verbose']
  if (opts.permissionMode) argv.push('--permission-mode', opts.permissionMode)
  // `--allowedTools` is variadic; the `=` form keeps it from swallowing the next argument.
  if (opts.allowedTools?.length) argv.push(`--allowedTools=${opts.allowedTools.join(',')}`)
  if (opts.model) argv.push('--model', opts.model)
  if (opts.maxTurns) argv.push('--max-turns', String(opts.maxTurns))
  if (opts.appendSystemPrompt) argv.push(`--append-system-prompt=${opts.appendSystemPrompt}`)
  if (input.resume) argv.push('--resume', input.resume)
  argv.push(...(opts.extraArgs ?? []))
  return argv
}

/** The env additions for a run: the quiet switches, and IS_SANDBOX=1 when bypassing permissions as root. */
export function claudeEnvAdditions(opts: ClaudeOptions): Record<string, string> {
  const env: Record<string, string> = { ...CLAUDE_QUIET_ENV }
  const bypass = opts.permissionMode === 'bypassPermissions' || (opts.extraArgs ?? []).includes('--dangerously-skip-permissions')
  // As root the CLI refuses to bypass permissions unless told it runs in a sandbox.
  if (bypass && process.getuid?.() === 0) env.IS_SANDBOX = '1'
  return env
}

/** Claude Code reads its OAuth token from the fd this variable names (supported since 2.1.197, checked in test/claude.test.ts). */
export const CLAUDE_TOKEN_FD_ENV = 'CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR'
/** The fd the token pipe gets in the CLI (proc.run hands `fds[0]` over as fd 3). */
export const CLAUDE_TOKEN_FD = 3

/**
 * How the OAuth token reaches the CLI. `fd` (the default): on a pipe the CLI reads once, named by
 * CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR, so no environ holds it (the engine's shell could read
 * /proc/<claude pid>/environ). `env`: the old CLAUDE_CODE_OAUTH_TOKEN variable, for a CLI too old
 * for the fd (ROSE_CLAUDE_TOKEN_VIA=env).
 */
export type ClaudeTokenVia = 'fd' | 'env'

/** The token's env or fd additions for a run whose scrubbed env held `token` (none without one). */
export function claudeTokenHandover(token: string | undefined, via: ClaudeTokenVia = 'fd'): { env: Record<string, string>; fds: string[] } {
  if (!token) return { env: {}, fds: [] }
  if (via === 'env') return { env: { [CLAUDE_TOKEN_TARGET]: token }, fds: [] }
  return { env: { [CLAUDE_TOKEN_FD_ENV]: String(CLAUDE_TOKEN_FD) }, fds: [token] }
}

/** Create the Claude Code engine. */
export function createClaudeEngine(opts: ClaudeOptions = {}): Engine {
  return {
    name: 'claude',
    run: (input: EngineRunInput) => {
      // input.env carries the token as CLAUDE_CODE_OAUTH_TOKEN (engineEnv); the runner scrubs that
      // name from the env, and the token goes in on fd 3 instead.
      const via: ClaudeTokenVia = process.env.ROSE_CLAUDE_TOKEN_VIA === 'env' ? 'env' : 'fd'
      const token = claudeTokenHandover(input.env[CLAUDE_TOKEN_TARGET], via)
      let mcp: McpHandover | undefined
      return runEngineCli('claude', opts.bin, input, (bin, isolated) => {
        mcp = mcpHandover('claude', input, isolated)
        return {
          argv: [...claudeArgv(bin, opts, input), ...(mcp?.argv ?? [])],
          stdin: input.prompt,
          env: { ...claudeEnvAdditions(opts), ...token.env },
          fds: token.fds,
          handler: claudeHandler(emitter(input)),
        }
      }).finally(() => mcp?.cleanup())
    },
  }
}

/** Follows a stream-json run: events as lines arrive, the outcome from the `result` line. */
export function claudeHandler(emit: (e: EngineEvent) => void): LineHandler {
  let sessionId: string | undefined
  let lastText: string | undefined
  let lastError: string | undefined
  let result: Extract<ClaudeLine, { type: 'result' }> | undefined
  const toolNames = new Map<string, string>()
  const todos = claudeTaskList()
  const started = (id: string | undefined) => {
    if (!id || sessionId) return
    sessionId = id
    emit({ kind: 'started', sessionId: id })
  }

  return {
    line(raw): { kind: LineKind; note?: string } {
      const parsed = parseClaudeLine(raw)
      if (parsed.kind === 'malformed') return { kind: 'malformed', note: parsed.reason }
      if (parsed.kind !== 'line') return { kind: parsed.kind }
      const l = parsed.line
      switch (l.type) {
        case 'system':
          started(l.session_id)
          if (l.subtype === 'api_retry') {
            lastError = `API retry ${l.attempt ?? '?'}/${l.max_retries ?? '?'}: ${l.error_status ?? ''} ${String(l.error ?? '')}`.trim()
            return { kind: 'noise' }
          }
          break
        case 'assistant':
          started(l.session_id)
          for (const block of l.message.content) {
            if (!isKnownAssistantBlock(block)) continue
            if (block.type === 'text') {
              lastText = block.text
              emit({ kind: 'text', text: block.text })
            } else if (block.type === 'thinking') emit({ kind: 'thought', text: block.thinking })
            else {
              toolNames.set(block.id, block.name)
              // The todo tools are the run's plan, not tool calls worth showing (todo.ts).
              const todo = todos.use(block.id, block.name, block.input)
              if (todo.plan) emit({ kind: 'plan', items: todo.plan })
              if (!todo.handled) emit({ kind: 'action', tool: block.name, input: JSON.stringify(block.input ?? {}) })
            }
          }
          break
        case 'user':
          started(l.session_id)
          if (typeof l.message.content === 'string') break
          for (const block of l.message.content) {
            if (block.type !== 'tool_result' || !('tool_use_id' in block)) continue
            const tool = toolNames.get(block.tool_use_id) ?? 'unknown'
            const output = contentText(block.content)
            const todo = todos.result(block.tool_use_id, output, block.is_error === true)
            if (todo.plan) emit({ kind: 'plan', items: todo.plan })
            if (!todo.handled) emit({ kind: 'action_result', tool, output, isError: block.is_error === true })
          }
          break
        case 'result':
          started(l.session_id)
          result = l
          if (l.is_error) emit({ kind: 'error', message: resultText(l) })
          break
      }
      return { kind: 'progress' }
    },

    outcome(): Outcome {
      const u = result?.usage
      return {
        finished: result !== undefined,
        failure: result?.is_error ? resultText(result) : undefined,
        summary: result?.result ?? lastText,
        sessionId: sessionId ?? result?.session_id,
        // Anthropic counts cached input apart from input_tokens; the factory's inputTokens is all input.
        usage: u && {
          inputTokens: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
          outputTokens: u.output_tokens,
          cachedInputTokens: u.cache_read_input_tokens ?? 0,
        },
        costUsd: result?.total_cost_usd,
        lastError,
      }
    },
  }
}

function resultText(r: Extract<ClaudeLine, { type: 'result' }>): string {
  return r.result || r.errors?.join('; ') || `claude ended with ${r.subtype}`
}

/** A tool_result's content (a string, or text blocks) as plain text. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((b) => (typeof b?.text === 'string' ? b.text : '')).join('')
  return content === undefined ? '' : JSON.stringify(content)
}
