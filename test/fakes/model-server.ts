/**
 * The HTTP skeleton the scripted model fakes share: one POST route, every JSON body recorded in
 * order, anything else answered 404 and recorded, and a stop() that also ends hanging streams.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ModelServer {
  /** http://127.0.0.1:PORT */
  origin: string
  /** Bodies of every request to the route, in order. */
  requests: any[]
  /** Anything else that was asked (answered 404). */
  unexpected: { method: string; url: string }[]
  /** Headers of every request to the route, in the order of `requests`. */
  headers: Record<string, string | string[] | undefined>[]
  stop(): Promise<void>
}

/** Serve `route`; `answer(body, n, res)` writes the n-th (0-based) reply. */
export async function startModelServer(opts: {
  route: string
  notFound: (path: string) => object
  answer: (body: any, n: number, res: ServerResponse) => Promise<void>
}): Promise<ModelServer> {
  const requests: any[] = []
  const unexpected: { method: string; url: string }[] = []
  const headers: ModelServer['headers'] = []
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0]!
    const raw = await readBody(req)
    if (req.method !== 'POST' || path !== opts.route) {
      unexpected.push({ method: req.method ?? '', url: req.url ?? '' })
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify(opts.notFound(path)))
      return
    }
    let body: any
    try {
      body = JSON.parse(raw)
    } catch {
      res.writeHead(400).end()
      return
    }
    const n = requests.length
    requests.push(body)
    headers.push({ ...req.headers })
    await opts.answer(body, n, res)
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    unexpected,
    headers,
    stop: () =>
      new Promise<void>((ok) => {
        // Hanging streams would keep close() waiting forever.
        server.closeAllConnections()
        server.close(() => ok())
      }),
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let data = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (data += c))
    req.on('end', () => ok(data))
    req.on('error', fail)
  })
}
