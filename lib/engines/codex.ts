/**
 * The Codex engine: `codex exec --json ... -` with the prompt on stdin (never in argv: `ps` would
 * show private issue text, and a long one fails with E2BIG), `exec ... resume <thread> -` for reruns. Notes on the CLI: ../shared/notes/engines.md.
 */
import { isKnownItem, parseCodexLine, type CodexKnownItem } from './lines.ts'
import { emitter, runEngineCli, type LineHandler, type LineKind, type Outcome } from './cli.ts'
import { mcpHandover, type McpHandover } from './mcp.ts'
import { codexTodoPlan } from './todo.ts'
import type { Engine, EngineEvent, EngineRunInput, EngineUsage } from './types.ts'

export interface CodexOptions {
  bin?: string
  sandbox?: 'read-only' | 'workspace-write' | 'danger-full-access'
  model?: string
  /** Each passed as `-c VALUE` (TOML `key=value`). */
  config?: string[]
  extraArgs?: string[]
}

/** Quiet, offline-safe flags (no analytics, no app / plugin sync). */
export const CODEX_QUIET_ARGS: readonly string[] = ['-c', 'analytics.enabled=false', '--disable', 'apps', '--disable', 'plugins']

/** The argv of one Codex run (bin first); `-` reads the prompt from stdin. */
export function codexArgv(bin: string, opts: CodexOptions, input: Pick<EngineRunInput, 'resume' | 'cwd'>): string[] {
  const argv = [bin, 'exec', '--json', '-C', input.cwd, '--skip-git-repo-check']
  if (opts.sandbox) argv.push('-s', opts.sandbox)
  if (opts.model) argv.push('-m', opts.model)
  for (const c of opts.config ?? []) argv.push('-c', c)
  argv.push(...CODEX_QUIET_ARGS, ...(opts.extraArgs ?? []))
  // `exec resume` itself takes no -C / -s; given to `exec` before the subcommand they still apply,
  // so a rerun keeps its sandbox (without -s it silently falls back to the default policy).
  if (input.resume) argv.push('resume', input.resume)
  argv.push('-')
  return argv
}

/**
 * Codex's own sandbox inside the factory's namespace: its bwrap would nest in ours (and needs
 * helper binaries in CODEX_HOME), so our namespace is the sandbox and Codex's is off; a configured
 * `read-only` becomes a read-only bind of the worktree (lib/engines/isolate.ts).
 */
export const NAMESPACE_SANDBOX = 'danger-full-access'

/** Create the Codex engine. */
export function createCodexEngine(opts: CodexOptions = {}): Engine {
  return {
    name: 'codex',
    run: (input: EngineRunInput) => {
      let mcp: McpHandover | undefined
      return runEngineCli(
        'codex',
        opts.bin,
        input,
        (bin, isolated) => {
          mcp = mcpHandover('codex', input, isolated)
          const o: CodexOptions = isolated ? { ...opts, sandbox: NAMESPACE_SANDBOX } : opts
          return { argv: codexArgv(bin, { ...o, extraArgs: [...(mcp?.argv ?? []), ...(o.extraArgs ?? [])] }, input), stdin: input.prompt, env: {}, handler: codexHandler(emitter(input)) }
        },
        { readOnlyWorktree: opts.sandbox === 'read-only' },
      ).finally(() => mcp?.cleanup())
    },
  }
}

/** Item types that are tool calls: an `action` when they start, an `action_result` when they end. */
const TOOL_ITEMS = new Set(['command_execution', 'file_change', 'mcp_tool_call', 'web_search'])

