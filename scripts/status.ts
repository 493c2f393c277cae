#!/usr/bin/env bun
/** status: what runs, what waits, what failed, per agent (table, --json), one issue in full (--issue), or served over HTTP (--serve). */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, runCli, printJson } from '../lib/cli.ts'
import { factoryHome, loadConfig } from '../lib/config.ts'
import { locateIssue } from '../lib/controls.ts'
import { FactoryError } from '../lib/errors.ts'
import { issueDetail, renderIssueDetail } from '../lib/issue-detail.ts'
import { logger, logToFile } from '../lib/log.ts'
import { layout } from '../lib/paths.ts'
import { type FactoryState, readState } from '../lib/state.ts'
import { agentHealth, statusRows, renderStatus } from '../lib/status.ts'
import { parsePort, serveUntilSignal, startStatusServer } from '../lib/status-server.ts'
import type { AgentFacts } from '../lib/status-view.ts'

const command = defineCommand({
  meta: {
    name: 'status',
    description:
      'Show per agent what runs, what is queued, what failed and what is done (from $FACTORY_HOME/state.json, poll/<agent>.json and the locks); --issue shows one issue in full; --serve serves the status page and its JSON API for a loop this process does not own.',
  },
  args: {
    config: {
      type: 'string',
      description: 'agents.yaml path, accepted like every script; status reads $FACTORY_HOME (state.json, poll/, locks/), not the config',
    },
    agent: { type: 'string', description: 'only this agent' },
    issue: {
      type: 'string',
      description: 'one issue in full: phase, runs, transcript paths, PR, worktree, last error and fix',
      valueHint: 'ENG-12',
    },
    json: { type: 'boolean', description: 'print the same as JSON', default: false },
    all: { type: 'boolean', description: 'include done issues', default: false },
    serve: {
      type: 'string',
      description: 'serve the status page and /api/v1 on this port until Ctrl-C (0: any free port)',
      valueHint: 'PORT',
    },
    host: {
      type: 'string',
      description: 'with --serve: bind to this address (default 127.0.0.1); any other than loopback needs ROSE_STATUS_TOKEN',
    },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? process.env
    const home = factoryHome(env)
    const state = readState(layout(home).state)
    const configured = configuredAgents(args.config, env)
    if (args.serve !== undefined) {
      logToFile(home, Object.keys(configured))
      const server = await startStatusServer({
        home,
        port: parsePort(args.serve, '--serve'),
        host: args.host,
        token: env.ROSE_STATUS_TOKEN,
        agents: configured,
      })
      logger('status').info(`serving ${server.url} for ${home} (watching: this process owns no loop; Ctrl-C stops)`)
      await serveUntilSignal(server)
      return
    }
    if (args.host) throw new FactoryError('usage', '--host is only for --serve', { fix: 'add --serve PORT, or drop --host' })
    const names = [...new Set([...Object.keys(agentHealth(state, home)), ...Object.keys(configured)])].sort()
    if (args.agent && !names.includes(args.agent))
      throw new FactoryError('usage', `unknown agent "${args.agent}"`, {
        fix: `use one of: ${names.join(', ') || '(none on record and no agents.yaml)'}`,
      })
    if (args.issue) return showIssue(home, state, args.issue, args.agent, names, args.json)
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

function showIssue(home: string, state: FactoryState, key: string, agent: string | undefined, names: string[], json: boolean): void {
  const found = locateIssue(state, key, agent, names)
  const detail = issueDetail(home, found.agent, found.record)
  if (json) printJson(detail)
  else process.stdout.write(renderIssueDetail(detail))
}

/** Each agent's engine and tracker mode from agents.yaml when it loads (status works without it: state.json is enough). */
function configuredAgents(explicit: string | undefined, env: NodeJS.ProcessEnv): AgentFacts {
  try {
    return Object.fromEntries(loadConfig(explicit, env).config.agents.map((a) => [a.name, { engine: a.engine, mode: a.tracker.mode }]))
  } catch (err) {
    if (explicit) throw err
    return {}
  }
}

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
