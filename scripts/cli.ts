#!/usr/bin/env bun
/**
 * rose-factory <verb>: every script as a subcommand (lib/verbs.ts), imported only when that verb
 * runs (in the packed bundle, dist/cli.js, each verb is its own chunk).
 */
import { type CommandDef, defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { enterWithoutSecrets } from '../lib/secret-channel.ts'
import { wantsListing } from '../lib/toplevel.ts'
import { rootCommand, rootMeta } from '../lib/verbs.ts'

export default rootCommand

/** Each verb's name and description, put in by lib/bundle.ts when it bundles (undefined when run from source). */
declare const ROSE_VERB_META: Record<string, { name: string; description?: string }> | undefined
const builtMeta = typeof ROSE_VERB_META === 'undefined' ? undefined : ROSE_VERB_META

/**
 * The verb listing from the bundle's meta, so `--help` imports no verb (from source, rendering the
 * listing imports every verb for its description); any other words run the root command.
 */
const command: CommandDef<any> =
  builtMeta && wantsListing(process.argv.slice(2))
    ? defineCommand({ meta: rootMeta, subCommands: Object.fromEntries(Object.entries(builtMeta).map(([name, m]) => [name, { meta: m }])) })
    : rootCommand

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
