/**
 * The rose-factory command: its verbs (each script's module, imported only when that verb runs)
 * and the root command over them. Apart from scripts/cli.ts so that a verb (completion) and the
 * build (lib/bundle.ts) can read the tree while cli.ts is still running as the entry.
 */
import { type CommandDef, defineCommand } from 'citty'
import pkg from '../package.json' with { type: 'json' }
import { FactoryError } from './errors.ts'
import { writeFd } from './stdio.ts'

/** Each verb's module. Literal import paths, so `bun build` can split each verb into its own chunk. */
export const verbs: Record<string, () => Promise<{ default: CommandDef<any> }>> = {
  start: () => import('../scripts/start.ts'),
  poll: () => import('../scripts/poll.ts'),
  claim: () => import('../scripts/claim.ts'),
  worktree: () => import('../scripts/worktree.ts'),
  'run-engine': () => import('../scripts/run-engine.ts'),
  report: () => import('../scripts/report.ts'),
  run: () => import('../scripts/run.ts'),
  status: () => import('../scripts/status.ts'),
  doctor: () => import('../scripts/doctor.ts'),
  retry: () => import('../scripts/retry.ts'),
  cancel: () => import('../scripts/cancel.ts'),
  config: () => import('../scripts/config.ts'),
  sandbox: () => import('../scripts/sandbox.ts'),
  demo: () => import('../scripts/demo.ts'),
  relay: () => import('../scripts/relay.ts'),
  'relay-requeue': () => import('../scripts/relay-requeue.ts'),
  'install-daemon': () => import('../scripts/install-daemon.ts'),
  'uninstall-daemon': () => import('../scripts/uninstall-daemon.ts'),
  completion: () => import('../scripts/completion.ts'),
  help: () => import('../scripts/help.ts'),
  version: () => import('../scripts/version.ts'),
}

/** The package's version (package.json is the one place it is written). */
export const version: string = pkg.version

/** The root command's meta. */
export const rootMeta = { name: 'rose-factory', version: pkg.version, description: pkg.description }

/** The root command: every verb as a lazily loaded subcommand; alone it answers --version / -v. */
export const rootCommand = defineCommand({
  meta: rootMeta,
  args: { version: { type: 'boolean', alias: 'v', description: 'print the version', default: false } },
  subCommands: Object.fromEntries(Object.entries(verbs).map(([name, load]) => [name, () => load().then((m) => m.default)])),
  run({ args }) {
    if (!args.version)
      throw new FactoryError('usage', 'no command specified', { fix: `use one of: ${Object.keys(verbs).join(', ')} (see --help)` })
    writeFd(1, `${version}\n`)
  },
})
