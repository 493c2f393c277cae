/**
 * Logs through one consola instance for the whole process, tagged per script (`withTag`). Every
 * message passes through the redactor of the logger that printed it (an agent's context carries
 * its own, with that agent's token values), so a token that ends up in an error message (a URL, a
 * git stderr line) is never printed nor written. No redaction state lives in this module.
 *
 * Each line goes to stderr and, once a FACTORY_HOME is known (logToFile), to
 * `$FACTORY_HOME/logs/factory.log`: one line per event with its agent and issue keys where known,
 * capped at ROSE_LOG_MAX_BYTES (default 10 MiB) and rotated to factory.log.1 .. .3. The format is
 * text, or JSON lines with `--log-format json` / ROSE_LOG_FORMAT=json (stderr and the file alike).
 */
import { appendFileSync, chmodSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
// consola/core: the logger without consola's own reporters (ours replaces them), a fifth of the import cost.
import { createConsola, type ConsolaInstance, type InputLogObject, type LogObject } from 'consola/core'
import { printable } from './printable.ts'
import { writeFd } from './stdio.ts'
import { PUBLIC_ENV_NAMES, redact, secretValues } from './secrets.ts'

/** Hides secret values in a text. */
export type Redactor = (text: string) => string

/** The redactor for `env`: the deny-listed variables' values plus those of `names` (an agent's token_env). */
export function redactorFor(env: NodeJS.ProcessEnv, names: readonly string[] = []): Redactor {
  const values = secretValues(env, names).filter((v) => !PUBLIC_ENV_NAMES.some((n) => env[n] === v))
  return (text) => redact(text, values)
}

export const LOG_FORMATS = ['text', 'json'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/** Rotated copies kept beside factory.log. */
const ROTATIONS = 3
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024

let root: ConsolaInstance | undefined
/** The factory log of this process (logToFile), and the agent names a message may start with. */
let sink: { path: string; agents: readonly string[] } | undefined

/** Also write every line to `$FACTORY_HOME/logs/factory.log` of `home` (undefined: stop); `agents` name the lines' agents. */
export function logToFile(home: string | undefined, agents: readonly string[] = []): void {
  sink = home ? { path: join(home, 'logs', 'factory.log'), agents: [...new Set([...(sink?.agents ?? []), ...agents])] } : undefined
}

/** The format in force: ROSE_LOG_FORMAT (set by `--log-format`, inherited by the run children), else text. */
function format(): LogFormat {
  return process.env.ROSE_LOG_FORMAT === 'json' ? 'json' : 'text'
}

interface LogEvent {
  time: string
  level: string
  tag: string
  agent?: string
  issue?: string
  msg: string
}

/** The agent and issue a message is about: its logger's fields, else the `agent: KEY ...` / `KEY: ...` it starts with. */
function subject(msg: string, obj: LogObject): { agent?: string; issue?: string } {
  let agent = typeof obj.agent === 'string' ? obj.agent : undefined
  let rest = msg
  const named = sink?.agents.find((a) => msg.startsWith(`${a}: `))
  if (named) {
    agent ??= named
    rest = msg.slice(named.length + 2)
  }
  const issue = typeof obj.issue === 'string' ? obj.issue : /^([A-Z][A-Z0-9]*-\d+)\b/.exec(rest)?.[1]
  return { agent, issue }
}

function event(obj: LogObject, hide: Redactor): LogEvent {
  const text = obj.args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(' ')
  const msg = hide(text)
  return { time: new Date(obj.date).toISOString(), level: obj.type, tag: obj.tag, ...subject(msg, obj), msg }
}

function stderrLine(e: LogEvent): string {
  if (format() === 'json') return JSON.stringify(e)
  return printable(`${e.time.slice(11, 19)} [${e.tag}] ${e.level === 'log' || e.level === 'info' ? '' : `${e.level}: `}${e.msg}`, {
    keepNewlines: true,
  })
}

/** One line per event in the file: newlines escaped, agent and issue keys in front. */
function fileLine(e: LogEvent): string {
  if (format() === 'json') return JSON.stringify(e)
  const keys = `${e.agent ? ` agent=${e.agent}` : ''}${e.issue ? ` issue=${e.issue}` : ''}`
  return printable(`${e.time} ${e.level} [${e.tag}]${keys} ${e.msg}`)
}

/** Append to factory.log (0600 in a 0700 logs directory), rotating it first when full. Never throws: logging must not fail a run. */
function writeFile(path: string, line: string): void {
  try {
    const max = Number(process.env.ROSE_LOG_MAX_BYTES) > 0 ? Number(process.env.ROSE_LOG_MAX_BYTES) : DEFAULT_MAX_BYTES
    const size = statSync(path, { throwIfNoEntry: false })?.size
    if (size === undefined) {
      mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 })
      writeFileSync(path, '', { mode: 0o600, flag: 'a' })
      chmodSync(path, 0o600)
    } else if (size + line.length + 1 > max && size > 0) rotate(path)
    // Reopened for every line: after another process rotated the file, this one writes the new one.
    appendFileSync(path, `${line}\n`, { mode: 0o600 })
  } catch {}
}

/** factory.log -> .1 -> .2 -> .3 (the oldest dropped). A rotation already under way in another process is left to it. */
function rotate(path: string): void {
  const guard = `${path}.rotating`
  try {
    writeFileSync(guard, String(process.pid), { flag: 'wx' })
  } catch {
    // A guard left by a process killed mid-rotation is cleared after a minute.
    const age = Date.now() - (statSync(guard, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
    if (age > 60_000) rmSync(guard, { force: true })
    return
  }
  try {
    for (let i = ROTATIONS - 1; i >= 1; i--) {
      try {
        renameSync(`${path}.${i}`, `${path}.${i + 1}`)
      } catch {}
    }
    renameSync(path, `${path}.1`)
  } finally {
    rmSync(guard, { force: true })
  }
}

/** The process's one consola instance (created on first use); logs go to stderr and the factory log. */
function rootLogger(): ConsolaInstance {
  if (root) return root
  const level = process.env.ROSE_LOG_LEVEL ? Number(process.env.ROSE_LOG_LEVEL) : process.env.DEBUG ? 4 : 3
  // No stdout/stderr streams handed to consola: our reporter writes to fd 2 itself (lib/stdio.ts).
  root = createConsola({ level })
  root.setReporters([
    {
      log(obj) {
        const hide = typeof obj.redact === 'function' ? (obj.redact as Redactor) : (t: string) => t
        const e = event(obj, hide)
        writeFd(2, `${stderrLine(e)}\n`)
        if (sink) writeFile(sink.path, fileLine(e))
      },
    },
  ])
  return root
}

/**
 * The process logger tagged with the script's name; everything it prints goes through `redactor`
 * (default: the deny-listed values of this process's env). `fields` (agent, issue) are the keys
 * its lines carry in the factory log.
 */
export function logger(
  tag: string,
  redactor: Redactor = redactorFor(process.env),
  fields: { agent?: string; issue?: string } = {},
): ConsolaInstance {
  // The redactor and fields ride on every log object of this logger (consola passes custom default fields through).
  return rootLogger()
    .withTag(tag)
    .withDefaults({ redact: redactor, ...fields } as InputLogObject)
}
