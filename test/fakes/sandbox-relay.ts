/**
 * The built-in sandbox (its app user `rosie`, minting app tokens with client_credentials) and a
 * real relay process on SQLite taking the sandbox's signed webhooks, in a temp dir: what the tests
 * of the worker's relay side start from.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sandboxSetWebhook } from '../../lib/sandbox/client.ts'
import { startSandbox, type Sandbox } from '../../lib/sandbox/server.ts'
import { spawnRelay, type RelayProcess } from './relay-process.ts'
import { WEBHOOK_SECRET } from './webhooks.ts'

export interface SandboxRelay {
  dir: string
  sandbox: Sandbox
  relay: RelayProcess
  stop(): Promise<void>
}

/** Start both (the relay installed in the sandbox's workspace, the sandbox's webhooks pointed at it). */
export async function sandboxWithRelay(prefix: string): Promise<SandboxRelay> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const sandbox = await startSandbox({ port: 0, dataPath: join(dir, 'data.json') })
  const relay = await spawnRelay(['--local-queue', join(dir, 'relay', 'queue.db'), '--client-credentials'], {
    FACTORY_HOME: dir,
    LINEAR_CLIENT_ID: 'sandbox-rosie-client',
    LINEAR_CLIENT_SECRET: 'sandbox-rosie-client-secret',
    LINEAR_API_URL: sandbox.url,
    LINEAR_OAUTH_URL: sandbox.baseUrl,
  })
  await sandboxSetWebhook(sandbox.baseUrl, { url: `${relay.url}/webhooks/linear`, secret: WEBHOOK_SECRET })
  return {
    dir,
    sandbox,
    relay,
    async stop() {
      await relay.stop()
      await sandbox.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
