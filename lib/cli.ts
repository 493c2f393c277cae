/**
 * The one place a process exits. Scripts define citty commands; `main` runs one: --help prints
 * truthful usage (exit 0), bad usage exits 2, a FactoryError prints its code, message and fix and
 * exits with its code (2 for config/usage, 1 otherwise). Unknown flags are usage errors.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from 'citty'
import { loadConfig, pickAgent } from './config.ts'
import { type AgentContext, agentContext } from './context.ts'
import { FactoryError, asFactoryError } from './errors.ts'
import { scrub } from './log.ts'

/** Flags every step script shares. */
export const commonArgs = {
  config: { type: 'string', description: 'agents.yaml path (default $FACTORY_HOME/agents.yaml)' },
  agent: { type: 'string', description: 'agent name from agents.yaml' },
  json: { type: 'boolean', description: 'print machine-readable JSON', default: false },
  'dry-run': { type: 'boolean', description: 'print the plan; write nothing (no Linear mutation, no push, no state)', default: false },
} as const satisfies ArgsDef

/** True when `metaUrl` is the module node/bun was asked to run. */
export function isEntry(metaUrl: string): boolean {
  const argv1 = process.argv[1]
  if (!argv1) return false
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(metaUrl))
  } catch {
    return false
  }
}

async function resolveLeaf(cmd: CommandDef<any>, rawArgs: string[]): Promise<[CommandDef<any>, string[], CommandDef<any> | undefined]> {
  const subs = typeof cmd.subCommands === 'function' ? await cmd.subCommands() : await cmd.subCommands
  if (subs) {
    const idx = rawArgs.findIndex((a) => !a.startsWith('-'))
    const name = idx >= 0 ? rawArgs[idx] : undefined
    if (name && subs[name]) {
      const sub = subs[name]
      const resolved = (typeof sub === 'function' ? await (sub as () => Promise<any>)() : await sub) as CommandDef<any>
      const [leaf, rest, parent] = await resolveLeaf(resolved, rawArgs.slice(idx + 1))
      return [leaf, rest, parent ?? cmd]
    }
  }
  return [cmd, rawArgs, undefined]
}

function unknownFlags(args: ArgsDef, rawArgs: string[]): string[] {
  const known = new Set<string>(['help', 'h'])
  for (const [name, def] of Object.entries(args)) {
    known.add(name)
    known.add(name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()))
    const alias = (def as { alias?: string | string[] }).alias
    for (const a of Array.isArray(alias) ? alias : alias ? [alias] : []) known.add(a)
    if ((def as { type?: string }).type === 'boolean') known.add(`no-${name}`)
  }
  const bad: string[] = []
  for (const a of rawArgs) {
    if (a === '--') break
    if (!a.startsWith('-') || /^-\d/.test(a)) continue
    const name = a.replace(/^--?/, '').split('=')[0]!
    if (!known.has(name)) bad.push(a.split('=')[0]!)
  }
  return bad
}

/** Run a command as the process entry and exit with the right code. */
export async function main(cmd: CommandDef<any>, rawArgs = process.argv.slice(2)): Promise<never> {
  let code = 0
  const [leaf, leafArgs, parent] = await resolveLeaf(cmd, rawArgs)
  try {
    if (rawArgs.includes('--help') || rawArgs.includes('-h')) {
      process.stdout.write(`${await renderUsage(leaf, parent)}\n`)
      process.exit(0)
    }
    const args = typeof leaf.args === 'function' ? await leaf.args() : await leaf.args
    const bad = unknownFlags(args ?? {}, leafArgs)
    if (bad.length)
      throw new FactoryError('usage', `unknown option${bad.length > 1 ? 's' : ''} ${bad.join(', ')}`, {
        fix: 'see --help for the options this command takes',
      })
    await runCommand(cmd, { rawArgs })
    code = typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    const cliCode = (err as { code?: string })?.code
    if (cliCode?.startsWith?.('E_')) {
      process.stderr.write(`${await renderUsage(leaf, parent)}\n\nusage: ${(err as Error).message}\n`)
      code = 2
    } else {
      const e = asFactoryError(err)
      process.stderr.write(`${scrub(e.describe())}\n`)
      if (e.code === 'internal' && process.env.DEBUG) process.stderr.write(`${(err as Error).stack}\n`)
      code = e.exitCode
    }
  }
  process.exit(code)
}

/** Require a flag's value or fail with a usage error naming it. */
export function need(value: string | undefined, flag: string, hint: string): string {
  if (!value) throw new FactoryError('usage', `missing --${flag}`, { fix: hint })
  return value
}

/** Print data as JSON (one document) on stdout. */
export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`)
}

/** Load the config and build the context of the agent named by --agent (required). */
export async function contextFromArgs(args: { config?: string; agent?: string; 'dry-run'?: boolean }, tag: string): Promise<AgentContext> {
  const { config, path } = loadConfig(args.config)
  const name = need(args.agent, 'agent', `name the agent: --agent ${config.agents.map((a) => a.name).join('|')}`)
  return agentContext({ config, configPath: path, agent: pickAgent(config, name), dryRun: !!args['dry-run'], tag })
}
