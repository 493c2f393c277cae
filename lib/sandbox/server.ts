/**
 * A local Linear-compatible GraphQL server (node:http: runs under Bun and Node).
 * POST /graphql speaks Linear's API for the subset in schema.ts; /_sandbox/* is the admin API.
 */
import { oauthToken } from './oauth.ts'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { handleAdmin } from './admin.ts'
import { handleAgentAdmin } from './agent-admin.ts'
import { emptyStats, GraphqlEndpoint, type Outcome } from './endpoint.ts'
import type { RateLimits } from './faults.ts'
import type { SandboxSeed } from './seed.ts'
import { SandboxStore } from './store.ts'
import type { SandboxFaults, SandboxStats } from './types.ts'
import { WebhookSender, type WebhookConfig, type WebhookDeps } from './webhooks.ts'

export type { SandboxSeed } from './seed.ts'
export type { FaultKind, SandboxFaults, SandboxStats } from './types.ts'
export type { RateLimits } from './faults.ts'
export type { DeliveryRecord, WebhookConfig } from './webhooks.ts'

export interface StartSandboxOptions {
  /** 0 (default) picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** JSON data file: loaded when it exists, written after every change. */
  dataPath?: string
  /** Initial data when there is no data file (default: DEFAULT_SEED in seed.ts). */
  seed?: SandboxSeed
  /** Replace an existing data file with `seed`. */
  reseed?: boolean
  /** Epoch ms "now" for timestamps, durations in filters and rate-limit resets. */
  clock?: () => number
  /** Per-user request/complexity budgets (defaults: 2,500 requests and 3,000,000 points an hour). */
  limits?: RateLimits
  /** Order of issues' nested comment lists (default newest first; oldest_first tests clients against the other reading of Linear's docs). */
  commentOrder?: 'newest_first' | 'oldest_first'
  /** Where AgentSessionEvent webhooks go (also settable with POST /_sandbox/webhook). */
  webhook?: WebhookConfig
  /** fetch and the wall clock of the webhook sender (tests). */
  webhookDeps?: WebhookDeps
}

export interface Sandbox {
  /** The GraphQL endpoint, e.g. http://127.0.0.1:PORT/graphql (pass it as the SDK's apiUrl). */
  url: string
  port: number
  /** http://HOST:PORT (issue URLs and the admin API hang off it). */
  baseUrl: string
  store: SandboxStore
  /** Where the data came from on start. */
  source: 'file' | 'seed' | 'default'
  stats(): SandboxStats
  resetStats(): void
  /** Replace the fault configuration (`{}` turns faults off and closes a rate-limit window). */
  setFaults(faults: SandboxFaults): SandboxFaults
  /** Replace all data with a seed. */
  seed(seed: SandboxSeed): void
  /** The webhook target and every delivery made so far. */
  webhooks: WebhookSender
  stop(): Promise<void>
}

const MAX_BODY = 5 * 1024 * 1024

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY) {
        reject(new Error(`request body larger than ${MAX_BODY} bytes`))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  const type = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8'
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(text)), ...headers })
  res.end(text)
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Start a sandbox; resolves once it listens. */
export async function startSandbox(opts: StartSandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? '127.0.0.1'
  const store = new SandboxStore({ dataPath: opts.dataPath, seed: opts.seed, reseed: opts.reseed, clock: opts.clock })
  let baseUrl = ''
  const endpoint = new GraphqlEndpoint(store, () => baseUrl, opts.limits, opts.commentOrder)
  const webhooks = new WebhookSender(opts.webhookDeps)
  if (opts.webhook) webhooks.configure(opts.webhook)
  const sockets = new Set<Socket>()
  const timers = new Set<ReturnType<typeof setTimeout>>()

  const deliver = async (res: ServerResponse, req: IncomingMessage, outcome: Outcome) => {
    if (outcome.kind === 'hang') {
      // The timeout fault: hold the request, then drop the connection without an answer.
      const timer = setTimeout(() => {
        timers.delete(timer)
        req.socket.destroy()
      }, outcome.ms)
      timers.add(timer)
      return
    }
    send(res, outcome.status, outcome.body, outcome.headers)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://sandbox').pathname
    const method = req.method ?? 'GET'
    const raw = method === 'GET' || method === 'HEAD' ? '' : await readBody(req)
    let body: unknown
    let jsonError: string | null = null
    try {
      body = raw.trim() ? JSON.parse(raw) : undefined
    } catch (e) {
      jsonError = e instanceof Error ? e.message : String(e)
    }
    if (path === '/oauth/token') {
      const out = oauthToken(method, raw, store)
      send(res, out.status, out.body)
      return
    }
    if (path === '/graphql' || path === '/graphql/') {
      if (method !== 'POST') {
        send(
          res,
          405,
          {
            errors: [
              {
                message: 'Use POST /graphql with a JSON body {"query", "variables", "operationName"}',
                extensions: { code: 'BAD_REQUEST', type: 'invalid input' },
              },
            ],
          },
          { Allow: 'POST' },
        )
        return
      }
      if (jsonError) {
        send(res, 400, {
          errors: [{ message: `Invalid JSON body: ${jsonError}`, extensions: { code: 'BAD_REQUEST', type: 'invalid input' } }],
        })
        return
      }
      if (endpoint.faults.latencyMs > 0) await sleep(endpoint.faults.latencyMs)
      const auth = req.headers.authorization
      await deliver(res, req, endpoint.handle(body, Array.isArray(auth) ? auth[0] : auth))
      return
    }
    if (jsonError && path.startsWith('/_sandbox')) {
      send(res, 400, { error: { code: 'invalid_input', message: `Invalid JSON body: ${jsonError}`, field: 'body' } })
      return
    }
    const admin =
      (await handleAgentAdmin(method, path, body, { store, webhooks, baseUrl })) ?? handleAdmin(method, path, body, store, endpoint)
    if (admin) send(res, admin.status, admin.body)
    else
      send(res, 404, {
        error: { code: 'not_found', message: `no route ${method} ${path}: the API is POST /graphql, the admin API /_sandbox/*` },
      })
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err)
      send(res, 500, {
        errors: [{ message: `Internal sandbox error: ${message}`, extensions: { code: 'INTERNAL_SERVER_ERROR', type: 'internal error' } }],
      })
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 0)
  baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`

  let stopped: Promise<void> | undefined
  return {
    url: `${baseUrl}/graphql`,
    port,
    baseUrl,
    store,
    source: store.source,
    stats: () => structuredClone(endpoint.stats),
    resetStats: () => {
      endpoint.stats = emptyStats()
    },
    setFaults: (faults) => endpoint.faults.set(faults),
    seed: (seed) => store.replace(seed),
    webhooks,
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        webhooks.stop()
        for (const t of timers) clearTimeout(t)
        timers.clear()
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
      return stopped
    },
  }
}
