/**
 * The agent verbs of `sandbox` (imported by scripts/sandbox.ts): where webhooks go, a human
 * delegating an issue to the app user or mentioning it, prompting or stopping a session, the
 * recorded webhook deliveries (redeliver, duplicate) and the sessions with their activities.
 */
import { defineCommand, type ArgsDef } from 'citty'
import { FactoryError } from '../errors.ts'
import {
  SANDBOX_URL_ENV,
  sandboxDeliveries,
  sandboxDelegate,
  sandboxDuplicate,
  sandboxMention,
  sandboxPrompt,
  sandboxRedeliver,
  sandboxSessions,
  sandboxSetWebhook,
} from './client.ts'

const urlArg = {
  url: {
    type: 'string',
    description: `The running sandbox (http://127.0.0.1:PORT; default $${SANDBOX_URL_ENV})`,
    valueHint: 'URL',
  },
} as const satisfies ArgsDef
const issueArg = { issue: { type: 'string', description: 'Issue identifier or id', valueHint: 'ENG-1', required: true } } as const
const appArg = {
  app: { type: 'string', description: 'The app user (name, email or id; default: the only one)', valueHint: 'rosie' },
} as const
const userArg = {
  user: { type: 'string', description: "The human's email (default: the issue's assignee or the session's creator)", valueHint: 'EMAIL' },
} as const
const sessionArg = { session: { type: 'string', description: 'Agent session id', valueHint: 'ID', required: true } } as const

const print = (value: unknown) => console.log(JSON.stringify(value, null, 2))

/** `--webhook-url` with `--webhook-secret` (or $SANDBOX_WEBHOOK_SECRET), shared by `serve` and `webhook`. */
export const webhookArgs = {
  'webhook-url': { type: 'string', description: 'Where AgentSessionEvent webhooks are POSTed', valueHint: 'URL' },
  'webhook-secret': {
    type: 'string',
    description: 'Their signing secret (default $SANDBOX_WEBHOOK_SECRET)',
    valueHint: 'SECRET',
  },
} as const satisfies ArgsDef

/** The webhook target from the flags, or undefined when no --webhook-url was given. */
export function webhookTarget(args: { 'webhook-url'?: string; 'webhook-secret'?: string }): { url: string; secret: string } | undefined {
  if (!args['webhook-url']) return undefined
  const secret = args['webhook-secret'] ?? process.env.SANDBOX_WEBHOOK_SECRET
  if (!secret)
    throw new FactoryError('usage', '--webhook-url needs a signing secret', {
      fix: 'pass --webhook-secret SECRET or set SANDBOX_WEBHOOK_SECRET (the relay must use the same secret)',
    })
  if (!/^https?:\/\/\S+$/.test(args['webhook-url']))
    throw new FactoryError('usage', `--webhook-url ${JSON.stringify(args['webhook-url'])} is not an http(s) URL`, {
      fix: 'pass e.g. --webhook-url http://127.0.0.1:8787/webhooks/linear',
    })
  return { url: args['webhook-url'], secret }
}

const webhook = defineCommand({
  meta: { name: 'webhook', description: 'Set (or with --off clear) where AgentSessionEvent webhooks go' },
  args: { ...urlArg, ...webhookArgs, off: { type: 'boolean', description: 'Stop sending webhooks' } },
  async run(ctx) {
    const target = webhookTarget(ctx.args)
    if (!target && !ctx.args.off)
      throw new FactoryError('usage', 'nothing to set', { fix: 'pass --webhook-url URL --webhook-secret S, or --off' })
    print(await sandboxSetWebhook(ctx.args.url, ctx.args.off ? null : target!))
  },
})

const delegate = defineCommand({
  meta: { name: 'delegate', description: 'Delegate an issue to the app user: a new agent session and a signed `created` webhook' },
  args: { ...urlArg, ...issueArg, ...appArg, ...userArg },
  async run(ctx) {
    print(await sandboxDelegate(ctx.args.url, { issue: ctx.args.issue, app: ctx.args.app, user: ctx.args.user! }))
  },
})

const mention = defineCommand({
  meta: { name: 'mention', description: 'Mention the app in a new comment: a new agent session on it and a `created` webhook' },
  args: {
    ...urlArg,
    ...issueArg,
    ...appArg,
    ...userArg,
    body: { type: 'string', description: 'Comment text (the @mention is added)', valueHint: 'TEXT' },
  },
  async run(ctx) {
    const { issue, app, user, body } = ctx.args
    print(await sandboxMention(ctx.args.url, { issue, app, user: user!, body }))
  },
})

const prompt = defineCommand({
  meta: { name: 'prompt', description: 'Reply in a session as a human: a `prompt` activity and a `prompted` webhook' },
  args: { ...urlArg, ...sessionArg, ...userArg, body: { type: 'string', description: 'The reply', valueHint: 'TEXT', required: true } },
  async run(ctx) {
    print(await sandboxPrompt(ctx.args.url, { session: ctx.args.session, body: ctx.args.body, user: ctx.args.user }))
  },
})

const stop = defineCommand({
  meta: { name: 'stop', description: 'Ask the agent to stop: a `prompted` webhook whose activity has signal "stop"' },
  args: { ...urlArg, ...sessionArg, ...userArg },
  async run(ctx) {
    print(await sandboxPrompt(ctx.args.url, { session: ctx.args.session, user: ctx.args.user, signal: 'stop' }))
  },
})

const deliveries = defineCommand({
  meta: { name: 'deliveries', description: 'Every webhook delivery: id, action, state and the status of each attempt' },
  args: { ...urlArg, full: { type: 'boolean', description: 'Include bodies and payloads' } },
  async run(ctx) {
    const list = await sandboxDeliveries(ctx.args.url)
    print(ctx.args.full ? list : list.map(({ body: _b, payload: _p, signature: _s, ...rest }) => rest))
  },
})

const redeliver = defineCommand({
  meta: { name: 'redeliver', description: 'Send a delivery again under the same Linear-Delivery id (a Linear retry)' },
  args: { ...urlArg, id: { type: 'string', description: 'Delivery id', valueHint: 'ID', required: true } },
  async run(ctx) {
    print(await sandboxRedeliver(ctx.args.url, ctx.args.id))
  },
})

const duplicate = defineCommand({
  meta: { name: 'duplicate', description: "Send a delivery's payload again under a new Linear-Delivery id (Linear's duplicates)" },
  args: { ...urlArg, id: { type: 'string', description: 'Delivery id (default: the last)', valueHint: 'ID' } },
  async run(ctx) {
    print(await sandboxDuplicate(ctx.args.url, ctx.args.id))
  },
})

const activities = defineCommand({
  meta: { name: 'activities', description: 'Agent sessions (of one issue) with status, external URLs, plan and activities' },
  args: { ...urlArg, issue: { ...issueArg.issue, required: false } },
  async run(ctx) {
    print(await sandboxSessions(ctx.args.url, ctx.args.issue))
  },
})

/** The agent subcommands, merged into `sandbox`'s. */
export const agentCommands = { webhook, delegate, mention, prompt, stop, deliveries, redeliver, duplicate, activities }
