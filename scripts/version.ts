#!/usr/bin/env bun
/** version: print the package version (also `rose-factory --version` and `-v`). */
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { writeFd } from '../lib/stdio.ts'
import { version } from '../lib/verbs.ts'

const command = defineCommand({
  meta: { name: 'version', description: 'Print the version of rose-factory (also --version, -v).' },
  run() {
    writeFd(1, `${version}\n`)
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
