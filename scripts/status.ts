#!/usr/bin/env bun
/** status: what runs, what waits, what failed, per agent (table, or --json). */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, runCli, printJson } from '../lib/cli.ts'
import { factoryHome } from '../lib/config.ts'
import { layout } from '../lib/paths.ts'
import { readState } from '../lib/state.ts'
import { agentHealth, statusRows, renderStatus } from '../lib/status.ts'

const command = defineCommand({
  meta: {
    name: 'status',
    description:
      'Show per agent what runs, what is queued, what failed and what is done (from $FACTORY_HOME/state.json, poll/<agent>.json and the locks).',
  },
  args: {
    config: {
      type: 'string',
      description: 'agents.yaml path, accepted like every script; status reads $FACTORY_HOME (state.json, poll/, locks/), not the config',
    },
    agent: { type: 'string', description: 'only this agent' },
    json: { type: 'boolean', description: 'print the same as JSON', default: false },
    all: { type: 'boolean', description: 'include done issues', default: false },
  },
  async run({ args, data }) {
    const home = factoryHome((data as CliSession | undefined)?.env)
    const state = readState(layout(home).state)
    const rows = statusRows(state, home, { agent: args.agent, includeDone: args.all })
    if (args.json)
      printJson({
        home,
        agents: Object.fromEntries(Object.entries(agentHealth(state, home)).filter(([n]) => !args.agent || n === args.agent)),
        issues: rows,
      })
    else process.stdout.write(renderStatus(rows, state, home))
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