/** Follows an `exec --json` run: events as lines arrive, the outcome from turn.completed / turn.failed. */
export function codexHandler(emit: (e: EngineEvent) => void): LineHandler {
  let sessionId: string | undefined
  let lastText: string | undefined
  let lastError: string | undefined
  let failure: string | undefined
  let usage: EngineUsage | undefined
  let finished = false
  const announced = new Set<string>()

  const action = (item: CodexKnownItem) => {
    if (announced.has(item.id)) return
    announced.add(item.id)
    const { tool, input } = describe(item)
    emit({ kind: 'action', tool, input })
  }

  let lastPlan = ''
  const plan = (items: { text: string; completed: boolean }[]) => {
    const steps = codexTodoPlan(items)
    const key = JSON.stringify(steps)
    // item.completed repeats the last item.updated: one plan event per change.
    if (key === lastPlan) return
    lastPlan = key
    emit({ kind: 'plan', items: steps })
  }

  return {
    line(raw): { kind: LineKind; note?: string } {
      const parsed = parseCodexLine(raw)
      if (parsed.kind === 'malformed') return { kind: 'malformed', note: parsed.reason }
      if (parsed.kind !== 'line') return { kind: parsed.kind }
      const l = parsed.line
      switch (l.type) {
        case 'thread.started':
          if (!sessionId) emit({ kind: 'started', sessionId: l.thread_id })
          sessionId = l.thread_id
          break
        case 'item.started':
        case 'item.updated':
          if (isKnownItem(l.item) && l.item.type === 'todo_list') plan(l.item.items)
          else if (isKnownItem(l.item) && TOOL_ITEMS.has(l.item.type)) action(l.item)
          break
        case 'item.completed': {
          const item = l.item
          if (!isKnownItem(item)) break
          if (item.type === 'todo_list') plan(item.items)
          else if (item.type === 'agent_message') {
            lastText = item.text
            emit({ kind: 'text', text: item.text })
          } else if (item.type === 'reasoning') emit({ kind: 'thought', text: item.text })
          else if (item.type === 'error') {
            lastError = item.message
            emit({ kind: 'error', message: item.message })
          } else {
            action(item)
            emit({ kind: 'action_result', ...outputOf(item) })
          }
          break
        }
        case 'turn.completed': {
          const u = l.usage
          // Codex reports the thread's running total: on a resumed thread it includes earlier runs.
          usage = { inputTokens: u.input_tokens, outputTokens: u.output_tokens, cachedInputTokens: u.cached_input_tokens ?? 0 }
          finished = true
          break
        }
        case 'turn.failed':
          failure = l.error.message
          finished = true
          emit({ kind: 'error', message: failure })
          break
        case 'error':
          lastError = l.message
          // "Reconnecting..." repeats while the model server is unreachable: not progress.
          if (/^Reconnecting\b/i.test(l.message)) return { kind: 'noise' }
          emit({ kind: 'error', message: l.message })
          break
      }
      return { kind: 'progress' }
    },

    outcome(): Outcome {
      return { finished, failure, summary: lastText, sessionId, usage, costUsd: undefined, lastError }
    },
  }
}

function describe(item: CodexKnownItem): { tool: string; input: string } {
  switch (item.type) {
    case 'command_execution':
      return { tool: 'shell', input: item.command }
    case 'file_change':
      return { tool: 'apply_patch', input: item.changes.map((c) => `${c.kind} ${c.path}`).join('\n') }
    case 'mcp_tool_call':
      return { tool: `${item.server}.${item.tool}`, input: JSON.stringify(item.arguments ?? {}) }
    case 'web_search':
      return { tool: 'web_search', input: item.query }
    default:
      return { tool: item.type, input: '' }
  }
}

function outputOf(item: CodexKnownItem): { tool: string; output: string; isError?: boolean } {
  const { tool } = describe(item)
  switch (item.type) {
    case 'command_execution':
      return { tool, output: item.aggregated_output ?? '', isError: item.exit_code != null && item.exit_code !== 0 }
    case 'file_change':
      return { tool, output: item.changes.map((c) => `${c.kind} ${c.path}`).join('\n'), isError: item.status === 'failed' }
    case 'mcp_tool_call':
      return { tool, output: JSON.stringify(item.error ?? item.result ?? null), isError: item.error != null }
    default:
      return { tool, output: '' }
  }
}
