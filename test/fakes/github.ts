/**
 * A fake GitHub REST server for pull requests, faithful where the factory depends on it:
 * Bearer auth (401 otherwise), `GET pulls?head=owner:branch&state=open`, `POST pulls` (422 when
 * the head branch does not exist or an open PR for it exists), `PATCH pulls/:n`, `GET /repos/:o/:r`
 * (with the token's `permissions`). Records requests.
 *
 * Misbehaviours seen in the field, switched by `misbehave` (also settable later with `setMode`):
 * `trickle` answers 200 with JSON headers, then one byte of body every `trickleMs` forever (a
 * proxy that never finishes); `html` answers every request 200 with an HTML login page.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FakePr {
  number: number
  head: string
  base: string
  title: string
  body: string
  state: 'open' | 'closed'
  html_url: string
}

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  authorization?: string
  body?: Record<string, unknown>
}

export type FakeGitHubMode = 'normal' | 'trickle' | 'html'

export async function startFakeGitHub(opts: {
  token: string
  branchExists: (name: string) => boolean
  misbehave?: FakeGitHubMode
  /** What `GET /repos/:owner/:repo` says the token may do (default: push). */
  permissions?: { push: boolean }
  trickleMs?: number
}) {
  let mode: FakeGitHubMode = opts.misbehave ?? 'normal'
  const trickles = new Set<ReturnType<typeof setInterval>>()
  const prs: FakePr[] = []
  const requests: RecordedRequest[] = []
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let data = ''
      req.on('data', (c) => (data += c))
      req.on('end', () => resolve(data))
    })
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const text = await read(req)
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined
    requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
      body,
    })
    const reply = (status: number, data: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(data))
    }
    if (mode === 'html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end('<!doctype html><html><head><title>Sign in - Corp Proxy</title></head><body><form>Log in</form></body></html>')
    }
    if (mode === 'trickle') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('[')
      const t = setInterval(() => res.write(' '), opts.trickleMs ?? 100)
      trickles.add(t)
      res.on('close', () => (clearInterval(t), trickles.delete(t)))
      return
    }
    if (req.headers.authorization !== `Bearer ${opts.token}`) return reply(401, { message: 'Bad credentials' })
    const repoOnly = url.pathname.match(/^\/repos\/([^/]+)\/([^/]+)$/)
    if (repoOnly && req.method === 'GET') {
      const push = opts.permissions?.push ?? true
      return reply(200, { full_name: `${repoOnly[1]}/${repoOnly[2]}`, permissions: { admin: false, push, pull: true } })
    }
    const m = url.pathname.match(/^\/repos\/([^/]+)\/([^/]+)\/pulls(?:\/(\d+))?$/)
    if (!m) return reply(404, { message: 'Not Found' })
    const [, owner, repo, num] = m
    const base = `https://github.com/${owner}/${repo}/pull`
    if (req.method === 'GET' && !num) {
      const head = url.searchParams.get('head')
      const state = url.searchParams.get('state') ?? 'open'
      return reply(
        200,
        prs.filter((p) => (!head || `${owner}:${p.head}` === head) && (state === 'all' || p.state === state)),
      )
    }
    if (req.method === 'POST' && !num) {
      const head = String(body?.head ?? '')
      if (!opts.branchExists(head)) return reply(422, { message: 'Validation Failed', errors: [{ field: 'head', code: 'invalid' }] })
      if (prs.some((p) => p.head === head && p.state === 'open'))
        return reply(422, { message: `A pull request already exists for ${owner}:${head}.` })
      const pr: FakePr = {
        number: prs.length + 1,
        head,
        base: String(body?.base),
        title: String(body?.title),
        body: String(body?.body ?? ''),
        state: 'open',
        html_url: `${base}/${prs.length + 1}`,
      }
      prs.push(pr)
      return reply(201, pr)
    }
    if (req.method === 'PATCH' && num) {
      const pr = prs.find((p) => p.number === Number(num))
      if (!pr) return reply(404, { message: 'Not Found' })
      if (body?.title) pr.title = String(body.title)
      if (body?.body) pr.body = String(body.body)
      return reply(200, pr)
    }
    return reply(404, { message: 'Not Found' })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    prs,
    requests,
    setMode: (m: FakeGitHubMode) => void (mode = m),
    stop: () => {
      for (const t of trickles) clearInterval(t)
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}
