/**
 * A fake GitHub REST server for pull requests, faithful where the factory depends on it:
 * Bearer auth (401 otherwise), `GET pulls?head=owner:branch&state=open`, `POST pulls` (422 when
 * the head branch does not exist or an open PR for it exists), `PATCH pulls/:n`. Records requests.
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

export async function startFakeGitHub(opts: { token: string; branchExists: (name: string) => boolean }) {
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
    if (req.headers.authorization !== `Bearer ${opts.token}`) return reply(401, { message: 'Bad credentials' })
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
    stop: () => new Promise<void>((r) => server.close(() => r())),
  }
}
