#!/usr/bin/env bun
/**
 * rose-factory <verb>: every script as a subcommand, imported only when that verb runs (in the
 * packed bundle, dist/cli.js, each verb is its own chunk). `--version`, `help <verb>` and the verb
 * listing are answered before any verb is loaded (lib/toplevel.ts).
 */
import { type CommandDef, defineCommand } from 'citty'
import pkg from '../package.json' with { type: 'json' }
import { isEntry, runCli } from '../lib/cli.ts'
import { enterWithoutSecrets } from '../lib/secret-channel.ts'
import { topLevel } from '../lib/toplevel.ts'

/** Each verb's module. Literal import paths, so `bun build` can split each verb into its own chunk. */
export const verbs: Record<string, () => Promise<{ default: CommandDef<any> }>> = {
  start: () => import('./start.ts'),
  poll: () => import('./poll.ts'),
  claim: () => import('./claim.ts'),
  worktree: () => import('./worktree.ts'),
  'run-engine': () => import('./run-engine.ts'),
  report: () => import('./report.ts'),
  run: () => import('./run.ts'),
  status: () => import('./status.ts'),
  config: () => import('./config.ts'),
  sandbox: () => import('./sandbox.ts'),
  demo: () => import('./demo.ts'),
  'install-daemon': () => import('./install-daemon.ts'),
  'uninstall-daemon': () => import('./uninstall-daemon.ts'),
  completion: () => import('./completion.ts'),
}

const meta = { name: 'rose-factory', version: pkg.version, description: pkg.description }

const command = defineCommand({
  meta,
  subCommands: Object.fromEntries(Object.entries(verbs).map(([name, load]) => [name, () => load().then((m) => m.default)])),
})

export default command

/** Each verb's name and description, put in by scripts/build.ts when it bundles (undefined when run from source). */
declare const ROSE_VERB_META: Record<string, { name: string; description?: string }> | undefined
const builtMeta = typeof ROSE_VERB_META === 'undefined' ? undefined : ROSE_VERB_META

/** The command for the verb listing: from the bundle's meta when there is one, so `--help` imports no verb. */
const listing: CommandDef<any> = builtMeta
  ? defineCommand({ meta, subCommands: Object.fromEntries(Object.entries(builtMeta).map(([name, m]) => [name, { meta: m }])) })
  : command

if (isEntry(import.meta.url)) {
  const top = topLevel(process.argv.slice(2), Object.keys(verbs))
  if (top.kind === 'version') {
    process.stdout.write(`${pkg.version}\n`)
    process.exit(0)
  }
  if (top.kind === 'list') process.exit((await runCli(listing, ['--help'])).code)
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets(top.args)
  process.exit((await runCli(command, top.args)).code)
}
