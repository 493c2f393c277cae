/**
 * Whether Langfuse tracing is on, read from the env. Tiny on purpose: every run reads it, and
 * lib/langfuse.ts (the trace, the sender) is imported only when this says on. LANGFUSE_HOST is the
 * switch and has no default (the factory writes no internet host of its own): with the keys but
 * no host nothing is sent and `start` says why. With secrets.gcp_project, a step or run process
 * looks the keys up in GCP Secret Manager only once the host is set (langfuseSecretNames);
 * `start` and `config check` ask for them whenever a project is configured (lib/secret-sources.ts).
 */

/** The secret variables of Langfuse (LANGFUSE_ is a deny-listed prefix: redacted, never given to engines). */
export const LANGFUSE_KEYS = ['LANGFUSE_PUBLIC_KEY', 'LANGFUSE_SECRET_KEY'] as const

/** Where traces go and the keys they are sent with. */
export interface LangfuseSettings {
  host: string
  publicKey: string
  secretKey: string
}

/** The settings when LANGFUSE_HOST and both keys are set; otherwise undefined (tracing off). */
export function langfuseSettings(env: NodeJS.ProcessEnv): LangfuseSettings | undefined {
  const host = env.LANGFUSE_HOST?.trim()
  if (!host || !env.LANGFUSE_PUBLIC_KEY || !env.LANGFUSE_SECRET_KEY) return undefined
  return { host, publicKey: env.LANGFUSE_PUBLIC_KEY, secretKey: env.LANGFUSE_SECRET_KEY }
}

/** The key names to resolve from GCP Secret Manager (optional ones): both once LANGFUSE_HOST is set, else none. */
export function langfuseSecretNames(env: NodeJS.ProcessEnv): string[] {
  return env.LANGFUSE_HOST?.trim() ? [...LANGFUSE_KEYS] : []
}

/** A half-done set-up, said once at start (config load): what is missing for traces to be sent. */
export function langfuseWarning(env: NodeJS.ProcessEnv): string | undefined {
  const keys = LANGFUSE_KEYS.filter((k) => env[k])
  const host = !!env.LANGFUSE_HOST?.trim()
  if (!host && keys.length > 0)
    return `${keys.join(' and ')} ${keys.length > 1 ? 'are' : 'is'} set but LANGFUSE_HOST is not: no Langfuse traces are sent (fix: export LANGFUSE_HOST=<the URL of your Langfuse, cloud region or self-hosted>)`
  if (host && keys.length < LANGFUSE_KEYS.length) {
    const missing = LANGFUSE_KEYS.filter((k) => !env[k])
    return `LANGFUSE_HOST is set but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not (nor in GCP Secret Manager): no Langfuse traces are sent (fix: export ${missing.join(' and ')} from your Langfuse project's API keys)`
  }
  return undefined
}
