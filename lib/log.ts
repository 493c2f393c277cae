/**
 * Logs through one consola instance for the whole process, tagged per script (`withTag`). Every
 * message passes through the redactor of the logger that printed it (an agent's context carries
 * its own, with that agent's token values), so a token that ends up in an error message (a URL, a
 * git stderr line) is never printed. No redaction state lives in this module.
 */
// consola/core: the logger without consola's own reporters (ours replaces them), a fifth of the import cost.
import { createConsola, type ConsolaInstance, type InputLogObject, type LogObject } from 'consola/core'
import { printable } from './printable.ts'
import { redact, secretValues } from './secrets.ts'

/** Hides secret values in a text. */
export type Redactor = (text: string) => string

/** Deny-listed (by prefix) variables whose values are not secret: endpoints an error message must be able to name. */
const PUBLIC_ENV_NAMES = ['LINEAR_API_URL']

/** The redactor for `env`: the deny-listed variables' values plus those of `names` (an agent's token_env). */
export function redactorFor(env: NodeJS.ProcessEnv, names: readonly string[] = []): Redactor {
  const values = secretValues(env, names).filter((v) => !PUBLIC_ENV_NAMES.some((n) => env[n] === v))
  return (text) => redact(text, values)
}

let root: ConsolaInstance | undefined

function format(obj: LogObject): string {
  const msg = obj.args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(' ')
  const time = new Date(obj.date).toISOString().slice(11, 19)
  return `${time} [${obj.tag}] ${obj.type === 'log' || obj.type === 'info' ? '' : `${obj.type}: `}${msg}`
}

/** The process's one consola instance (created on first use); logs go to stderr. */
function rootLogger(): ConsolaInstance {
  if (root) return root
  const level = process.env.ROSE_LOG_LEVEL ? Number(process.env.ROSE_LOG_LEVEL) : process.env.DEBUG ? 4 : 3
  root = createConsola({ level, stdout: process.stderr, stderr: process.stderr })
  root.setReporters([
    {
      log(obj) {
        const hide = typeof obj.redact === 'function' ? (obj.redact as Redactor) : (t: string) => t
        process.stderr.write(`${hide(printable(format(obj), { keepNewlines: true }))}\n`)
      },
    },
  ])
  return root
}

/**
 * The process logger tagged with the script's name; everything it prints goes through `redactor`
 * (default: the deny-listed values of this process's env). Logs go to stderr.
 */
export function logger(tag: string, redactor: Redactor = redactorFor(process.env)): ConsolaInstance {
  // The redactor rides on every log object of this logger (consola passes custom default fields through).
  return rootLogger()
    .withTag(tag)
    .withDefaults({ redact: redactor } as InputLogObject)
}
