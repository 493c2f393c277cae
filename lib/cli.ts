/**
 * Runs a citty command in-process and turns the outcome into an exit code, without exiting:
 * --help prints truthful usage (0), bad usage (an unknown flag, a missing required arg, an unknown
 * subcommand) is 2, a FactoryError prints `code: message` and `fix:` and gives its exit code (2 for
 * config/usage, 1 otherwise), a command's own number result is its code. Nothing in lib/ exits:
 * only each script's entry line (`if (isEntry(import.meta.url)) ...`) ends the process with that code.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type ArgsDef, type CommandDef, parseArgs, renderUsage, runCommand } from 'citty'
import type { AgentContext } from './context.ts'
import { FactoryError, asFactoryError } from './errors.ts'
import { LOG_FORMATS, type LogFormat, type Redactor, redactorFor } from './log.ts'
import { processEnv } from './secret-channel.ts'
import { configureSentry, flushSentry, reportToSentry } from './sentry.ts'
import { isTerminal, writeFd } from './stdio.ts'

/** Flags every step script shares. */
export const commonArgs = {
  config: { type: 'string', description: 'agents.yaml path (default $FACTORY_HOME/agents.yaml)' },
  agent: { type: 'string', description: 'agent name from agents.yaml' },
  json: { type: 'boolean', description: 'print machine-readable JSON', default: false },
  'dry-run': { type: 'boolean', description: 'print the plan; write nothing (no Linear mutation, no push, no state)', default: false },
} as const satisfies ArgsDef

/** `--issue`, required by every step on one issue (citty refuses a command without it: exit 2). */
export const issueArg = {
  issue: { type: 'string', description: 'issue id or identifier', valueHint: 'ENG-12', required: true },
} as const satisfies ArgsDef

/**
 * What one runCli call hands its command as citty's `data`: the env commands read, and the
 * redactor its failure is printed through (contextFromArgs replaces it with the agent context's
 * own, which knows that agent's token values).
 */
export interface CliSession {
  env: NodeJS.ProcessEnv
  redact: Redactor
}

export interface CliIo {
  /** Where --help goes (default stdout). */
  out: (text: string) => void
  /** Where usage errors and failures go (default stderr). */
  err: (text: string) => void
  /** The env commands see through the session (default processEnv(): process.env plus the secrets of its channel). */
  env: NodeJS.ProcessEnv
  /** Colours in --help (default: useColor on stdout, a terminal, and env). */
  color: boolean
}

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

type AnyCommand = CommandDef<any>

async function resolve<T>(value: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value
}

/** The subcommand named in `rawArgs` (recursively), its own args, and its parent. */
async function resolveLeaf(cmd: AnyCommand, rawArgs: string[]): Promise<{ leaf: AnyCommand; args: string[]; parent?: AnyCommand }> {
  const subs = await resolve(cmd.subCommands)
  if (subs) {
    const idx = rawArgs.findIndex((a) => !a.startsWith('-'))
    const name = idx >= 0 ? rawArgs[idx] : undefined
    if (name && Object.hasOwn(subs, name)) {
      const found = await resolveLeaf((await resolve(subs[name])) as AnyCommand, rawArgs.slice(idx + 1))
      return { ...found, parent: found.parent ?? cmd }
    }
  }
  return { leaf: cmd, args: rawArgs }
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

const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '')

/** Colours only on a terminal, never with NO_COLOR (any non-empty value) or TERM=dumb. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return !!stream.isTTY && !env.NO_COLOR && env.TERM !== 'dumb'
}

/** Positional arguments beyond those the command declares (before `--`): `start extra` must not start the loop. */
function extraPositionals(args: ArgsDef, rawArgs: string[]): string[] {
  const takesValue = (flag: string) => {
    const name = flag.replace(/^--?/, '')
    const def = Object.entries(args).find(([n, d]) => n === name || [(d as { alias?: string | string[] }).alias].flat().includes(name))?.[1]
    return (def as { type?: string } | undefined)?.type === 'string' || (def as { type?: string } | undefined)?.type === 'enum'
  }
  const positional: string[] = []
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!
    if (a === '--') break
    if (a.startsWith('-') && !/^-\d/.test(a)) {
      if (!a.includes('=') && takesValue(a)) i++
      continue
    }
    positional.push(a)
  }
  const declared = Object.values(args).filter((d) => (d as { type?: string }).type === 'positional').length
  return positional.slice(declared)
}

