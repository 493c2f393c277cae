/**
 * A runtime provider: what a run's engine needs besides the worktree (a database, a preview
 * environment, a service on a port). `prepare` runs before the engine of every run, `teardown`
 * once when the issue closes. Providers get only what is declared here (never the context, the
 * tracker or the engine): a new one is one file plus one line in registry.ts.
 */
import type { z } from '../zod.ts'

/** A link a provider made for a run (a preview URL, a dashboard), shown in the summary comment. */
export interface RuntimeUrl {
  label: string
  url: string
}

/** What `prepare` is told about the run. */
export interface PrepareInput {
  issueKey: string
  worktree: string
  branch: string
  runNumber: number
  /** The minimal env for anything the provider spawns: the basics plus RUN_* variables, never a secret. */
  env: Record<string, string>
  /** Aborted on the caller's timeout or the run's stop: stop what was started. */
  signal: AbortSignal
}

/** What `prepare` gives the run: variables for the engine and links for the summary. */
export interface Prepared {
  env: Record<string, string>
  urls: RuntimeUrl[]
}

/** What `teardown` is told about the closed issue. */
export interface TeardownInput {
  issueKey: string
  worktree: string
  branch: string
  /** The issue's last run. */
  runNumber: number
  env: Record<string, string>
  signal: AbortSignal
}

export interface RuntimeProvider {
  readonly name: string
  /** How long prepare and teardown may take each; the caller enforces it (lib/runtime/index.ts). */
  readonly timeoutMs: number
  prepare(run: PrepareInput): Promise<Prepared>
  teardown(issue: TeardownInput): Promise<void>
}

/** The runtime part of agents.yaml as providers see it (each provider's schema checks its own keys). */
export type RuntimeConfig = { provider: string } & Record<string, unknown>

/** One provider in the registry: its agents.yaml schema (a strict object with `provider: z.literal(name)`) and its constructor. */
export interface ProviderEntry<C extends RuntimeConfig = RuntimeConfig> {
  name: string
  schema: z.ZodType<C>
  create(config: C): RuntimeProvider
}
