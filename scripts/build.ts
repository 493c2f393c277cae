#!/usr/bin/env bun
/** build: bundle the CLI into dist/ for the package (`npm pack` runs it as prepack). */
import { relative, resolve } from 'node:path'
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { bundleCli } from '../lib/bundle.ts'

const ROOT = resolve(import.meta.dir, '..')

const command = defineCommand({
  meta: { name: 'build', description: 'Bundle scripts/cli.ts for Bun into dist/cli.js (one chunk per verb), as `npm pack` ships it.' },
  args: { outdir: { type: 'string', description: 'output directory', default: 'dist' } },
  async run({ args }) {
    const res = await bundleCli(ROOT, resolve(ROOT, args.outdir))
    const total = res.files.reduce((n, f) => n + f.bytes, 0)
    // Quiet as prepack: npm hands a script's output to its own stdout, which `npm pack --json` keeps JSON.
    if (!process.env.npm_lifecycle_event)
      process.stderr.write(
        `bundled ${res.files.length} files, ${(total / 1024).toFixed(0)} KB, into ${relative(process.cwd(), res.outdir) || '.'}\n`,
      )
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
