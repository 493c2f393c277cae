/**
 * What every step needs for one agent, built once per process: config, paths, the tracker and
 * the injectable side effects (deps) with their real defaults, so tests swap them without mocks.
 */
import type { ConsolaInstance } from 'consola'
import { type AgentConfig, agentSecretEnvs, type FactoryConfig, factoryHome, githubApiUrl, linearApiUrl } from './config.ts'
import { logger, logToFile, type Redactor, redactorFor } from './log.ts'
import { ensureHome, layout, safeJoin } from './paths.ts'
import { fileRateGate } from './ratelimit.ts'
import { processEnv } from './secret-channel.ts'
import { createLinearTracker } from './tracker/linear.ts'
import { createRelayTracker } from './tracker/relay.ts'
import type { Tracker } from './tracker/types.ts'

export interface AgentContext {
  config: FactoryConfig
  configPath: string
  agent: AgentConfig
  home: string
  paths: ReturnType<typeof layout>
  tracker: Tracker
  /** The env steps read, secrets included (in memory; from the secret channel, see processEnv). Never spawn a process with it as is. */
  env: NodeJS.ProcessEnv
  /** Hides the secrets of this process in any text: the deny-listed values and every agent's token_env values. */
  redact: Redactor
  /** Tagged with the script; prints through `redact`. */
  log: ConsolaInstance
  dryRun: boolean
  githubApi: string
  now: () => Date
  /** Waits (retry waits, polls); resolves early when `signal` aborts. Tests pass a fake. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>
}

export interface ContextOptions {
  config: FactoryConfig
  configPath: string
  agent: AgentConfig
  env?: NodeJS.ProcessEnv
  dryRun?: boolean
  tag?: string
  tracker?: Tracker
  /** agent_session: the Linear workspace the relay should act in (unset: the relay's only install). */
  orgId?: string
  now?: () => Date
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** The real sleep: a timer that an abort ends early. */
export function realSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true })
  })
}

/**
 * Build the context for one agent (the tracker talks to LINEAR_API_URL with the agent's key). The
 * default env is this process's clean env plus the secrets of its channel (lib/secret-channel.ts):
 * tokens live in this object, never in the process's environ.
 */
export function agentContext(opts: ContextOptions): AgentContext {
  const env = opts.env ?? processEnv()
  const home = ensureHome(factoryHome(env))
  // Every agent's token_env of the config: a line about one agent may quote another's token.
  const redact = redactorFor(env, opts.config.agents.flatMap(agentSecretEnvs))
  logToFile(
    home,
    opts.config.agents.map((a) => a.name),
  )
  const apiUrl = linearApiUrl(env)
  const githubApi = githubApiUrl(env)
  return {
    config: opts.config,
    configPath: opts.configPath,
    agent: opts.agent,
    home,
    paths: layout(home),
    tracker:
      opts.tracker ??
      (opts.agent.tracker.mode === 'agent_session'
        ? // Linear through the relay's pass-through: the worker holds only the relay's worker token.
          createRelayTracker({
            relayUrl: opts.agent.tracker.relay_url!,
            token: env[opts.agent.tracker.token_env]!,
            orgId: opts.orgId ?? '',
            sleep: opts.sleep ?? realSleep,
            gate: fileRateGate(`${safeJoin(layout(home).home, 'ratelimit', opts.agent.name)}.json`),
          })
        : createLinearTracker({
            apiKey: env[opts.agent.tracker.token_env]!,
            apiUrl,
            // One view of the rate limit for every process of this agent (driver and runs).
            sleep: opts.sleep ?? realSleep,
            gate: fileRateGate(`${safeJoin(layout(home).home, 'ratelimit', opts.agent.name)}.json`),
          })),
    env,
    redact,
    log: logger(opts.tag ?? opts.agent.name, redact, { agent: opts.agent.name }),
    dryRun: opts.dryRun ?? false,
    githubApi,
    now: opts.now ?? (() => new Date()),
    sleep: opts.sleep ?? realSleep,
  }
}