/** citty's own parse errors (CLIError: EARG for a missing required arg, E_UNKNOWN_COMMAND, ...) as usage FactoryErrors. */
async function usageError(err: Error & { code?: string }, leaf: AnyCommand, args: ArgsDef): Promise<FactoryError> {
  const message = stripAnsi(err.message)
  const missing = /^Missing required argument: --(\S+)/.exec(message)?.[1]
  if (err.code === 'EARG' && missing) {
    const def = args[missing] as { description?: string; valueHint?: string } | undefined
    return new FactoryError('usage', `missing --${missing}`, {
      fix: `pass --${missing} ${def?.valueHint ?? 'VALUE'}${def?.description ? ` (${def.description})` : ''}; see --help`,
    })
  }
  const subs = await resolve(leaf.subCommands)
  const fix = subs ? `use one of: ${Object.keys(subs).join(', ')} (see --help)` : 'see --help'
  return new FactoryError('usage', message.replace(/^./, (c) => c.toLowerCase()).replace(/\.$/, ''), { fix })
}

/** A required string flag given without a value (`--issue` at the end, `--issue=`). */
function emptyRequired(args: ArgsDef, rawArgs: string[]): string | undefined {
  const parsed = parseArgs(rawArgs, args) as Record<string, unknown>
  return Object.entries(args).find(
    ([name, def]) => (def as { required?: boolean }).required && def.type === 'string' && parsed[name] === '',
  )?.[0]
}

/**
 * Run `cmd` on `rawArgs` in this process and return the exit code (nothing here exits). The
 * subcommand named in rawArgs is resolved first and run directly (parents' setup/cleanup hooks
 * are not used by any script).
 */
export async function runCli(
  cmd: AnyCommand,
  rawArgs: string[] = process.argv.slice(2),
  io: Partial<CliIo> = {},
): Promise<{ code: number }> {
  const out = io.out ?? ((t: string) => writeFd(1, t))
  const err = io.err ?? ((t: string) => writeFd(2, t))
  const env = io.env ?? processEnv()
  const session: CliSession = { env, redact: redactorFor(env) }
  // A test hands its own env: only a script's real entry reports uncaught exceptions.
  configureSentry({ env, redact: (t) => session.redact(t), entry: !io.env })
  let leaf: AnyCommand = cmd
  let args: ArgsDef = {}
  try {
    rawArgs = takeLogFormat(rawArgs, env)
    const found = await resolveLeaf(cmd, rawArgs)
    leaf = found.leaf
    configureSentry({ context: { verb: (await resolve(leaf.meta))?.name } })
    const dashDash = rawArgs.indexOf('--')
    const flags = dashDash >= 0 ? rawArgs.slice(0, dashDash) : rawArgs
    if (flags.includes('--help') || flags.includes('-h')) {
      const usage = await renderUsage(leaf, found.parent)
      out(`${(io.color ?? useColor({ isTTY: isTerminal(1) }, env)) ? usage : stripAnsi(usage)}\n`)
      return { code: 0 }
    }
    args = (await resolve(leaf.args)) ?? {}
    const bad = unknownFlags(args, found.args)
    if (bad.length)
      throw new FactoryError('usage', `unknown option${bad.length > 1 ? 's' : ''} ${bad.join(', ')}`, {
        fix: 'see --help for the options this command takes',
      })
    const extra = (await resolve(leaf.subCommands)) ? [] : extraPositionals(args, found.args)
    if (extra.length)
      throw new FactoryError(
        'usage',
        `unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((a) => JSON.stringify(a)).join(', ')}`,
        {
          fix: 'this command takes options only (see --help); quote a value that contains spaces',
        },
      )
    const empty = emptyRequired(args, found.args)
    if (empty)
      throw new FactoryError('usage', `missing --${empty} (given without a value)`, {
        fix: `pass a value: --${empty} ${(args[empty] as { valueHint?: string }).valueHint ?? 'VALUE'}`,
      })
    const { result } = await runCommand(leaf, { rawArgs: found.args, data: session })
    return { code: typeof result === 'number' ? result : 0 }
  } catch (thrown) {
    const e =
      (thrown as Error)?.name === 'CLIError' ? await usageError(thrown as Error & { code?: string }, leaf, args) : asFactoryError(thrown)
    // With --log-format json the failure is a JSON line too (stderr stays JSON lines throughout).
    const json = env.ROSE_LOG_FORMAT === 'json' && { time: new Date().toISOString(), level: 'error', tag: 'cli', ...e.toJSON() }
    err(`${session.redact(json ? JSON.stringify(json) : e.describe())}\n`)
    if (e.code === 'internal' && env.DEBUG) err(`${session.redact(String((thrown as Error)?.stack))}\n`)
    if (e.code === 'internal') void reportToSentry(thrown)
    return { code: e.exitCode }
  } finally {
    await flushSentry()
  }
}

