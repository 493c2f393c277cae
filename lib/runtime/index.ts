/**
 * The runtime around a run: prepare before the engine (its env and links for the run), teardown
 * when the issue closes. This file is the caller the providers' contract names: it builds their
 * minimal env, enforces their timeout, and turns any failure into a value with a code.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type AgentConfig, agentSecretEnvs } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { engineEnv } from '../engines/env.ts'
import { asFactoryError, FactoryError } from '../errors.ts'
import { isDeniedEnv } from '../secrets.ts'
import type { IssueRecord } from '../state.ts'
import { followWorktreeLink } from '../tamper.ts'
import { providerFor } from './registry.ts'
import type { Prepared, ProviderEntry } from './types.ts'

export type { Prepared, ProviderEntry, RuntimeProvider, RuntimeUrl } from './types.ts'

/** How long a provider stopped on its timeout gets to stop what it started and say what it saw. */
const STOP_GRACE_MS = 5_000

type Ctx = Pick<AgentContext, 'agent' | 'config' | 'env' | 'log'>

/** The env a provider's processes get: the basics (PATH, HOME, locale...) of the factory's env and the RUN_* variables; never a secret. */
export function runtimeEnv(
  ctx: Pick<AgentContext, 'config' | 'env'>,
  run: { issueKey: string; branch: string; worktree: string; runNumber: number },
): Record<string, string> {
  return {
    ...engineEnv('console', ctx.env, ctx.config.agents.flatMap(agentSecretEnvs)),
    RUN_ISSUE_KEY: run.issueKey,
    RUN_BRANCH: run.branch,
    RUN_WORKTREE: run.worktree,
    RUN_NUMBER: String(run.runNumber),
  }
}

/** `runtime.prepare` quoted for a fix, when the provider has such a script. */
function scriptOf(agent: AgentConfig, key: 'prepare' | 'teardown'): string {
  const script = (agent.runtime as Record<string, unknown>)[key]
  return typeof script === 'string' ? ` (\`${script}\`)` : ''
}

/**
 * Run `work` with a signal aborted after `timeoutMs` (0: no limit) or when `parent` aborts. On the
 * timeout, the provider gets a short grace to stop; `expired` builds the error from what it said.
 */
async function withDeadline<T>(
  timeoutMs: number,
  parent: AbortSignal | undefined,
  work: (signal: AbortSignal) => Promise<T>,
  expired: (detail: string | undefined) => FactoryError,
): Promise<T> {
  const own = new AbortController()
  const signal = parent ? AbortSignal.any([parent, own.signal]) : own.signal
  const pending = work(signal)
  pending.catch(() => {}) // settled after a timeout: nobody awaits it any more
  if (!timeoutMs) return pending
  let timer: ReturnType<typeof setTimeout> | undefined
  const timedOut = new Promise<{ timeout: true }>((resolve) => (timer = setTimeout(() => resolve({ timeout: true }), timeoutMs)))
  try {
    const first = await Promise.race([pending.then((value) => ({ value })), timedOut])
    if ('value' in first) return first.value
  } finally {
    clearTimeout(timer)
  }
  own.abort()
  let grace: ReturnType<typeof setTimeout> | undefined
  const detail = await Promise.race([
    pending.then(
      () => undefined,
      (err: unknown) => asFactoryError(err).message,
    ),
    new Promise<undefined>((resolve) => (grace = setTimeout(() => resolve(undefined), STOP_GRACE_MS))),
  ])
  clearTimeout(grace)
  throw expired(detail)
}

/**
 * Prepare the agent's runtime for one run (before its engine). A failure or timeout is a
 * runtime_prepare_failed FactoryError (the run step fails, the engine does not start). The env
 * returned holds only names the engine may get: a secret's name is dropped, and logged.
 */
