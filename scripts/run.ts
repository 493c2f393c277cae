#!/usr/bin/env bun
/** run: one issue through claim -> worktree -> run-engine -> report, holding its lock (the driver's child). */
import { defineCommand } from 'citty'
import { commonArgs, contextFromArgs, issueArg, isEntry, runCli, printJson } from '../lib/cli.ts'
import { killTree } from '../lib/signal.ts'
import { enterWithoutSecrets } from '../lib/secret-channel.ts'
import { runIssue } from '../lib/run.ts'

const command = defineCommand({
  meta: {
    name: 'run',
    description: 'Run one issue through every step (claim, worktree, engine, report). start runs this in a child process per issue.',
  },
  args: {
    // No --dry-run: run is the real thing (the single steps and start have dry runs).
    config: commonArgs.config,
    agent: commonArgs.agent,
    json: commonArgs.json,
    ...issueArg,
    'repo-root': { type: 'string', description: 'use this existing checkout instead of the base clone' },
    fetch: { type: 'boolean', description: 'fetch origin first (--no-fetch when the caller fetched this tick)', default: true },
    'only-queued': {
      type: 'boolean',
      description: 'run only if the issue is still queued once locked (how start calls it)',
      default: false,
    },
  },
  async run({ args, data }) {
    const ctx = await contextFromArgs(args, 'run', data)
    // A signal stops the run and queues it again. Every SIGTERM is the same request: systemd
    // signals the whole process group and the driver forwards its own, so one stop arrives twice
    // (Ctrl-C in a terminal: SIGINT from the terminal, SIGTERM from the driver). Only a second
    // Ctrl-C (SIGINT) forces: kill what the run started and exit at once; its lock says it was
    // stopping, so the next start resumes the run instead of counting a crash.
    const abort = new AbortController()
    let interrupts = 0
    const onSignal = (sig: NodeJS.Signals) => {
      if (sig === 'SIGINT') interrupts++
      if (!abort.signal.aborted) {
        ctx.log.info(`${sig}: stopping; the run will be queued again`)
        abort.abort()
      } else if (interrupts >= 2) {
        ctx.log.warn(`${sig} again: forced stop; the run resumes on the next start`)
        killTree(process.pid, { self: false })
        process.exit(130)
      } else ctx.log.debug(`${sig}: already stopping`)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const res = await runIssue(ctx, args.issue, {
      fetch: args.fetch,
      repoRoot: args['repo-root'],
      signal: abort.signal,
      onlyQueued: args['only-queued'],
    })
    if (args.json) printJson(res.ok ? res : { ...res, error: res.error.toJSON() })
    return res.ok ? 0 : res.error.exitCode
  },
})

export default command

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
