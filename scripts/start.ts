#!/usr/bin/env bun
/** start: the loop. For each agent, tick = poll -> record -> dispatch a child run per issue. */
import { defineCommand } from 'citty'
import { type CliSession, commonArgs, isEntry, runCli, printJson } from '../lib/cli.ts'
import { agentSecretEnvs, factoryHome, loadConfig, selectAgents } from '../lib/config.ts'
import { acquireDriverLocks } from '../lib/driver-lock.ts'
import { FactoryError } from '../lib/errors.ts'
import { langfuseWarning } from '../lib/langfuse-settings.ts'
import { heartbeatMs } from '../lib/lock.ts'
import { admitAgents } from '../lib/preflight.ts'
import { createDriver, type TickReport } from '../lib/start.ts'
import { logger, logToFile, redactorFor } from '../lib/log.ts'
import { killTree } from '../lib/signal.ts'
import { enterWithoutSecrets, processEnv } from '../lib/secret-channel.ts'
import { configureSentry } from '../lib/sentry.ts'
import type { StatusServer } from '../lib/status-server.ts'

const command = defineCommand({
  meta: {
    name: 'start',
    description:
      'Run the factory: poll every agent, run each new or commented issue in its own child process. An agent whose engine or credentials are missing is refused at start (see doctor). Ctrl-C or SIGTERM stops cleanly (runs are queued again); a second one forces the exit (code 130). One start per agent per FACTORY_HOME.',
  },
  args: {
    ...commonArgs,
    agent: { type: 'string', description: 'only this agent (default: all agents in agents.yaml)' },
    once: {
      type: 'boolean',
      description: 'one tick (one poll per agent), wait for the runs it started, exit 0 if all succeeded else 1 (for cron)',
      default: false,
    },
    port: {
      type: 'string',
      description: 'serve the status page and its JSON API (/api/v1) on this port (0: any free port)',
      valueHint: 'PORT',
    },
    host: {
      type: 'string',
      description: 'with --port: bind to this address (default 127.0.0.1); any other than loopback needs ROSE_STATUS_TOKEN',
    },
  },
  async run({ args, data }) {
    const dryRun = args['dry-run']
    if (args.json && !args.once && !dryRun)
      throw new FactoryError('usage', '--json needs --once (or --dry-run): the loop has no single result to print', {
        fix: 'use start --once --json for one tick as JSON; while the loop runs, status --json shows what it does',
      })
    if (args.host && args.port === undefined)
      throw new FactoryError('usage', '--host is only for --port', { fix: 'add --port PORT, or drop --host' })
    const env = (data as CliSession | undefined)?.env ?? processEnv()
    // Imported only with --port (--host needs it, above): node:http and the page cost a cron tick ~15 ms.
    const statusServer = args.port === undefined ? undefined : await import('../lib/status-server.ts')
    const port = statusServer?.parsePort(args.port!, '--port')
    statusServer?.checkExposure(args.host ?? '127.0.0.1', env.ROSE_STATUS_TOKEN)
    // Token variables are checked per agent below: one agent's missing key does not stop the others.
    const { config, path } = loadConfig(args.config, env, { requireEnv: false })
    if (!dryRun)
      logToFile(
        factoryHome(env),
        config.agents.map((a) => a.name),
      )
    const gcpProject = config.secrets?.gcp_project
    configureSentry({ gcpProject })
    const gcpFailures: FactoryError[] = []
    if (gcpProject) {
      // Into the in-memory env only: the runs get these values on their secret channel, like any token.
      // The same list config check and doctor report (lib/secret-sources.ts): what they say is what runs get.
      const [{ resolveSecrets }, { planSecrets }] = await Promise.all([import('../lib/gcp-secrets.ts'), import('../lib/secret-sources.ts')])
      const needs = planSecrets(config, selectAgents(config, args.agent), env)
      const optional = needs.filter((n) => !n.required).map((n) => n.name)
      await resolveSecrets(
        needs.map((n) => n.name),
        env,
        gcpProject,
        { optional, onError: (e) => gcpFailures.push(e) },
      )
    }
    const log = logger('start', redactorFor(env, config.agents.flatMap(agentSecretEnvs)))
    for (const e of gcpFailures) log.error(`${e.message} (fix: ${e.fix})`)
    const langfuse = langfuseWarning(env)
    if (langfuse) log.warn(langfuse)
    const agents = admitAgents(selectAgents(config, args.agent), env, log)
    if (agents.length === 0) {
      log.error('no agent can run: fix the problems above (rose-factory doctor checks the whole set-up)')
      return 1
    }
    // One driver per agent per FACTORY_HOME (a dry run writes nothing, the lock included).
    const locks = dryRun
      ? undefined
      : acquireDriverLocks(
          factoryHome(env),
          agents.map((a) => a.name),
          heartbeatMs(env),
        )
    const driver = createDriver({ config, configPath: path, agents, dryRun, env })
    let server: StatusServer | undefined
    if (statusServer && port !== undefined) {
      const facts = Object.fromEntries(config.agents.map((a) => [a.name, { engine: a.engine, mode: a.tracker.mode }]))
      server = await statusServer.startStatusServer({
        home: factoryHome(env),
        port,
        host: args.host,
        token: env.ROSE_STATUS_TOKEN,
        agents: facts,
        loop: driver,
      })
      log.info(`status page and API on ${server.url}`)
    }
    // SIGTERM is a stop, like Ctrl-C (systemd sends it to the whole process group; the run
    // children coalesce theirs with the driver's): stop ticking, stop the runs, which queue
    // themselves again, exit 0. A second signal forces: kill every run and everything it
    // started now; the runs' locks say they were stopping, so the next start resumes them.
    let signals = 0
    const onSignal = (sig: NodeJS.Signals) => {
      signals++
      if (signals === 1) {
        log.info(
          `${sig}: stopping: waiting for ${driver.running.size} run(s) to stop and queue again (they get 15 s; ${sig === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again forces the exit)`,
        )
        void driver.stop()
      } else if (signals === 2) {
        log.warn(`${sig} again: forcing the exit (code 130): killing ${driver.running.size} run(s) now; the next start resumes them`)
        killTree(process.pid, { self: false })
        locks?.release()
        process.exit(130)
      }
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
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
          `tick done: ${res.outcomes.length} run(s), ${res.outcomes.filter((o) => o.exitCode === 0).length} succeeded${res.reports.some((r) => !r.ok) ? '; a poll or dispatch failed' : ''}`,
        )
      locks?.release()
      if (signals > 0) log.info('stopped')
      await server?.close()
      // Stopped by a signal: the runs it cut short are queued again, which is not a failure.
      return res.ok || signals > 0 ? 0 : 1
    }
    log.info(`running ${agents.map((a) => a.name).join(', ')}; polling every ${config.poll_interval_seconds} s (Ctrl-C to stop)`)
    await driver.loop()
    await driver.drain()
    await server?.close()
    locks?.release()
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

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
