/**
 * Logs through consola with a tag per script. Every message passes through the redactor, so a
 * token that ends up in an error message (a URL, a git stderr line) is never printed.
 */
import { createConsola, type ConsolaInstance } from 'consola'
import { redact, secretValues } from './secrets.ts'

let secrets: string[] | null = null
const extraNames = new Set<string>()

/** Secret values currently in the environment: the deny-list plus the registered names (cached). */
function currentSecrets(): string[] {
  secrets ??= secretValues(process.env, [...extraNames])
  return secrets
}

/** Also redact the values of these env variables (an agent's own token_env names, which the deny-list cannot know). */
export function redactEnvNames(names: readonly string[]): void {
  for (const n of names) extraNames.add(n)
  secrets = null
}

/** Redact every known secret value from a string. */
export function scrub(text: string): string {
  return redact(text, currentSecrets())
}

/** A logger tagged with the script's name; everything it prints is redacted. Logs go to stderr. */
export function logger(tag: string): ConsolaInstance {
  const level = process.env.ROSE_LOG_LEVEL ? Number(process.env.ROSE_LOG_LEVEL) : process.env.DEBUG ? 4 : 3
  const base = createConsola({ level, stdout: process.stderr, stderr: process.stderr })
  base.setReporters([
    {
      log(obj) {
        const msg = obj.args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(' ')
        const time = new Date(obj.date).toISOString().slice(11, 19)
        process.stderr.write(
          `${time} [${obj.tag || tag}] ${obj.type === 'log' || obj.type === 'info' ? '' : `${obj.type}: `}${scrub(msg)}\n`,
        )
      },
    },
  ])
  return base.withTag(tag)
}
