/**
 * The relay's own settings: flags plus the secrets it reads from the environment (env first, then
 * GCP Secret Manager with --gcp-project: scripts/relay.ts fills RELAY_SECRETS before this runs).
 * All missing variables are reported at once.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import { join } from 'node:path'
import { FactoryError } from '../errors.ts'

/** Every secret the relay reads: the env var of that name, else the Secret Manager secret of that name. */
export const RELAY_SECRETS = [
  'LINEAR_WEBHOOK_SECRET',
  'FACTORY_RELAY_WORKER_TOKEN',
  'LINEAR_CLIENT_SECRET',
  'RELAY_ENCRYPTION_KEY',
] as const
/** Those the relay runs without (the Linear app side is off, or the key comes from elsewhere). */
export const RELAY_OPTIONAL_SECRETS: readonly string[] = ['LINEAR_CLIENT_SECRET', 'RELAY_ENCRYPTION_KEY']

export interface RelaySettings {
  port: number
  host: string
  /** `sqlite:<path>` or a postgres:// URL. */
  queue: { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string }
  webhookSecret: string
  workerTokens: string[]
}

/** Resolve flags + env into settings, or throw config_invalid naming every missing variable. */
export function relaySettings(
  flags: { port?: string; host?: string; localQueue?: string | boolean; queueUrl?: string },
  env: NodeJS.ProcessEnv,
  home: string,
): RelaySettings {
  const missing = ['LINEAR_WEBHOOK_SECRET', 'FACTORY_RELAY_WORKER_TOKEN'].filter((name) => !env[name]?.trim())
  if (missing.length > 0)
    throw new FactoryError('config_invalid', `the relay needs ${missing.join(' and ')} in its environment`, {
      fix: 'set LINEAR_WEBHOOK_SECRET (the Linear app webhook signing secret) and FACTORY_RELAY_WORKER_TOKEN (comma-separated bearer tokens of the workers), or name the GCP project whose Secret Manager holds them (--gcp-project / GCP_PROJECT)',
    })
  const portText = flags.port ?? env.PORT ?? '8787'
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new FactoryError('usage', `--port ${portText} is not a port number`, { fix: 'pass --port between 0 and 65535' })
  const queue = queueSetting(flags, env, home)
  const workerTokens = env
    .FACTORY_RELAY_WORKER_TOKEN!.split(',')
    .map((t) => t.trim())
    .filter(Boolean)
  return { port, host: flags.host ?? '127.0.0.1', queue, webhookSecret: env.LINEAR_WEBHOOK_SECRET!, workerTokens }
}

/** The queue store the flags (or RELAY_DATABASE_URL) name: SQLite by default, PostgreSQL by URL. */
export function queueSetting(
  flags: { localQueue?: string | boolean; queueUrl?: string },
  env: NodeJS.ProcessEnv,
  home: string,
): RelaySettings['queue'] {
  const url = flags.queueUrl ?? env.RELAY_DATABASE_URL
  if (url && flags.localQueue !== undefined && flags.localQueue !== false)
    throw new FactoryError('usage', '--local-queue and --queue-url (or RELAY_DATABASE_URL) both given', { fix: 'pick one store' })
  if (url) {
    if (!/^postgres(ql)?:\/\//.test(url))
      throw new FactoryError('usage', `queue URL ${redactUrl(url)} is not a postgres:// URL`, {
        fix: 'pass --queue-url postgres://user@host:5432/db',
      })
    return { kind: 'postgres', url }
  }
  const path = typeof flags.localQueue === 'string' && flags.localQueue !== '' ? flags.localQueue : join(home, 'relay', 'queue.db')
  return { kind: 'sqlite', path }
}

/** True when the request's bearer token is one of `tokens` (constant time per candidate). */
export function bearerOk(header: string | null, tokens: readonly string[]): boolean {
  const match = header?.match(/^Bearer\s+(.+)$/i)
  if (!match) return false
  const given = createHash('sha256').update(match[1]!.trim()).digest()
  let ok = false
  for (const token of tokens) if (timingSafeEqual(given, createHash('sha256').update(token).digest())) ok = true
  return ok
}

/** A database URL with its password masked, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
}
