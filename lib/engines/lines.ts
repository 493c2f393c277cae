/**
 * One zod schema per engine output line type: Claude Code's stream-json and Codex's `exec --json`.
 * A line whose type we do not know is tolerated (CLIs add types between releases); a line that is
 * not JSON, or fails the schema of a type we do know, is malformed and only counted.
 */
import { z } from '../zod.ts'

export type Parsed<T> =
  | { kind: 'line'; line: T }
  | { kind: 'unknown'; type: string }
  | { kind: 'malformed'; reason: string }
  | { kind: 'blank' }

/** Content blocks / items of a type not in `known` pass; known types must match their own schema. */
const other = (known: readonly string[]) => z.object({ type: z.string().refine((t) => !known.includes(t)) })

// ---- Claude Code stream-json -------------------------------------------------------------------

const ClaudeUsage = z.object({
  input_tokens: z.number(),
  output_tokens: z.number(),
  cache_read_input_tokens: z.number().nullish(),
  cache_creation_input_tokens: z.number().nullish(),
})

const ClaudeKnownAssistantBlock = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('thinking'), thinking: z.string() }),
  z.object({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.unknown() }),
])
const ClaudeToolResultBlock = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.unknown().optional(),
  is_error: z.boolean().nullish(),
})
const ClaudeAssistantBlock = z.union([ClaudeKnownAssistantBlock, other(['text', 'thinking', 'tool_use'])])
const ClaudeUserBlock = z.union([ClaudeToolResultBlock, other(['tool_result'])])

export type ClaudeAssistantBlock = z.infer<typeof ClaudeKnownAssistantBlock>
export type ClaudeToolResultBlock = z.infer<typeof ClaudeToolResultBlock>

/** Narrow a content block to the assistant block types we act on. */
export function isKnownAssistantBlock(b: { type: string }): b is ClaudeAssistantBlock {
  return b.type === 'text' || b.type === 'thinking' || b.type === 'tool_use'
}

export const CLAUDE_LINES = {
  system: z.object({
    type: z.literal('system'),
    subtype: z.string(),
    session_id: z.string().optional(),
    model: z.string().optional(),
    attempt: z.number().optional(),
    max_retries: z.number().optional(),
    error: z.unknown().optional(),
    error_status: z.number().nullish(),
  }),
  assistant: z.object({
    type: z.literal('assistant'),
    session_id: z.string().optional(),
    message: z.object({ content: z.array(ClaudeAssistantBlock) }),
  }),
  user: z.object({
    type: z.literal('user'),
    session_id: z.string().optional(),
    message: z.object({ content: z.union([z.string(), z.array(ClaudeUserBlock)]) }),
  }),
  result: z.object({
    type: z.literal('result'),
    subtype: z.string(),
    is_error: z.boolean(),
    result: z.string().optional(),
    errors: z.array(z.string()).optional(),
    session_id: z.string(),
    total_cost_usd: z.number().optional(),
    num_turns: z.number().optional(),
    api_error_status: z.number().nullish(),
    usage: ClaudeUsage.optional(),
  }),
} as const

export type ClaudeLine = { [K in keyof typeof CLAUDE_LINES]: z.infer<(typeof CLAUDE_LINES)[K]> }[keyof typeof CLAUDE_LINES]

/** Parse one line of `claude -p --output-format stream-json`. */
export function parseClaudeLine(raw: string): Parsed<ClaudeLine> {
  return parseWith(raw, CLAUDE_LINES) as Parsed<ClaudeLine>
}

// ---- Codex exec --json -------------------------------------------------------------------------

const CodexKnownItem = z.discriminatedUnion('type', [
  z.object({ id: z.string(), type: z.literal('agent_message'), text: z.string() }),
  z.object({ id: z.string(), type: z.literal('reasoning'), text: z.string() }),
  z.object({
    id: z.string(),
    type: z.literal('command_execution'),
    command: z.string(),
    aggregated_output: z.string().nullish(),
    exit_code: z.number().nullish(),
    status: z.string(),
  }),
  z.object({
    id: z.string(),
    type: z.literal('file_change'),
    changes: z.array(z.object({ path: z.string(), kind: z.string() })),
    status: z.string(),
  }),
  z.object({
    id: z.string(),
    type: z.literal('mcp_tool_call'),
    server: z.string(),
    tool: z.string(),
    arguments: z.unknown().optional(),
    result: z.unknown().optional(),
    error: z.unknown().optional(),
    status: z.string(),
  }),
  z.object({ id: z.string(), type: z.literal('web_search'), query: z.string() }),
  z.object({ id: z.string(), type: z.literal('error'), message: z.string() }),
  // The update_plan tool's list, flattened by `exec --json` to done / not done.
  z.object({ id: z.string(), type: z.literal('todo_list'), items: z.array(z.object({ text: z.string(), completed: z.boolean() })) }),
])
const KNOWN_ITEMS = ['agent_message', 'reasoning', 'command_execution', 'file_change', 'mcp_tool_call', 'web_search', 'error', 'todo_list']
const CodexItem = z.union([CodexKnownItem, z.object({ id: z.string() }).and(other(KNOWN_ITEMS))])

export type CodexKnownItem = z.infer<typeof CodexKnownItem>

/** Narrow an item to the item types we act on (the rest are tolerated and ignored). */
export function isKnownItem(item: { type: string }): item is CodexKnownItem {
  return KNOWN_ITEMS.includes(item.type)
}

const itemLine = <T extends string>(type: T) => z.object({ type: z.literal(type), item: CodexItem })

export const CODEX_LINES = {
  'thread.started': z.object({ type: z.literal('thread.started'), thread_id: z.string() }),
  'turn.started': z.object({ type: z.literal('turn.started') }),
  'item.started': itemLine('item.started'),
  'item.updated': itemLine('item.updated'),
  'item.completed': itemLine('item.completed'),
  'turn.completed': z.object({
    type: z.literal('turn.completed'),
    usage: z.object({
      input_tokens: z.number(),
      cached_input_tokens: z.number().nullish(),
      output_tokens: z.number(),
      reasoning_output_tokens: z.number().nullish(),
    }),
  }),
  'turn.failed': z.object({ type: z.literal('turn.failed'), error: z.object({ message: z.string() }) }),
  error: z.object({ type: z.literal('error'), message: z.string() }),
} as const

export type CodexLine = { [K in keyof typeof CODEX_LINES]: z.infer<(typeof CODEX_LINES)[K]> }[keyof typeof CODEX_LINES]

/** Parse one line of `codex exec --json`. */
export function parseCodexLine(raw: string): Parsed<CodexLine> {
  return parseWith(raw, CODEX_LINES) as Parsed<CodexLine>
}

// ---- shared ------------------------------------------------------------------------------------

function parseWith(raw: string, table: Record<string, z.ZodType>): Parsed<unknown> {
  if (!raw.trim()) return { kind: 'blank' }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return { kind: 'malformed', reason: 'not JSON' }
  }
  const type = (json as { type?: unknown } | null)?.type
  if (typeof type !== 'string') return { kind: 'malformed', reason: 'no string "type" field' }
  const schema = Object.hasOwn(table, type) ? table[type] : undefined
  if (!schema) return { kind: 'unknown', type }
  const parsed = schema.safeParse(json)
  if (parsed.success) return { kind: 'line', line: parsed.data }
  const issue = parsed.error.issues[0]
  return { kind: 'malformed', reason: `${type}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` }
}
