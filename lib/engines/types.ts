/** The Engine interface (DESIGN.md "Engines"): one run of a coding agent in a worktree. */
import type { IsolationRequest } from './isolate.ts'
import type { McpServers } from './mcp.ts'

export type EngineName = 'claude' | 'codex' | 'console'

export type EngineStatus = 'success' | 'failed' | 'timeout' | 'stalled' | 'cancelled'

export interface EngineUsage {
  inputTokens: number
  outputTokens: number
  cachedInputTokens?: number
}

/** A progress event streamed to the caller while the engine runs. */
export type EngineEvent =
  | { kind: 'started'; sessionId?: string }
  /** The engine process exists (CLI engines): its pid, process group and the tag its descendants carry (reap.ts). */
  | { kind: 'spawned'; pid: number; pgid: number; tag: string }
  | { kind: 'thought'; text: string }
  | { kind: 'action'; tool: string; input: string }
  | { kind: 'action_result'; tool: string; output: string; isError?: boolean }
  | { kind: 'text'; text: string }
  | { kind: 'error'; message: string }
  /** The engine's todo list, whole (Claude's TodoWrite, Codex's todo_list item): Linear shows it as the session's plan. */
  | { kind: 'plan'; items: PlanStep[] }

/** One step of an engine's todo list, in Linear's plan statuses. */
export interface PlanStep {
  content: string
  status: 'pending' | 'inProgress' | 'completed' | 'canceled'
}

export interface EngineRunInput {
  prompt: string
  cwd: string
  /** The already-scrubbed environment for the engine process. */
  env: Record<string, string>
  /** Session / thread id of a previous run of the same issue, to resume. */
  resume?: string
  signal?: AbortSignal
  /** Hard timeout for the whole run. */
  timeoutMs: number
  /** Kill when the engine prints nothing for this long. */
  stallMs: number
  /** Where the full transcript of this run is written. */
  logPath: string
  onEvent?: (event: EngineEvent) => void
  /** Run the CLI in its own namespace (lib/engines/isolate.ts); absent = as is. */
  isolation?: IsolationRequest
  /** Hides every secret value the factory resolved; applied to each transcript line (default: none). */
  redact?: (text: string) => string
  /** The agent's MCP servers, secrets resolved: only their config file holds them (lib/engines/mcp.ts). */
  mcpServers?: McpServers
}

export interface EngineResult {
  status: EngineStatus
  /** The engine's final text (or the error that ended it). */
  summary: string
  sessionId?: string
  usage?: EngineUsage
  costUsd?: number
  exitCode: number | null
  logPath: string
  /** Failure code when status is not success (engine_failed, engine_timeout, ...). */
  errorCode?: 'engine_failed' | 'engine_timeout' | 'engine_stalled' | 'engine_cancelled' | 'engine_missing' | 'limit_max_turns' | 'limit_max_cost'
  /** Lines of output that did not parse as the engine's format. */
  malformedLines?: number
}

export interface Engine {
  readonly name: EngineName
  run(input: EngineRunInput): Promise<EngineResult>
}
