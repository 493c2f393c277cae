/**
 * A fake Sentry ingestion server on 127.0.0.1: the DSN `http://<key>@127.0.0.1:<port>/<project>`
 * makes the SDK POST envelopes to `/api/<project>/envelope/`. Each request is kept raw (after
 * undoing a content-encoding) and parsed as an envelope: a header line, then items, each an item
 * header line and a payload (`length` bytes when the header says so, else up to the newline).
 * `mode: 'hang'` accepts requests and never answers (an ingestion that is down behind a proxy).
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { z } from '../../lib/zod.ts'

export interface EnvelopeItem {
  header: Record<string, unknown>
  payload: unknown
}

export interface SentryRequest {
  path: string
  /** The query's sentry_key, or the key in an X-Sentry-Auth header. */
  key?: string
  /** The body as the SDK meant it (decompressed): what a leak check must search. */
  raw: Buffer
  header: Record<string, unknown>
  items: EnvelopeItem[]
}

/** The parts of an error event the tests read (the SDK sends more: contexts, sdk, server_name ...). */
export const SentryEvent = z.object({
  event_id: z.string(),
  level: z.enum(['fatal', 'error', 'warning', 'info', 'debug']),
  release: z.string(),
  tags: z.record(z.string(), z.string()),
  exception: z.object({
    values: z.array(z.object({ type: z.string(), value: z.string(), stacktrace: z.object({ frames: z.array(z.unknown()) }).optional() })),
  }),
})
export type SentryEvent = z.infer<typeof SentryEvent>

export interface FakeSentry {
  dsn: string
  requests: SentryRequest[]
  /** The error events received, checked against SentryEvent. */
  events(): SentryEvent[]
  stop(): Promise<void>
}

/** Parse one envelope (the SDK's newline-delimited format). */
export function parseEnvelope(raw: Buffer): { header: Record<string, unknown>; items: EnvelopeItem[] } {
  let at = 0
  const line = () => {
    const nl = raw.indexOf(10, at)
    const end = nl < 0 ? raw.length : nl
    const text = raw.subarray(at, end).toString('utf8')
    at = end + 1
    return text
  }
  const header = JSON.parse(line()) as Record<string, unknown>
  const items: EnvelopeItem[] = []
  while (at < raw.length) {
    const head = line()
    if (!head.trim()) continue
    const itemHeader = JSON.parse(head) as Record<string, unknown>
    let body: string
    if (typeof itemHeader.length === 'number') {
      body = raw.subarray(at, at + itemHeader.length).toString('utf8')
      at += itemHeader.length + 1
    } else body = line()
    items.push({ header: itemHeader, payload: body ? JSON.parse(body) : undefined })
  }
  return { header, items }
}

function decode(body: Buffer, encoding: string | null): Buffer {
  if (encoding === 'gzip') return gunzipSync(body)
  if (encoding === 'deflate') return inflateSync(body)
  if (encoding === 'br') return brotliDecompressSync(body)
  return body
}

/** Start the fake; `project` and `key` make its DSN. */
export function startFakeSentry(opts: { mode?: 'ok' | 'hang'; project?: string; key?: string } = {}): FakeSentry {
  const project = opts.project ?? '4242'
  const key = opts.key ?? 'publickey0fake'
  const requests: SentryRequest[] = []
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url)
      const raw = decode(Buffer.from(await req.arrayBuffer()), req.headers.get('content-encoding'))
      const auth = /sentry_key=([^,\s]+)/.exec(req.headers.get('x-sentry-auth') ?? '')?.[1]
      requests.push({ path: url.pathname, key: url.searchParams.get('sentry_key') ?? auth, raw, ...parseEnvelope(raw) })
      if (opts.mode === 'hang') return new Promise<Response>(() => {})
      if (url.pathname !== `/api/${project}/envelope/`) return new Response('not found', { status: 404 })
      return Response.json({ id: requests.at(-1)!.header.event_id ?? null })
    },
  })
  return {
    dsn: `http://${key}@127.0.0.1:${server.port}/${project}`,
    requests,
    events: () =>
      requests.flatMap((r) => r.items.filter((i) => i.header.type === 'event').map((i) => SentryEvent.parse(i.payload) as SentryEvent)),
    stop: () => server.stop(true),
  }
}
