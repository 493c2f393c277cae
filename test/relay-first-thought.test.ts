/**
 * The relay answers a new agent session itself: the sandbox (Linear's schema, signed webhooks,
 * client_credentials at /oauth/token) delegates an issue to its app user, a real relay process
 * takes the webhook and posts the first thought through its own app token, with no worker online.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { firstThoughtId } from '../lib/relay/first-thought.ts'
import { sandboxDelegate, sandboxDeliveries, sandboxDuplicate, sandboxSessions } from '../lib/sandbox/client.ts'
import type { Sandbox } from '../lib/sandbox/server.ts'
import type { RelayProcess } from './fakes/relay-process.ts'
import { sandboxWithRelay, type SandboxRelay } from './fakes/sandbox-relay.ts'

let both: SandboxRelay
let sandbox: Sandbox
let relay: RelayProcess

beforeAll(async () => {
  both = await sandboxWithRelay('relay-thought-')
  ;({ sandbox, relay } = both)
})
afterAll(async () => {
  await both?.stop()
})

test('a delegated issue shows the relay first thought within 10 s with no worker online, once even when Linear sends it twice', async () => {
  const started = Date.now()
  const { session } = await sandboxDelegate(sandbox.baseUrl, {
    issue: 'ENG-1',
    user: 'reviewer@sandbox.local',
    app: 'rosie@oauthapp.sandbox.local',
  })
  const sessionId: string = session.id
  let thoughts: { id: string; content: { type: string; body: string } }[] = []
  while (Date.now() - started < 10_000) {
    const [s] = (await sandboxSessions(sandbox.baseUrl, 'ENG-1')).filter((x: { id: string }) => x.id === sessionId)
    thoughts = (s?.activities ?? []).filter((a: { content: { type: string } }) => a.content.type === 'thought')
    if (thoughts.length > 0) break
    await Bun.sleep(50)
  }
  const elapsed = Date.now() - started
  expect(thoughts.map((t) => [t.id, t.content.body])).toEqual([[firstThoughtId(sessionId), 'Received: queued for a worker']])
  expect(elapsed).toBeLessThan(10_000)
  // Linear's duplicate (a new delivery id for the same session) is answered 200 and posts nothing more.
  await sandboxDuplicate(sandbox.baseUrl)
  await Bun.sleep(300)
  const deliveries = await sandboxDeliveries(sandbox.baseUrl)
  expect(deliveries.map((d: { attempts: { status: number }[] }) => d.attempts.at(-1)?.status)).toEqual([200, 200])
  const [after] = (await sandboxSessions(sandbox.baseUrl, 'ENG-1')).filter((x: { id: string }) => x.id === sessionId)
  expect(after.activities.filter((a: { content: { type: string } }) => a.content.type === 'thought')).toHaveLength(1)
  expect(relay.output()).not.toContain('sandbox-rosie-client-secret')
  expect(relay.output()).not.toContain('lin_oauth_sandbox_rosie')
  console.log(`first thought visible ${elapsed} ms after the delegation`)
})
