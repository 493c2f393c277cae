#!/usr/bin/env bun
/** relay-requeue: put parked events (dead letters) back in the relay's queue, attempts reset. */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, printJson, runCli } from '../lib/cli.ts'
import { factoryHome } from '../lib/config.ts'
import { FactoryError } from '../lib/errors.ts'
import { openStore } from '../lib/relay/open-store.ts'
import { queueSetting } from '../lib/relay/settings.ts'

const command = defineCommand({
  meta: {
    name: 'relay-requeue',
    description:
      "Put the relay's parked events (delivered too many times without an ack; listed under deadLetters in GET /status) back in the queue. Works on the store directly, so run it where the relay's queue is reachable.",
  },
  args: {
    id: { type: 'string', description: 'the parked event id to requeue', valueHint: 'EVENT_ID' },
    all: { type: 'boolean', description: 'requeue every parked event', default: false },
    'local-queue': { type: 'string', description: 'SQLite queue file (default $FACTORY_HOME/relay/queue.db)', valueHint: 'PATH' },
    'queue-url': { type: 'string', description: 'PostgreSQL URL (or RELAY_DATABASE_URL)', valueHint: 'postgres://...' },
    json: { type: 'boolean', description: 'print the requeued ids as JSON', default: false },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? process.env
    if (!args.id === !args.all)
      throw new FactoryError('usage', 'pass either --id <event id> or --all', { fix: 'see GET /status deadLetters for the ids' })
    const store = await openStore(queueSetting({ localQueue: args['local-queue'], queueUrl: args['queue-url'] }, env, factoryHome(env)))
    try {
      const ids = args.id ? [args.id] : (await store.stats(Date.now())).deadLetters.map((d) => d.id)
      const done: string[] = []
      for (const id of ids) if (await store.requeue(id)) done.push(id)
      if (args.id && done.length === 0)
        throw new FactoryError('usage', `event ${args.id} is not parked (unknown, queued, leased or acked)`, {
          fix: 'see GET /status deadLetters',
        })
      if (args.json) printJson({ requeued: done })
      else process.stdout.write(done.length ? done.map((id) => `requeued ${id}\n`).join('') : 'no parked events\n')
    } finally {
      await store.close()
    }
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
