#!/usr/bin/env bun
/** rose-factory <verb>: every script as a subcommand, imported lazily. */
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { enterWithoutSecrets } from '../lib/secret-channel.ts'

const load = (name: string) => () => import(`./${name}.ts`).then((m) => m.default)

const command = defineCommand({
  meta: {
    name: 'rose-factory',
    version: '0.1.0',
    description: 'Runs Linear tickets through coding agents: worktree, engine run, PR, In Review, one summary comment.',
  },
  subCommands: {
    start: load('start'),
    poll: load('poll'),
    claim: load('claim'),
    worktree: load('worktree'),
    'run-engine': load('run-engine'),
    report: load('report'),
    run: load('run'),
    status: load('status'),
    config: load('config'),
    sandbox: load('sandbox'),
    doctor: load('doctor'),
  },
})

export default command

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
