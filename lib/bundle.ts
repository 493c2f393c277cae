/**
 * The packed CLI: scripts/cli.ts bundled for Bun into dist/ (what `npm pack` ships, built by its
 * prepack script), each verb its own chunk so a verb loads only its own modules. Chunks sit
 * directly in dist/, one level under the package root like lib/ and scripts/, so the paths the
 * code builds from import.meta.url (`../scripts/run.ts`, `../bin/rose-factory.js`) hold in both.
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { CommandDef } from 'citty'

export interface BundleResult {
  outdir: string
  files: { path: string; bytes: number }[]
}

/** Each verb's name and description, read from the verbs themselves (for a `--help` that imports none of them). */
export async function verbMeta(verbs: Record<string, () => Promise<{ default: CommandDef<any> }>>) {
  const meta: Record<string, { name: string; description?: string }> = {}
  for (const [name, load] of Object.entries(verbs)) {
    const cmd = (await load()).default
    const m = await (typeof cmd.meta === 'function' ? cmd.meta() : cmd.meta)
    meta[name] = { name, description: m?.description }
  }
  return meta
}

/** Bundle `<root>/scripts/cli.ts` into `outdir` (emptied first); throws with Bun's messages when the build fails. */
export async function bundleCli(root: string, outdir: string): Promise<BundleResult> {
  const { verbs } = await import('./verbs.ts')
  const meta = await verbMeta(verbs)
  rmSync(outdir, { recursive: true, force: true })
  const res = await Bun.build({
    entrypoints: [join(root, 'scripts', 'cli.ts')],
    outdir,
    target: 'bun',
    splitting: true,
    minify: true,
    define: { ROSE_VERB_META: JSON.stringify(meta) },
    // Imported only when SENTRY_DSN is set (lib/sentry.ts): resolved from the installed package's node_modules at that moment.
    external: ['@sentry/bun'],
  })
  if (!res.success) throw new AggregateError(res.logs, `bun build failed: ${res.logs.map((l) => String(l)).join('\n')}`)
  return { outdir, files: res.outputs.map((o) => ({ path: o.path, bytes: o.size })) }
}
