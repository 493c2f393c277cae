#!/usr/bin/env bun
/** start: the loop. For each agent, tick = poll -> record -> dispatch a child run per issue. */
import { defineCommand } from 'citty'
import { type CliSession, commonArgs, isEntry, runCli, printJson } from '../lib/cli.ts'
import { agentSecretEnvs, loadConfig, selectAgents } from '../lib/config.ts'
import { createDriver, type TickReport } from '../lib/start.ts'
import { logger, redactorFor } from '../lib/log.ts'

const command = defineCommand({
  meta: {
    name: 'start',
    description: 'Run the factory: poll every agent, run each new or commented issue in its own child process. Ctrl-C stops cleanly.',
  },
  args: {
    ...commonArgs,
    agent: { type: 'string', description: 'only this agent (default: all agents in agents.yaml)' },
    once: {
      type: 'boolean',
      description: 'one tick (one poll per agent), wait for the runs it started, exit 0 if all succeeded else 1 (for cron)',
      default: false,
    },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? process.env
    const { config, path } = loadConfig(args.config, env)
    const agents = selectAgents(config, args.agent)
    const log = logger('start', redactorFor(env, config.agents.flatMap(agentSecretEnvs)))
    const dryRun = args['dry-run']
    const driver = createDriver({ config, configPath: path, agents, dryRun, env })
    if (args.once || dryRun) {
      const res = await driver.once()
      if (args.json)
        printJson({
          ok: res.ok,
          dryRun,
          ticks: res.reports.map((r) => ({
            agent: r.agent,
            ok: r.ok,
            error: r.error,
            started: r.started,
            dispatch: r.dispatch,
            items: r.plan?.items.map((i) => ({ identifier: i.issue.identifier, ...i.decision })),
          })),
          runs: res.outcomes,
        })
      else if (dryRun) {
        for (const r of res.reports) process.stdout.write(describeDryTick(r))
      } else
        log.info(
          `tick done: ${res.outcomes.length} run(s), ${res.outcomes.filter((o) => o.exitCode === 0).length} succeeded${res.reports.some((r) => !r.ok) ? '; a poll failed' : ''}`,
        )
      return res.ok ? 0 : 1
    }
    let stopping = false
    const stop = () => {
      if (stopping) return
      stopping = true
      log.info(`stopping: waiting for ${driver.running.size} run(s) to stop (Ctrl-C again is ignored; they get 15 s)`)
      void driver.stop()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    log.info(`running ${agents.map((a) => a.name).join(', ')}; polling every ${config.poll_interval_seconds} s (Ctrl-C to stop)`)
    await driver.loop()
    await driver.drain()
    log.info('stopped')
  },
})

/** What the real tick would do for one agent: the runs it starts, in order, and what waits. */
function describeDryTick(r: TickReport): string {
  const lines: string[] = []
  if (r.error) lines.push(`${r.agent}: poll failed: ${r.error.message}`)
  const d = r.dispatch
  const start = d?.start ?? []
  lines.push(
    `${r.agent}: ${r.plan?.items.length ?? 0} changed issue(s); would run ${start.length}${start.length ? `: ${start.join(', ')}` : ''} (dry run: nothing written)`,
  )
  for (const w of d?.waiting ?? []) lines.push(`${r.agent}: ${w.identifier} waiting: retry at ${w.nextRetryAt}`)
  if (d?.noSlot.length) lines.push(`${r.agent}: no free slot this tick (concurrency): ${d.noSlot.join(', ')}`)
  if (d?.held.length) lines.push(`${r.agent}: held by another live process: ${d.held.join(', ')}`)
  return lines.map((l) => `${l}\n`).join('')
}

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