/**
 * The global `--log-format text|json` (any verb): taken out of the args and put in ROSE_LOG_FORMAT
 * of this process and of `env` (the run children inherit it). Anything else is a usage error.
 */
function takeLogFormat(rawArgs: string[], env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!
    if (a === '--') return [...out, ...rawArgs.slice(i)]
    if (a !== '--log-format' && !a.startsWith('--log-format=')) {
      out.push(a)
      continue
    }
    const value = a === '--log-format' ? rawArgs[++i] : a.slice('--log-format='.length)
    if (!LOG_FORMATS.includes(value as LogFormat))
      throw new FactoryError('usage', `--log-format ${value ?? '(missing)'} is not a log format`, {
        fix: `use --log-format ${LOG_FORMATS.join('|')}`,
      })
    process.env.ROSE_LOG_FORMAT = env.ROSE_LOG_FORMAT = value
  }
  return out
}

/** Require a flag's value or fail with a usage error naming it (for checks citty cannot express). */
export function need(value: string | undefined, flag: string, hint: string): string {
  if (!value) throw new FactoryError('usage', `missing --${flag}`, { fix: hint })
  return value
}

/** Print data as JSON (one document) on stdout. */
export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`)
}

/**
 * Load the config and build the context of the agent named by --agent (optional when the config
 * has one agent; else required, and the fix lists the config's agents). With the runCli session
 * (citty's `data`) it uses the session's env, and failures print through the agent's redactor.
 */
export async function contextFromArgs(
  args: { config?: string; agent?: string; 'dry-run'?: boolean },
  tag: string,
  session?: CliSession,
): Promise<AgentContext> {
  const env = session?.env ?? processEnv()
  // Imported here, not at the top: the config schema and the tracker are not needed for --help or a usage error.
  const [{ loadConfig, pickAgent, requireEnv }, { agentContext }] = await Promise.all([import('./config.ts'), import('./context.ts')])
  // Only this agent's token must be set: another agent's missing key is no reason to refuse this one.
  const { config, path } = loadConfig(args.config, env, { requireEnv: false })
  const only = config.agents.length === 1 ? config.agents[0]!.name : undefined
  const name = args.agent ?? only ?? need(args.agent, 'agent', `name the agent: --agent ${config.agents.map((a) => a.name).join('|')}`)
  const agent = pickAgent(config, name)
  configureSentry({ gcpProject: config.secrets?.gcp_project, context: { agent: agent.name } })
  if (config.secrets?.gcp_project) {
    // Into the in-memory env only (never process.env): children get the values on their secret channel.
    const [{ resolveSecrets }, { agentSecretEnvs }, { langfuseSecretNames }] = await Promise.all([
      import('./gcp-secrets.ts'),
      import('./config.ts'),
      import('./langfuse-settings.ts'),
    ])
    // The GitHub token is optional (the push may use the machine's credentials): absent is not an error; so are Langfuse's keys.
    const langfuse = langfuseSecretNames(env)
    await resolveSecrets([...agentSecretEnvs(agent), ...langfuse], env, config.secrets.gcp_project, {
      optional: [agent.github.token_env, ...langfuse],
    })
  }
  requireEnv(config, path, env, [agent])
  const ctx = agentContext({ config, configPath: path, agent, dryRun: !!args['dry-run'], tag, env })
  if (session) session.redact = ctx.redact
  return ctx
}
