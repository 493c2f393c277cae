#!/usr/bin/env bun
/** retry: un-escalate an escalated, failed or cancelled issue (a fresh budget of attempts) and queue it; the next tick runs it. */
import { userInfo } from 'node:os'
import { defineCommand } from 'citty'
import { type CliSession, isEntry, issueArg, printJson, runCli } from '../lib/cli.ts'
import { factoryHome } from '../lib/config.ts'
import { logToFile } from '../lib/log.ts'
import { retryIssue } from '../lib/controls.ts'

const command = defineCommand({
  meta: {
    name: 'retry',
    description:
      'Queue an escalated, failed or cancelled issue again with a fresh budget of attempts (or make a pending retry due now); the running loop takes it on its next tick. Nothing is posted on Linear.',
  },
  args: {
    ...issueArg,
    agent: { type: 'string', description: 'the agent (default: the one agent that has the issue on record)' },
    json: { type: 'boolean', description: 'print the result as JSON', default: false },
  },
  run({ args, data }) {
    const home = factoryHome((data as CliSession | undefined)?.env)
    logToFile(home)
    const res = retryIssue(home, args.issue, { agent: args.agent, by: `${userInfo().username} (rose-factory retry)` })
    if (args.json) return printJson({ agent: res.agent, identifier: res.identifier, before: res.before, phase: res.record.phase })
    process.stdout.write(
      `${res.identifier} (${res.agent}): ${res.before} -> queued; the loop's next tick runs it (POST /api/v1/refresh on its status server runs it now)\n`,
    )
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
