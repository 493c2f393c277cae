/**
 * The agent_session half of `make demo`: the sandbox's app user is delegated an issue, a relay
 * (SQLite, in this process) takes Linear's signed webhook and answers with its first thought, a
 * worker (`start --once`, a child holding only the relay's worker token) runs it, and the session's
 * activities, branch and final response are printed. Everything on 127.0.0.1, in the demo's temp dir.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeFileSync } from 'node:fs'
import { spawnScript } from './proc.ts'
import { sandboxDelegate, sandboxSessions, sandboxSetWebhook } from './sandbox/client.ts'
import type { Sandbox } from './sandbox/server.ts'

/** The demo's app user (seeded by the demo): its OAuth client, as a relay installed with client_credentials uses it. */
export const DEMO_APP = {
  name: 'Rosie',
  email: 'rosie@app.demo.test',
  clientId: 'demo-rosie-client',
  clientSecret: 'demo-rosie-client-secret',
}

/** Delegate `issue` to the app user and run it through relay + worker; returns the report lines and whether it ended well. */
export async function demoAgentSession(opts: {
  dir: string
  home: string
  origin: string
  sandbox: Sandbox
  issue: string
  delegator: string
}): Promise<{ ok: boolean; lines: string[] }> {
  // The relay is Bun's (Bun.serve, bun:sqlite): under Node (tsx) this half is left out, and says so.
  if (typeof Bun === 'undefined') return { ok: true, lines: ['', '=== agent_session: left out under Node (the relay runs on Bun) ==='] }
  const [{ relayLinear }, { startRelay }, { openSqliteStore }] = await Promise.all([
    import('./relay/linear-app.ts'),
    import('./relay/server.ts'),
    import('./relay/store-sqlite.ts'),
  ])
  const secret = randomBytes(16).toString('hex')
  const workerToken = randomBytes(16).toString('hex')
  const store = openSqliteStore(join(opts.dir, 'relay', 'queue.db'))
  const linear = await relayLinear({
    store,
    env: {
      LINEAR_CLIENT_ID: DEMO_APP.clientId,
      LINEAR_CLIENT_SECRET: DEMO_APP.clientSecret,
      LINEAR_API_URL: opts.sandbox.url,
      LINEAR_OAUTH_URL: opts.sandbox.baseUrl,
    },
    storeDir: join(opts.dir, 'relay'),
    clientCredentials: true,
  })
  const relay = startRelay({ store, port: 0, host: '127.0.0.1', webhookSecret: secret, workerTokens: [workerToken], linear, log: () => {} })
  try {
    await sandboxSetWebhook(opts.sandbox.baseUrl, { url: `${relay.url}/webhooks/linear`, secret })
    const { session } = await sandboxDelegate(opts.sandbox.baseUrl, { issue: opts.issue, user: opts.delegator, app: DEMO_APP.email })
    const configPath = join(opts.home, 'agents-session.yaml')
    writeFileSync(
      configPath,
      `agents:\n  - name: demo-session\n    engine: console\n    tracker: { mode: agent_session, relay_url: ${relay.url}, token_env: DEMO_RELAY_WORKER_TOKEN, activity_interval_seconds: 0 }\n    repo: { url: ${opts.origin}, base: main }\n`,
    )
    const script = fileURLToPath(new URL('../scripts/start.ts', import.meta.url))
    const { LINEAR_API_URL: _, ...env } = process.env
    const child = spawnScript(script, ['--once', '--config', configPath], {
      env: { ...env, FACTORY_HOME: opts.home, DEMO_RELAY_WORKER_TOKEN: workerToken },
      secretNames: ['DEMO_RELAY_WORKER_TOKEN'],
    })
    const code = await child.exited
    const view = (await sandboxSessions(opts.sandbox.baseUrl)).find((x: { id: string }) => x.id === session.id)
    const d = opts.sandbox.store.data
    const issue = opts.sandbox.store.issue(opts.issue)!
    const state = d.states.find((x) => x.id === issue.stateId)!
    const lines = [
      '',
      `=== agent_session: ${opts.issue} delegated to ${DEMO_APP.name}, through the relay ===`,
      `worker start --once exited ${code}; ${opts.issue} is now: ${state.name}; session ${view?.status ?? '?'}`,
      'the session as Linear shows it:',
    ]
    for (const a of view?.activities ?? []) {
      const c = a.content as { type: string; body?: string; action?: string; parameter?: string; result?: string }
      const text = c.body ?? `${c.action} ${c.parameter ?? ''}${c.result ? ` -> ${c.result}` : ''}`
      lines.push(`  ${c.type.padEnd(11)} ${text.split('\n').join('\n              ')}`)
    }
    return { ok: code === 0 && state.name === 'In Review' && view?.status === 'complete', lines }
  } finally {
    await relay.stop()
  }
}
