/**
 * A scripted fake of the OpenAI Responses API on 127.0.0.1, so the tests can run the real Codex
 * CLI end to end. It streams SSE the way ../shared/notes/engines.md describes (response.created ...
 * response.completed) and picks the shell / apply_patch tool shape the CLI actually offered.
 */
import type { ServerResponse } from 'node:http'
import { startModelServer } from './model-server.ts'

export interface OpenAIRequest {
  input: any[]
  instructions: unknown
  tools: any[]
  body: any
}

/** What the scripted model answers to one request. */
export type OpenAIReply =
  | { kind: 'text'; text: string; usage?: FakeUsage }
  /** Run a shell command through whichever shell tool the CLI offered (exec_command, shell, ...). */
  | { kind: 'shell'; command: string; usage?: FakeUsage }
  /** Edit files with apply_patch (a freeform custom tool, or a function tool as a fallback). */
  | { kind: 'apply_patch'; patch: string; usage?: FakeUsage }
  | { kind: 'function_call'; name: string; arguments: Record<string, unknown>; usage?: FakeUsage }
  | { kind: 'http_error'; status: number; message: string; errorType?: string }
  | { kind: 'hang' }

export interface FakeUsage {
  input_tokens: number
  output_tokens: number
  cached_tokens?: number
}

export interface FakeOpenAI {
  url: string
  /** Bodies of every POST /v1/responses received, in order. */
  requests: any[]
  /** Anything else that was asked (answered 404). */
  unexpected: { method: string; url: string }[]
  stop(): Promise<void>
}

const DEFAULT_USAGE: FakeUsage = { input_tokens: 200, output_tokens: 40, cached_tokens: 50 }

/** Start the fake on a free port; `script(req, n)` decides the n-th (0-based) reply. */
export async function startFakeOpenAI(script: (req: OpenAIRequest, n: number) => OpenAIReply | Promise<OpenAIReply>): Promise<FakeOpenAI> {
  const server = await startModelServer({
    route: '/v1/responses',
    notFound: (path) => ({ error: { type: 'not_found', message: `no route ${path}` } }),
    answer: async (body, n, res) =>
      sendReply(res, await script({ input: body.input ?? [], instructions: body.instructions, tools: body.tools ?? [], body }, n), body, n),
  })
  return { url: `${server.origin}/v1`, requests: server.requests, unexpected: server.unexpected, stop: server.stop }
}

function sendReply(res: ServerResponse, reply: OpenAIReply, body: any, n: number): void {
  if (reply.kind === 'http_error') {
    res.writeHead(reply.status, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { type: reply.errorType ?? 'server_error', code: null, message: reply.message } }))
    return
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  const send = (type: string, data: object) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`)
  const id = `resp_fake_${n}`
  send('response.created', { response: { id, object: 'response', status: 'in_progress', model: body.model, output: [] } })
  if (reply.kind === 'hang') return // keep the socket open, say nothing more
  const item = outputItem(reply, body.tools ?? [], n)
  send('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress' } })
  if (reply.kind === 'text') {
    send('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: reply.text })
  }
  send('response.output_item.done', { output_index: 0, item })
  const u = reply.usage ?? DEFAULT_USAGE
  const usage = {
    input_tokens: u.input_tokens,
    input_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
    output_tokens: u.output_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.input_tokens + u.output_tokens,
  }
  send('response.completed', { response: { id, object: 'response', status: 'completed', model: body.model, output: [item], usage } })
  res.end()
}

/** The output item for a reply, shaped after the tools this request offered. */
function outputItem(reply: Exclude<OpenAIReply, { kind: 'http_error' } | { kind: 'hang' }>, tools: any[], n: number): any {
  const call = { id: `fc_fake_${n}`, call_id: `call_fake_${n}`, status: 'completed' }
  const tool = (name: string) => tools.find((t) => (t.name ?? t.function?.name) === name)
  switch (reply.kind) {
    case 'text':
      return {
        type: 'message',
        id: `msg_fake_${n}`,
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: reply.text, annotations: [] }],
      }
    case 'function_call':
      return { type: 'function_call', ...call, name: reply.name, arguments: JSON.stringify(reply.arguments) }
    case 'apply_patch': {
      const t = tool('apply_patch')
      if (t?.type === 'custom') return { type: 'custom_tool_call', ...call, name: 'apply_patch', input: reply.patch }
      return { type: 'function_call', ...call, name: 'apply_patch', arguments: JSON.stringify({ input: reply.patch }) }
    }
    case 'shell': {
      if (tool('exec_command'))
        return { type: 'function_call', ...call, name: 'exec_command', arguments: JSON.stringify({ cmd: reply.command }) }
      if (tool('shell_command'))
        return { type: 'function_call', ...call, name: 'shell_command', arguments: JSON.stringify({ command: reply.command }) }
      if (tool('shell'))
        return { type: 'function_call', ...call, name: 'shell', arguments: JSON.stringify({ command: ['bash', '-lc', reply.command] }) }
      throw new Error(`the CLI offered no shell tool: ${tools.map((t) => t.name ?? t.type).join(', ')}`)
    }
  }
}

/** The text of every function_call_output / custom_tool_call_output in a request's input. */
export function toolOutputs(body: any): string[] {
  const out: string[] = []
  for (const item of body?.input ?? []) {
    if (item?.type !== 'function_call_output' && item?.type !== 'custom_tool_call_output') continue
    const o = item.output
    out.push(typeof o === 'string' ? o : Array.isArray(o) ? o.map((x: any) => x?.text ?? '').join('') : JSON.stringify(o))
  }
  return out
}
