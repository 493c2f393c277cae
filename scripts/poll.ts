#!/usr/bin/env bun
/** poll: print an agent's work items as JSON lines (one tracker read), and queue them in state.json. */
import { defineCommand } from 'citty'
import { commonArgs, contextFromArgs, isEntry, runCli } from '../lib/cli.ts'
import { pollAgent } from '../lib/steps/poll.ts'

const command = defineCommand({
  meta: {
    name: 'poll',
    description: "Read the agent's changed issues (one Linear request) and queue the ones to run. Prints one JSON line per issue.",
  },
  args: { ...commonArgs },
  async run({ args, data }) {
    const ctx = await contextFromArgs(args, 'poll', data)
    const plan = await pollAgent(ctx)
    for (const { issue, decision } of plan.items) {
      process.stdout.write(
        `${JSON.stringify({ agent: ctx.agent.name, id: issue.id, identifier: issue.identifier, title: issue.title, state: issue.state.name, priority: issue.priority, updatedAt: issue.updatedAt, ...decision })}\n`,
      )
    }
    ctx.log.info(
      `${plan.items.length} changed issue(s), ${plan.requests} request(s); cursor ${plan.cursorBefore ?? '(none)'} -> ${plan.cursorAfter ?? '(none)'}${ctx.dryRun ? ' (dry run: not recorded)' : ''}`,
    )
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
