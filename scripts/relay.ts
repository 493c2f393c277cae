#!/usr/bin/env bun
/** relay: receive Linear's agent webhooks, keep them in a durable leased queue, serve workers' long polls. */
import { defineCommand } from 'citty'
import { dirname } from 'node:path'
import { type CliSession, isEntry, runCli } from '../lib/cli.ts'
import { factoryHome } from '../lib/config.ts'
import { logger, redactorFor } from '../lib/log.ts'
import { relayLinear } from '../lib/relay/linear-app.ts'
import { openStore } from '../lib/relay/open-store.ts'
import { startRelay } from '../lib/relay/server.ts'
import { configureSentry } from '../lib/sentry.ts'
import { RELAY_OPTIONAL_SECRETS, RELAY_SECRETS, redactUrl, relaySettings } from '../lib/relay/settings.ts'

const command = defineCommand({
  meta: {
    name: 'relay',
    description:
      'Run the relay: POST /webhooks/linear (signed agent-session webhooks, deduped, stored durably), GET /events (workers long-poll leased events), /events/ack, /events/heartbeat, /linear/graphql, /oauth/*, /healthz, /status, /metrics. Needs LINEAR_WEBHOOK_SECRET and FACTORY_RELAY_WORKER_TOKEN; LINEAR_CLIENT_ID and LINEAR_CLIENT_SECRET turn on the Linear side (see docs/relay.md). With --gcp-project (or GCP_PROJECT) a secret unset in the environment is read from GCP Secret Manager.',
  },
  args: {
    port: { type: 'string', description: 'port to listen on (default $PORT or 8787)', valueHint: '8787' },
    host: { type: 'string', description: 'address to bind (default 127.0.0.1; 0.0.0.0 in a container)', valueHint: '127.0.0.1' },
    'local-queue': {
      type: 'string',
      description: 'SQLite queue file, one relay process (the default: $FACTORY_HOME/relay/queue.db)',
      valueHint: 'PATH',
    },
    'queue-url': {
      type: 'string',
      description: 'PostgreSQL URL for several relay instances (or RELAY_DATABASE_URL)',
      valueHint: 'postgres://...',
    },
    'gcp-project': {
      type: 'string',
      description: 'GCP project whose Secret Manager holds the secrets unset in the environment (or GCP_PROJECT)',
      valueHint: 'PROJECT',
    },
    'client-credentials': {
      type: 'boolean',
      description: 'mint a single-workspace app token with the client_credentials grant (no OAuth install, no RELAY_PUBLIC_URL)',
      default: false,
    },
  },
  async run({ args, rawArgs, data }) {
    const session = data as CliSession | undefined
    const env = session?.env ?? process.env
    const project = args['gcp-project'] ?? env.GCP_PROJECT
    configureSentry({ gcpProject: project })
    if (project) {
      // Resolved once, into the in-memory env this process reads; the redactor then knows the values.
      const { resolveSecrets } = await import('../lib/gcp-secrets.ts')
      await resolveSecrets(RELAY_SECRETS, env, project, { optional: RELAY_OPTIONAL_SECRETS })
      if (session) session.redact = redactorFor(env)
    }
    const localFlag = rawArgs.includes('--local-queue') ? (args['local-queue'] ?? true) : undefined
    const settings = relaySettings(
      { port: args.port, host: args.host, localQueue: localFlag, queueUrl: args['queue-url'] },
      env,
      factoryHome(env),
    )
    const log = logger('relay')
    const store = await openStore(settings.queue)
    let linear
    try {
      const storeDir = settings.queue.kind === 'sqlite' ? dirname(settings.queue.path) : undefined
      linear = await relayLinear({ store, env, storeDir, clientCredentials: args['client-credentials'] })
    } catch (e) {
      await store.close()
      throw e
    }
    const relay = startRelay({
      store,
      port: settings.port,
      host: settings.host,
      webhookSecret: settings.webhookSecret,
      workerTokens: settings.workerTokens,
      linear,
    })
    const where = settings.queue.kind === 'sqlite' ? `SQLite ${settings.queue.path}` : `PostgreSQL ${redactUrl(settings.queue.url)}`
    const app = linear ? 'Linear app on' : 'Linear app off (no LINEAR_CLIENT_ID): no first thought, OAuth or pass-through'
    log.info(`listening on ${relay.url} (queue: ${where}, ${settings.workerTokens.length} worker token(s), ${app})`)
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve())
      process.once('SIGTERM', () => resolve())
    })
    log.info('stopping: finishing requests in flight')
    await relay.stop()
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
