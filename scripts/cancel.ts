#!/usr/bin/env bun
/** cancel: stop an issue's run and release it; nothing runs it again until a human comments on it or retries it. */
import { userInfo } from 'node:os'
import { defineCommand } from 'citty'
import { type CliSession, isEntry, issueArg, printJson, runCli } from '../lib/cli.ts'
import { factoryHome } from '../lib/config.ts'
import { logToFile } from '../lib/log.ts'
import { cancelIssue, RESUME_HINT } from '../lib/controls.ts'

const command = defineCommand({
  meta: {
    name: 'cancel',
    description:
      'Cancel a queued or running issue: its run stops its engine (SIGTERM after 10 s if it does not), the worktree is kept, and the issue is held until a human comments on it in Linear or runs rose-factory retry.',
  },
  args: {
    ...issueArg,
    agent: { type: 'string', description: 'the agent (default: the one agent that has the issue on record)' },
    json: { type: 'boolean', description: 'print the result as JSON', default: false },
  },
  async run({ args, data }) {
    const home = factoryHome((data as CliSession | undefined)?.env)
    logToFile(home)
    const res = await cancelIssue(home, args.issue, { agent: args.agent, by: `${userInfo().username} (rose-factory cancel)` })
    if (args.json)
      return printJson({ agent: res.agent, identifier: res.identifier, before: res.before, phase: res.record.phase, run: res.run })
    process.stdout.write(
      `${res.identifier} (${res.agent}): ${res.before} -> cancelled; ${res.run}.\nNothing runs it again until ${RESUME_HINT} ${res.identifier}.\n`,
    )
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
