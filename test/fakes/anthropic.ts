/**
 * A scripted fake of the Anthropic Messages API on 127.0.0.1, so the tests can run the real Claude
 * Code CLI end to end: the CLI is real, only the model is scripted. It streams SSE the way
 * ../shared/notes/engines.md describes (message_start ... message_stop).
 */
import type { ServerResponse } from 'node:http'
import { startModelServer } from './model-server.ts'

export interface AnthropicRequest {
  messages: any[]
  system: unknown
  tools: any[]
  body: any
}

/** What the scripted model answers to one request. */
export type AnthropicReply =
  | { kind: 'text'; text: string; usage?: FakeUsage }
  | { kind: 'tool_use'; name: string; input: Record<string, unknown>; text?: string; usage?: FakeUsage }
  | { kind: 'http_error'; status: number; errorType?: string; message: string }
  | { kind: 'hang' }

export interface FakeUsage {
  input_tokens: number
  output_tokens: number
  cache_read_input_tokens?: number
}

export interface FakeAnthropic {
  url: string
  /** Bodies of every POST /v1/messages received, in order. */
  requests: any[]
  /** Anything else that was asked (answered 404). */
  unexpected: { method: string; url: string }[]
  /** Headers of every POST /v1/messages, in the order of `requests` (the credential the CLI sent). */
  headers: Record<string, string | string[] | undefined>[]
  stop(): Promise<void>
}

const DEFAULT_USAGE: FakeUsage = { input_tokens: 120, output_tokens: 30, cache_read_input_tokens: 10 }

/** Start the fake on a free port; `script(req, n)` decides the n-th (0-based) reply. */
export async function startFakeAnthropic(
  script: (req: AnthropicRequest, n: number) => AnthropicReply | Promise<AnthropicReply>,
): Promise<FakeAnthropic> {
  const server = await startModelServer({
    route: '/v1/messages',
    notFound: (path) => ({ type: 'error', error: { type: 'not_found_error', message: `no route ${path}` } }),
    answer: async (body, n, res) =>
      sendReply(
        res,
        await script({ messages: body.messages ?? [], system: body.system, tools: body.tools ?? [], body }, n),
        body.model ?? 'claude-fake',
        n,
      ),
  })
  return { url: `${server.origin}`, requests: server.requests, unexpected: server.unexpected, headers: server.headers, stop: server.stop }
}

function sendReply(res: ServerResponse, reply: AnthropicReply, model: string, n: number): void {
  if (reply.kind === 'http_error') {
    res.writeHead(reply.status, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ type: 'error', error: { type: reply.errorType ?? 'api_error', message: reply.message } }))
    return
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  const send = (event: string, data: object) => res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`)
  const usage = reply.kind === 'hang' ? DEFAULT_USAGE : (reply.usage ?? DEFAULT_USAGE)
  send('message_start', {
    message: {
      id: `msg_fake_${n}`,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: usage.input_tokens,
        output_tokens: 1,
        cache_read_input_tokens: usage.cache_read_input_tokens ?? 0,
        cache_creation_input_tokens: 0,
      },
    },
  })
  if (reply.kind === 'hang') return // keep the socket open, say nothing more
  let index = 0
  const textBlock = (text: string) => {
    send('content_block_start', { index, content_block: { type: 'text', text: '' } })
    send('content_block_delta', { index, delta: { type: 'text_delta', text } })
    send('content_block_stop', { index })
    index++
  }
  if (reply.kind === 'text') textBlock(reply.text)
  else {
    if (reply.text) textBlock(reply.text)
    send('content_block_start', { index, content_block: { type: 'tool_use', id: `toolu_fake_${n}`, name: reply.name, input: {} } })
    send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(reply.input) } })
    send('content_block_stop', { index })
  }
  const stop_reason = reply.kind === 'text' ? 'end_turn' : 'tool_use'
  send('message_delta', { delta: { stop_reason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } })
  send('message_stop', {})
  res.end()
}

/** The text of every tool_result block in a request's messages (what the CLI sent back). */
export function toolResults(body: any): string[] {
  const out: string[] = []
  for (const m of body?.messages ?? []) {
    if (!Array.isArray(m.content)) continue
    for (const block of m.content) {
      if (block?.type !== 'tool_result') continue
      const c = block.content
      out.push(typeof c === 'string' ? c : Array.isArray(c) ? c.map((x: any) => x?.text ?? '').join('') : JSON.stringify(c))
    }
  }
  return out
}
