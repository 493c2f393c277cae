/**
 * Unexpected failures to Sentry (optional): a FactoryError with code `internal` (asFactoryError's
 * code for anything unknown thrown) and exceptions nothing caught. Only when SENTRY_DSN resolves
 * (the environment, else the GCP Secret Manager secret of that name when a project is configured):
 * without it nothing is sent and @sentry/bun is never imported. The SDK is imported on the first
 * report, not at start-up (it costs ~250 ms). Every string of an event passes through the
 * process's redactor (invariant "no-secrets-in-reach"); expected failures are never sent. A Sentry
 * failure costs one warning line, never the exit code or the output.
 */
import pkg from '../package.json' with { type: 'json' }
import { asFactoryError } from './errors.ts'
import { logger, type Redactor } from './log.ts'
import { writeFd } from './stdio.ts'

/** What a report knows about where it happened (sent as tags, with the error's code). */
export interface SentryContext {
  agent?: string
  issue?: string
  verb?: string
  tags?: Record<string, string>
}

interface Settings {
  env: NodeJS.ProcessEnv
  redact: Redactor
  gcpProject?: string
  context: SentryContext
}

type Sdk = typeof import('@sentry/bun')

/** Nothing the SDK could gather besides the error: no user, cookies, headers, bodies, query strings or frame variables. */
const COLLECT_NOTHING = {
  userInfo: false,
  cookies: false,
  httpHeaders: false,
  httpBodies: [],
  urlQueryParams: false,
  stackFrameVariables: false,
}

/** How long the exit waits for reports in flight, at most (the SDK's own shutdown default). */
export const FLUSH_MS = 2000

let settings: Settings = { env: {}, redact: (t) => t, context: {} }
let sdk: Promise<Sdk | undefined> | undefined
const pending = new Set<Promise<unknown>>()
let problem: string | undefined
let warned = false
let entry = false

/**
 * Where reports go and what they are tagged with, merged into what earlier calls set (runCli: the
 * env, the redactor and the verb; contextFromArgs: the agent and the GCP project). `entry` (the
 * process's own CLI entry, never a test calling runCli) reports uncaught exceptions too.
 */
export function configureSentry(part: Partial<Omit<Settings, 'context'>> & { context?: SentryContext; entry?: boolean }): void {
  const { entry: isEntry, context, ...rest } = part
  settings = { ...settings, ...rest, context: { ...settings.context, ...context } }
  entry ||= !!isEntry
  if (entry && (settings.env.SENTRY_DSN || settings.gcpProject)) catchUncaught()
}

/** A DSN's host and project (what the warning names: never its key), or undefined when it is not a DSN. */
export function dsnTarget(dsn: string): { host: string; project: string } | undefined {
  const url = URL.canParse(dsn) ? new URL(dsn) : undefined
  const project = url?.pathname.split('/').filter(Boolean).at(-1)
  return url && /^https?:$/.test(url.protocol) && url.username && project ? { host: url.host, project } : undefined
}

/** Every string in `value` (keys too) through `redact`: an event or a breadcrumb as it is about to leave. */
export function scrub<T>(value: T, redact: Redactor, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return redact(value) as T
  if (!value || typeof value !== 'object' || seen.has(value)) return value
  seen.add(value)
  if (Array.isArray(value)) return value.map((v) => scrub(v, redact, seen)) as T
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), scrub(v, redact, seen)])) as T
}

/**
 * Send `err` to Sentry when it is unexpected (code `internal` once asFactoryError read it) and a
 * DSN resolves; resolves to whether it was handed to the SDK. Never throws; the exit's
 * flushSentry waits for it.
 */
export function reportToSentry(err: unknown, context: SentryContext = {}, level: 'error' | 'fatal' = 'error'): Promise<boolean> {
  const code = asFactoryError(err).code
  if (code !== 'internal' || (!settings.env.SENTRY_DSN && !settings.gcpProject)) return Promise.resolve(false)
  const ctx = { ...settings.context, ...context }
  const task = (async () => {
    const Sentry = await (sdk ??= load())
    if (!Sentry) return false
    const tags = {
      code,
      ...ctx.tags,
      ...(ctx.agent && { agent: ctx.agent }),
      ...(ctx.issue && { issue: ctx.issue }),
      ...(ctx.verb && { verb: ctx.verb }),
    }
    Sentry.captureException(err, { level, tags })
    return true
  })().catch((e: unknown) => {
    problem ??= `could not report to Sentry: ${e instanceof Error ? e.message : String(e)}`
    return false
  })
  pending.add(task)
  void task.finally(() => pending.delete(task))
  return task
}

