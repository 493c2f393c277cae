#!/usr/bin/env bun
/**
 * The local Linear sandbox: `serve` runs it; the other verbs drive a running one over its admin
 * API (/_sandbox/*), as a human would act in Linear (comment, assign, move; delegate to or
 * mention an app, prompt or stop its session: lib/sandbox/agent-commands.ts) or to inject faults.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { defineCommand, type ArgsDef } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { SANDBOX_URL_ENV, sandboxAdmin } from '../lib/sandbox/client.ts'
import { startSandbox } from '../lib/sandbox/server.ts'
import { agentCommands, webhookArgs, webhookTarget } from '../lib/sandbox/agent-commands.ts'

const urlArg = {
  url: {
    type: 'string',
    description: `The running sandbox (http://127.0.0.1:PORT, its /graphql URL works too; default $${SANDBOX_URL_ENV})`,
    valueHint: 'URL',
  },
} as const satisfies ArgsDef

function usage(message: string, fix: string): FactoryError {
  return new FactoryError('usage', message, { fix })
}

function num(value: unknown, flag: string, min: number, max: number, int = true, example = int ? 1000 : 0.2): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (typeof value !== 'string' || !value.trim() || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
    throw usage(
      `--${flag} ${JSON.stringify(value)} is not ${int ? 'an integer' : 'a number'} from ${min} to ${max}`,
      `pass e.g. --${flag} ${example}`,
    )
  }
  return n
}

const admin = sandboxAdmin

const print = (value: unknown) => console.log(JSON.stringify(value, null, 2))

const serveArgs = {
  port: { type: 'string', description: 'Port to listen on (0 = any free port)', default: '0', valueHint: 'N' },
  host: { type: 'string', description: 'Address to bind', default: '127.0.0.1', valueHint: 'ADDR' },
  data: {
    type: 'string',
    description: 'JSON data file: loaded when it exists, rewritten after every change (default: in memory only)',
    valueHint: 'FILE',
  },
  seed: {
    type: 'string',
    description: 'Seed JSON used when there is no data file yet, or with --reseed (default: a built-in demo seed)',
    valueHint: 'FILE',
  },
  reseed: { type: 'boolean', description: 'Replace an existing data file with the seed' },
  json: { type: 'boolean', description: 'Print one JSON line {url, baseUrl, users} instead of text' },
  ...webhookArgs,
} as const satisfies ArgsDef

const serve = defineCommand({
  meta: { name: 'serve', description: "Run the sandbox until SIGINT/SIGTERM; prints its URL and the seeded users' API keys" },
  args: serveArgs,
  async run(ctx) {
    const port = num(ctx.args.port, 'port', 0, 65535, true, 4000)!
    let seed: unknown
    if (ctx.args.seed) {
      const path = resolve(ctx.args.seed)
      try {
        seed = JSON.parse(readFileSync(path, 'utf8'))
      } catch (err) {
        throw usage(
          `--seed ${path} is not a readable JSON file: ${err instanceof Error ? err.message : err}`,
          'pass a seed file like test/fixtures/sandbox-seed.json',
        )
      }
    }
    if (ctx.args.reseed && !ctx.args.seed) throw usage('--reseed needs --seed FILE', 'pass --seed FILE with --reseed')
    const dataPath = ctx.args.data ? resolve(ctx.args.data) : undefined
    let sandbox
    try {
      const webhook = webhookTarget(ctx.args)
      sandbox = await startSandbox({ port, host: ctx.args.host, dataPath, seed: seed as never, reseed: ctx.args.reseed, webhook })
    } catch (err) {
      if (err instanceof FactoryError) throw err
      const e = err as { name?: string; code?: string; message?: string }
      if (e.name === 'SandboxError') throw usage(e.message ?? String(err), 'fix the seed file')
      if (e.code === 'EADDRINUSE')
        throw usage(`--port ${port} is in use on ${ctx.args.host}`, 'pick another --port, or --port 0 for any free one')
      throw err
    }
    const users = sandbox.store.data.users.map((u) => ({ name: u.name, email: u.email, apiKey: u.apiKey, app: Boolean(u.app) }))
    if (ctx.args.json) {
      console.log(JSON.stringify({ url: sandbox.url, baseUrl: sandbox.baseUrl, dataPath: dataPath ?? null, source: sandbox.source, users }))
    } else {
      console.log(`Linear sandbox: ${sandbox.url}`)
      console.log(`admin API:      ${sandbox.baseUrl}/_sandbox/ (data, stats, faults, seed, comment, assign, move)`)
      const from =
        sandbox.source === 'file' ? `loaded from ${dataPath}` : sandbox.source === 'seed' ? 'seeded from --seed' : 'the built-in demo seed'
      console.log(
        `data:           ${dataPath ?? 'in memory (pass --data FILE to keep it)'}; ${from}${seed && sandbox.source === 'file' ? ' (--seed ignored: the data file exists; add --reseed to replace it)' : ''}`,
      )
      console.log('users (Authorization: <apiKey>):')
      for (const u of users) console.log(`  ${u.email.padEnd(28)} ${u.apiKey}  ${u.name}${u.app ? ' (app user)' : ''}`)
      const hook = sandbox.webhooks.current()
      console.log(`webhooks:       ${hook ? `AgentSessionEvent -> ${hook.url}` : 'off (pass --webhook-url URL --webhook-secret S)'}`)
      console.log('Ctrl-C stops it.')
    }
    await new Promise<void>((done) => {
      const stop = (signal: string) => {
        process.off('SIGINT', onInt)
        process.off('SIGTERM', onTerm)
        if (!ctx.args.json) console.log(`${signal}: stopping the sandbox`)
        void sandbox.stop().then(done)
      }
      const onInt = () => stop('SIGINT')
      const onTerm = () => stop('SIGTERM')
      process.on('SIGINT', onInt)
      process.on('SIGTERM', onTerm)
    })
  },
})

const seedArgs = {
  ...urlArg,
  file: { type: 'string', description: 'Seed JSON file (replaces all data)', valueHint: 'FILE', required: true },
} as const satisfies ArgsDef
const seedCmd = defineCommand({
  meta: { name: 'seed', description: "Replace a running sandbox's data with a seed file" },
  args: seedArgs,
  async run(ctx) {
    const path = resolve(ctx.args.file)
    let seed: unknown
    try {
      seed = JSON.parse(readFileSync(path, 'utf8'))
    } catch (err) {
      throw usage(`--file ${path} is not a readable JSON file: ${err instanceof Error ? err.message : err}`, 'pass a seed JSON file')
    }
    print(await admin(ctx.args.url, 'POST', 'seed', seed))
  },
})

const commentArgs = {
  ...urlArg,
  issue: { type: 'string', description: 'Issue identifier or id', valueHint: 'ENG-1', required: true },
  user: { type: 'string', description: "Author's email (a seeded user)", valueHint: 'EMAIL', required: true },
  body: { type: 'string', description: 'Comment text (Markdown)', valueHint: 'TEXT', required: true },
} as const satisfies ArgsDef
const comment = defineCommand({
  meta: { name: 'comment', description: "Comment on an issue as a user (does not bump the issue's updatedAt, like Linear)" },
  args: commentArgs,
  async run(ctx) {
    print(
      await admin(ctx.args.url, 'POST', 'comment', {
        issue: ctx.args.issue,
        user: ctx.args.user,
        body: ctx.args.body,
      }),
    )
  },
})

const assignArgs = {
  ...urlArg,
  issue: { type: 'string', description: 'Issue identifier or id', valueHint: 'ENG-1', required: true },
  assignee: { type: 'string', description: 'Assignee email, or none to unassign', valueHint: 'EMAIL|none' },
  delegate: { type: 'string', description: 'Delegate email, or none to clear (left as is when omitted)', valueHint: 'EMAIL|none' },
} as const satisfies ArgsDef
const assign = defineCommand({
  meta: { name: 'assign', description: "Set an issue's assignee and/or delegate" },
  args: assignArgs,
  async run(ctx) {
    const issue = ctx.args.issue
    if (ctx.args.assignee === undefined && ctx.args.delegate === undefined)
      throw usage('give --assignee and/or --delegate', 'pass --assignee agent@sandbox.local (or none)')
    const who = (v: string | undefined) => (v === undefined ? undefined : v === 'none' ? null : v)
    print(await admin(ctx.args.url, 'POST', 'assign', { issue, assignee: who(ctx.args.assignee), delegate: who(ctx.args.delegate) }))
  },
})

const moveArgs = {
  ...urlArg,
  issue: { type: 'string', description: 'Issue identifier or id', valueHint: 'ENG-1', required: true },
  state: { type: 'string', description: "Workflow state name of the issue's team", valueHint: 'NAME', required: true },
} as const satisfies ArgsDef
const move = defineCommand({
  meta: { name: 'move', description: 'Move an issue to a workflow state by name' },
  args: moveArgs,
  async run(ctx) {
    print(
      await admin(ctx.args.url, 'POST', 'move', {
        issue: ctx.args.issue,
        state: ctx.args.state,
      }),
    )
  },
})

const statsArgs = {
  ...urlArg,
  json: { type: 'boolean', description: 'Print the stats as JSON' },
  reset: { type: 'boolean', description: 'Reset the counters after printing them' },
} as const satisfies ArgsDef
const stats = defineCommand({
  meta: { name: 'stats', description: 'Requests, operations, complexity and faults seen by /graphql' },
  args: statsArgs,
  async run(ctx) {
    const s = await admin(ctx.args.url, 'POST', 'stats', { reset: Boolean(ctx.args.reset) })
    if (ctx.args.json) return print(s)
    console.log(
      `requests ${s.requests} (queries ${s.queries}, mutations ${s.mutations}); faults injected ${s.faultsInjected}; refused while rate limited ${s.requestsDuringRateLimit}`,
    )
    console.log(`complexity: last ${s.complexity.last}, max ${s.complexity.max}, total ${s.complexity.total}`)
    for (const [name, n] of Object.entries(s.byOperation as Record<string, number>)) console.log(`  ${name.padEnd(28)} ${n}`)
  },
})

const faultArgs = {
  ...urlArg,
  rate: { type: 'string', description: 'Probability 0..1 that a /graphql request fails', valueHint: 'P' },
  kinds: { type: 'string', description: 'Comma list of ratelimited, 5xx, timeout (default ratelimited,5xx)', valueHint: 'LIST' },
  'reset-ms': { type: 'string', description: 'ratelimited: refuse every request for this long (default 1000)', valueHint: 'MS' },
  'latency-ms': { type: 'string', description: 'Delay every /graphql response', valueHint: 'MS' },
  'hang-ms': { type: 'string', description: 'timeout: hold the request this long, then drop it (default 30000)', valueHint: 'MS' },
  'fail-next': { type: 'string', description: 'The next N requests fail (kinds round-robin)', valueHint: 'N' },
  seed: { type: 'string', description: 'PRNG seed for --rate (repeatable runs)', valueHint: 'N' },
  off: { type: 'boolean', description: 'Turn all faults off (and end a rate-limit window)' },
} as const satisfies ArgsDef
const faults = defineCommand({
  meta: { name: 'faults', description: 'Show, set (replacing the previous setting) or turn off fault injection on /graphql' },
  args: faultArgs,
  async run(ctx) {
    const a = ctx.args
    const given = ['rate', 'kinds', 'reset-ms', 'latency-ms', 'hang-ms', 'fail-next', 'seed'].filter((k) => a[k] !== undefined)
    if (a.off && given.length)
      throw usage('--off cannot be combined with other fault options', 'use --off alone, or set the new faults without it')
    if (!a.off && !given.length) return print(await admin(a.url, 'GET', 'faults'))
    const kinds = a.kinds
      ?.split(',')
      .map((k) => k.trim())
      .filter(Boolean)
    for (const k of kinds ?? [])
      if (!['ratelimited', '5xx', 'timeout'].includes(k))
        throw usage(`--kinds: unknown kind ${JSON.stringify(k)}`, 'use a comma list of ratelimited, 5xx, timeout')
    const body = a.off
      ? { off: true }
      : {
          rate: num(a.rate, 'rate', 0, 1, false),
          kinds,
          resetMs: num(a['reset-ms'], 'reset-ms', 0, 86_400_000),
          latencyMs: num(a['latency-ms'], 'latency-ms', 0, 600_000),
          hangMs: num(a['hang-ms'], 'hang-ms', 0, 600_000),
          failNext: num(a['fail-next'], 'fail-next', 0, 1_000_000),
          seed: num(a.seed, 'seed', 0, 2 ** 32 - 1),
        }
    print(await admin(a.url, 'POST', 'faults', body))
  },
})

const command = defineCommand({
  meta: {
    name: 'sandbox',
    description: "A local Linear-compatible GraphQL API (a subset of Linear's schema) for tests, the demo and offline runs",
  },
  subCommands: { serve, seed: seedCmd, comment, assign, move, stats, faults, ...agentCommands },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