export async function prepareRuntime(
  ctx: Ctx,
  run: { issueKey: string; worktree: string; branch: string; runNumber: number; signal?: AbortSignal },
  registry?: readonly ProviderEntry[],
): Promise<Prepared> {
  const provider = providerFor(ctx.agent.runtime, registry)
  if (provider.name === 'none') return { env: {}, urls: [] }
  const env = runtimeEnv(ctx, run)
  const seconds = provider.timeoutMs / 1000
  let prepared: Prepared
  try {
    prepared = await withDeadline(
      provider.timeoutMs,
      run.signal,
      (signal) => provider.prepare({ ...run, env, signal }),
      (detail) =>
        new FactoryError(
          'runtime_prepare_failed',
          `runtime.prepare (provider ${provider.name}) timed out after ${seconds} s${detail ? `: ${detail}` : ''}`,
          {
            fix: `make runtime.prepare${scriptOf(ctx.agent, 'prepare')} finish sooner, or raise runtime.timeout_seconds (${seconds}) of agent ${ctx.agent.name}`,
          },
        ),
    )
  } catch (err) {
    const e = asFactoryError(err)
    if (e.code === 'runtime_prepare_failed') throw e
    throw new FactoryError('runtime_prepare_failed', `runtime.prepare (provider ${provider.name}) failed: ${e.message}`, {
      fix: `check runtime${scriptOf(ctx.agent, 'prepare')} of agent ${ctx.agent.name} in agents.yaml`,
      cause: err,
    })
  }
  const secrets = new Set(ctx.config.agents.flatMap(agentSecretEnvs).map((n) => n.toUpperCase()))
  const refused = Object.keys(prepared.env).filter((k) => isDeniedEnv(k) || secrets.has(k.toUpperCase()))
  if (refused.length)
    ctx.log.warn(`${run.issueKey}: runtime.prepare set ${refused.join(', ')}: secret names never reach an engine; dropped`)
  const kept = Object.fromEntries(Object.entries(prepared.env).filter(([k]) => !refused.includes(k)))
  ctx.log.info(
    `${run.issueKey}: runtime ${provider.name} prepared: ${Object.keys(kept).length} variable(s)${prepared.urls.length ? `, ${prepared.urls.map((u) => u.url).join(' ')}` : ''}`,
  )
  return { env: kept, urls: prepared.urls }
}

/** The branch checked out in a worktree, read from its admin dir without running git (empty when unknown). */
function branchOf(worktree: string): string {
  const link = followWorktreeLink(worktree)
  if (!('adminDir' in link)) return ''
  const head = existsSync(join(link.adminDir, 'HEAD')) ? readFileSync(join(link.adminDir, 'HEAD'), 'utf8').trim() : ''
  return head.startsWith('ref: refs/heads/') ? head.slice('ref: refs/heads/'.length) : ''
}

/** Tear down a closed issue's runtime (before its worktree goes). Never throws: a failure or timeout is logged and cleanup goes on. */
export async function teardownRuntime(ctx: Ctx, record: IssueRecord, registry?: readonly ProviderEntry[]): Promise<void> {
  try {
    const provider = providerFor(ctx.agent.runtime, registry)
    if (provider.name === 'none') return
    const worktree = record.worktree ?? ''
    const run = {
      issueKey: record.identifier,
      worktree,
      branch: record.branch ?? branchOf(worktree),
      runNumber: record.runs.at(-1)?.n ?? 0,
    }
    const env = runtimeEnv(ctx, run)
    await withDeadline(
      provider.timeoutMs,
      undefined,
      (signal) => provider.teardown({ ...run, env, signal }),
      (detail) =>
        new FactoryError('runtime_teardown_failed', `timed out after ${provider.timeoutMs / 1000} s${detail ? `: ${detail}` : ''}`),
    )
    ctx.log.info(`${record.identifier}: runtime ${provider.name} torn down`)
  } catch (err) {
    ctx.log.warn(`${record.identifier}: runtime teardown failed (the worktree is removed anyway): ${asFactoryError(err).message}`)
  }
}
