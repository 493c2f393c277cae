/**
 * The status server: the page at `/` (lib/status-page.ts) and a small JSON API over FACTORY_HOME.
 *   GET  /api/v1/state               per agent: running, queued, retrying, escalated, recent runs (lib/status-view.ts)
 *   GET  /api/v1/issues/:key         one issue in full (lib/issue-detail.ts); ?agent= when two agents know the key
 *   POST /api/v1/refresh             tick now (the loop of `start --port`); 409 for `status --serve`, which owns none
 *   POST /api/v1/issues/:key/retry   un-escalate and queue (lib/controls.ts, as `rose-factory retry`)
 *   POST /api/v1/issues/:key/cancel  stop the run, release and hold the issue (as `rose-factory cancel`)
 * Errors are `{"error":{"code","message"}}` with the HTTP status that fits. node:http, not Bun.serve:
 * it runs the same under Bun and under Node/tsx, so `start --port` works on both runtimes.
 * Bound to 127.0.0.1 unless a host is given; any other address needs ROSE_STATUS_TOKEN, sent as
 * `Authorization: Bearer` (refused at start without it). Without a token, requests must name a
 * loopback Host (a DNS-rebinding page cannot read the API), and every POST must be
 * `Content-Type: application/json` (a form on another site cannot send it: no cross-site POSTs).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cancelIssue, locateIssue, retryIssue } from './controls.ts'
import { asFactoryError, FactoryError } from './errors.ts'
import { issueDetail } from './issue-detail.ts'
import { logger } from './log.ts'
import { layout } from './paths.ts'
import { readState } from './state.ts'
import { STATUS_PAGE } from './status-page.ts'
import { type AgentFacts, stateView } from './status-view.ts'

export interface StatusServerOptions {
  home: string
  /** 0: any free port. */
  port: number
  /** Default 127.0.0.1. */
  host?: string
  /** ROSE_STATUS_TOKEN: required by the API when set, and to bind anything but loopback. */
  token?: string
  agents?: AgentFacts
  /** The loop this process owns (`start --port`): refresh and retry wake it. Absent: a watcher (`status --serve`). */
  loop?: { wake(): void }
  /** How long a cancelled run gets to stop on its own (ms; lib/controls.ts). */
  cancelGraceMs?: number
}

export interface StatusServer {
  url: string
  host: string
  port: number
  close(): Promise<void>
}

/** True for the loopback addresses and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1'
}

/** A port argument (`--port`, `--serve`): 0..65535, or a usage error naming the flag. */
export function parsePort(value: string, flag: string): number {
  const port = Number(value)
  if (!/^\d+$/.test(value) || port > 65535)
    throw new FactoryError('usage', `${flag} ${value} is not a port`, { fix: `pass a port number: ${flag} 8080 (0 picks a free one)` })
  return port
}

/** Refuse (usage, exit 2) to expose the API beyond loopback without a token. */
export function checkExposure(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token)
    throw new FactoryError('usage', `--host ${host} exposes the status API beyond this machine, and ROSE_STATUS_TOKEN is not set`, {
      fix: 'export ROSE_STATUS_TOKEN=<a long random string> (clients send it as Authorization: Bearer), or drop --host to stay on 127.0.0.1',
    })
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** HTTP status of a FactoryError from the lib functions. */
function statusOf(e: FactoryError): number {
  return e.code === 'issue_unknown' ? 404 : e.code === 'phase_conflict' ? 409 : e.exitCode === 2 ? 400 : 500
}

const digest = (s: string) => createHash('sha256').update(s).digest()

