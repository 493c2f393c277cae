/**
 * Invariant "no-secrets-in-reach": the named secrets below (exact names and prefixes), plus every
 * agent's token_env, are what the factory treats as secret: they never sit in the environ of a
 * factory process (lib/secret-channel.ts moves them to a pipe), never reach an engine (whose env is
 * an allow-list, lib/engines/env.ts; this list is the second guard) and are redacted from every text.
 */

/** Exact variable names that hold secrets: never in an engine's env, never in a factory process's environ. */
export const DENIED_ENV_NAMES: readonly string[] = [
  'OPENAI_API_KEY',
  'OPENAI_ORG_ID',
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'AZURE_OPENAI_API_KEY',
  'GEMINI_API_KEY',
  'GOOGLE_API_KEY',
  'GOOGLE_GENERATIVE_AI_API_KEY',
  'MISTRAL_API_KEY',
  'GROQ_API_KEY',
  'DEEPSEEK_API_KEY',
  'XAI_API_KEY',
  'OPENROUTER_API_KEY',
  'TOGETHER_API_KEY',
  'FIREWORKS_API_KEY',
  'PERPLEXITY_API_KEY',
  'COHERE_API_KEY',
  'HF_TOKEN',
  'HUGGINGFACE_API_KEY',
  'AWS_BEARER_TOKEN_BEDROCK',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_API_KEY',
  'CODEX_API_KEY',
  'OPENAI_ADMIN_KEY',
  'GH_ENTERPRISE_TOKEN',
  'GITHUB_PAT',
  'GITLAB_TOKEN',
  'NPM_TOKEN',
  'CLAUDE_CODE_OAUTH_TOKEN',
  'CLAUDE_CODE_OAUTH_REFRESH_TOKEN',
  'FACTORY_GITHUB_TOKEN',
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'FACTORY_RELAY_WORKER_TOKEN',
  'RELAY_ENCRYPTION_KEY',
  // The status server's API token (lib/status-server.ts).
  'ROSE_STATUS_TOKEN',
  'CLAUDE_AUTH_TOKEN',
  'SENTRY_AUTH_TOKEN',
  'SUPABASE_ACCESS_TOKEN',
]

/** Variable-name prefixes that hold secrets (same rules as DENIED_ENV_NAMES). */
export const DENIED_ENV_PREFIXES: readonly string[] = ['LINEAR_', 'LANGFUSE_', 'FACTORY_SECRET_']

/** Deny-listed (by prefix) variables whose values are not secret: endpoints that error messages name. */
export const PUBLIC_ENV_NAMES: readonly string[] = ['LINEAR_API_URL', 'LINEAR_OAUTH_URL', 'LANGFUSE_HOST']

/**
 * True for a public endpoint variable whose URL carries no credentials (`https://user:pass@...`):
 * it may stay in a factory process's environ (engines still never get it: their env is an allow-list).
 */
export function isPublicEndpoint(name: string, value: string): boolean {
  return PUBLIC_ENV_NAMES.includes(name.toUpperCase()) && !/^[^/]*\/\/[^/]*@/.test(value)
}

/** True when `name` is on the deny-list (by exact name or prefix). */
export function isDeniedEnv(name: string): boolean {
  const upper = name.toUpperCase()
  return DENIED_ENV_NAMES.includes(upper) || DENIED_ENV_PREFIXES.some((p) => upper.startsWith(p))
}

/** A copy of `env` without denied variables and without the `extra` names (e.g. the agent's token_env). */
export function scrubEnv(env: NodeJS.ProcessEnv, extra: readonly string[] = []): Record<string, string> {
  const drop = new Set(extra.map((n) => n.toUpperCase()))
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue
    if (isDeniedEnv(k) || drop.has(k.toUpperCase())) continue
    out[k] = v
  }
  return out
}

/** Values worth redacting: every denied variable's value of at least 8 characters. */
export function secretValues(env: NodeJS.ProcessEnv, extra: readonly string[] = []): string[] {
  const drop = new Set(extra.map((n) => n.toUpperCase()))
  return Object.entries(env)
    .filter(([k, v]) => v && v.length >= 8 && (isDeniedEnv(k) || drop.has(k.toUpperCase())))
    .map(([, v]) => v as string)
}

/** Replace every secret value in `text` with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  // Longest first: a secret containing another must not be left half visible.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s) out = out.split(s).join('***')
  return out
}

/** Show a secret as its first 4 characters and a mask (config check). */
export function mask(value: string | undefined): string {
  if (!value) return '(unset)'
  return value.length <= 8 ? '***' : `${value.slice(0, 4)}***`
}
