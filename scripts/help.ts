#!/usr/bin/env bun
/** help: `help <verb>` prints that verb's help, as `<verb> --help` does; `help` alone lists the verbs. */
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { helpArgs } from '../lib/toplevel.ts'

const command = defineCommand({
  meta: { name: 'help', description: "Print a verb's help: `rose-factory help start` (alone: every verb)." },
  args: { verb: { type: 'positional', description: 'the verb (and subcommand) to explain', valueHint: 'VERB', required: false } },
  async run({ args }) {
    const { rootCommand, verbs } = await import('../lib/verbs.ts')
    const words = args._.map(String)
    if (words[0] && !Object.hasOwn(verbs, words[0]))
      throw new FactoryError('usage', `unknown verb ${words[0]}`, { fix: `use one of: ${Object.keys(verbs).join(', ')}` })
    return (await runCli(rootCommand, helpArgs(words))).code
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