/** Start serving; resolves once listening. */
export async function startStatusServer(opts: StatusServerOptions): Promise<StatusServer> {
  const host = opts.host ?? '127.0.0.1'
  checkExposure(host, opts.token)
  const log = logger('status-server')
  const mode = opts.loop ? 'loop' : 'watch'

  const authorize = (req: IncomingMessage) => {
    if (opts.token) {
      const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
      if (!timingSafeEqual(digest(given), digest(opts.token)))
        throw new HttpError(401, 'unauthorized', 'this API needs Authorization: Bearer <ROSE_STATUS_TOKEN>', {
          'www-authenticate': 'Bearer',
        })
    } else if (!isLoopback((req.headers.host ?? '').replace(/:\d+$/, ''))) {
      throw new HttpError(
        400,
        'bad_host',
        `Host ${req.headers.host} is not this machine's loopback; set ROSE_STATUS_TOKEN to serve other names`,
      )
    }
  }

  const issueRef = (rawKey: string, url: URL) => {
    let key: string
    try {
      key = decodeURIComponent(rawKey)
    } catch {
      throw new HttpError(400, 'bad_request', `the issue key ${rawKey} is not valid percent-encoding`)
    }
    const agent = url.searchParams.get('agent') ?? undefined
    return { key, agent }
  }

  async function route(req: IncomingMessage, url: URL): Promise<{ status: number; body: unknown } | undefined> {
    const path = url.pathname.replace(/\/+$/, '') || '/'
    const method = req.method ?? 'GET'
    const allow = (...methods: string[]) => {
      if (!methods.includes(method))
        throw new HttpError(405, 'method_not_allowed', `${method} ${path}: use ${methods.join(' or ')}`, { allow: methods.join(', ') })
    }
    if (path === '/') {
      allow('GET')
      return undefined
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'not_found', `no page at ${path}; the status page is at /`)
    const issue = /^\/api\/v1\/issues\/([^/]+)(?:\/(retry|cancel))?$/.exec(path)
    const known = path === '/api/v1/state' || path === '/api/v1/refresh' || issue
    if (!known) throw new HttpError(404, 'not_found', `no API route ${path}; see /api/v1/state`)
    allow(path === '/api/v1/state' || (issue && !issue[2]) ? 'GET' : 'POST')
    authorize(req)
    if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? ''))
      throw new HttpError(400, 'bad_request', 'POST needs Content-Type: application/json')
    if (path === '/api/v1/state') return { status: 200, body: stateView(opts.home, { mode, agents: opts.agents }) }
    if (path === '/api/v1/refresh') {
      if (!opts.loop)
        throw new HttpError(
          409,
          'not_owner',
          `this server (status --serve, pid ${process.pid}) only watches ${opts.home} and owns no loop to tick; the loop ticks every poll_interval_seconds, or serve its own status with start --port`,
        )
      opts.loop.wake()
      log.info('refresh requested over HTTP: ticking now')
      return { status: 202, body: { ok: true, refreshing: true } }
    }
    const { key, agent } = issueRef(issue![1]!, url)
    const by = `the status page (${req.socket.remoteAddress ?? '?'})`
    if (issue![2] === 'retry') {
      const res = retryIssue(opts.home, key, { agent, by })
      opts.loop?.wake()
      return { status: 200, body: { ok: true, issue: issueDetail(opts.home, res.agent, res.record) } }
    }
    if (issue![2] === 'cancel') {
      const res = await cancelIssue(opts.home, key, { agent, by, graceMs: opts.cancelGraceMs })
      return { status: 200, body: { ok: true, run: res.run, issue: issueDetail(opts.home, res.agent, res.record) } }
    }
    const found = locateIssue(readState(layout(opts.home).state), key, agent, Object.keys(opts.agents ?? {}))
    return { status: 200, body: issueDetail(opts.home, found.agent, found.record) }
  }

  const server = createServer((req, res) => {
    req.resume() // bodies are not read (no route takes one)
    void handle(req, res)
  })

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const send = (status: number, body: string, type: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers })
      res.end(body)
    }
    try {
      const out = await route(req, new URL(req.url ?? '/', 'http://status.local'))
      if (!out)
        return send(200, STATUS_PAGE, 'text/html; charset=utf-8', {
          'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
        })
      send(out.status, JSON.stringify(out.body), 'application/json')
    } catch (err) {
      const e =
        err instanceof HttpError
          ? err
          : err instanceof FactoryError
            ? new HttpError(statusOf(err), err.code, err.fix ? `${err.message} (fix: ${err.fix})` : err.message)
            : new HttpError(500, 'internal', asFactoryError(err).message)
      if (e.status >= 500) log.error(`${req.method} ${req.url}: ${e.message}`)
      send(e.status, JSON.stringify({ error: { code: e.code, message: e.message } }), 'application/json', e.headers)
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new FactoryError('usage', `cannot serve on ${host}:${opts.port}: ${err.code ?? err.message}`, {
          fix: err.code === 'EADDRINUSE' ? 'pick another port (0 picks a free one)' : 'check the --host address',
        }),
      ),
    )
    server.listen(opts.port, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const shown = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shown}:${port}`,
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Serve until SIGINT or SIGTERM, then close (status --serve). */
export async function serveUntilSignal(server: StatusServer): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await server.close()
}