/**
 * Wait for the reports in flight, at most `timeoutMs` in all (nothing to do when none was made),
 * then warn once if any could not be delivered. The CLI entry calls it before the process exits.
 */
export async function flushSentry(timeoutMs = FLUSH_MS): Promise<void> {
  if (!pending.size && !sdk) return
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
  const drained = (async () => {
    await Promise.allSettled([...pending])
    const Sentry = await sdk
    return Sentry ? Sentry.flush(timeoutMs) : true
  })()
  const done = await Promise.race([drained, deadline]).catch(() => false)
  clearTimeout(timer)
  if (!done) problem ??= `not delivered within ${timeoutMs / 1000} s`
  if (problem && !warned) {
    warned = true
    logger('sentry', settings.redact).warn(`${problem}; the error report is lost (this process's outcome is unchanged)`)
  }
}

/** The DSN: the environment first, then Secret Manager (when a GCP project is configured). */
async function resolveDsn(): Promise<string | undefined> {
  const { env, gcpProject } = settings
  if (!env.SENTRY_DSN && gcpProject) {
    const { resolveSecrets } = await import('./gcp-secrets.ts')
    await resolveSecrets(['SENTRY_DSN'], env, gcpProject, {
      optional: ['SENTRY_DSN'],
      onError: (e) => (problem ??= `SENTRY_DSN: ${e.message}`),
    })
  }
  return env.SENTRY_DSN
}

/** Import and start the SDK for the resolved DSN: errors only (no tracing, sessions, client reports or auto-instrumentation). */
async function load(): Promise<Sdk | undefined> {
  const dsn = await resolveDsn()
  if (!dsn) return undefined
  const target = dsnTarget(dsn)
  if (!target) {
    problem ??= 'SENTRY_DSN is not a DSN (https://KEY@HOST/PROJECT)'
    return undefined
  }
  const Sentry = await import('@sentry/bun')
  Sentry.init({
    dsn,
    release: `rose-factory@${pkg.version}`,
    environment: settings.env.SENTRY_ENVIRONMENT,
    // No default integrations: they would instrument http, fetch, console and Bun.serve, and send sessions.
    defaultIntegrations: false,
    integrations: [
      Sentry.linkedErrorsIntegration(),
      Sentry.dedupeIntegration(),
      Sentry.contextLinesIntegration(),
      Sentry.nodeContextIntegration(),
    ],
    sendClientReports: false,
    dataCollection: COLLECT_NOTHING,
    // settings.redact read at each event: contextFromArgs may have swapped in the agent's redactor since.
    beforeSend: (event) => scrub(event, settings.redact),
    beforeBreadcrumb: (crumb) => scrub(crumb, settings.redact),
  })
  // A refused or failed delivery answers no status (the SDK swallows the error): noted for the exit's warning.
  Sentry.getClient()?.on('afterSendEvent', (_event, res) => {
    if (!res.statusCode || res.statusCode >= 400)
      problem ??= `Sentry at ${target.host} ${res.statusCode ? `answered HTTP ${res.statusCode}` : 'is unreachable'}`
  })
  return Sentry
}

/**
 * Uncaught exceptions and unhandled rejections: printed redacted (as runCli prints a failure) and
 * reported; the process then goes on as Bun lets it without a handler (a script's entry awaits
 * runCli at top level, and under a pending top-level await Bun 1.4 prints the error and carries
 * on), so the exit code is the same with or without SENTRY_DSN; runCli's flush sends the report.
 */
function catchUncaught(): void {
  if (process.listeners('uncaughtException').some((l) => l.name === 'sentryUncaught')) return
  const handler = (origin: string) =>
    function sentryUncaught(err: unknown) {
      writeFd(2, `${settings.redact(asFactoryError(err).describe())}\n`)
      void reportToSentry(err, { tags: { origin } }, 'fatal')
    }
  process.on('uncaughtException', handler('uncaughtException'))
  process.on('unhandledRejection', handler('unhandledRejection'))
}
