/**
 * The environment an engine process gets (invariant "no-secrets-in-reach"): an allow-list. Only the
 * basics a shell needs, the engine's own documented variables and what the agent names in
 * `engine_env` pass; a secret (lib/secrets.ts deny-list, every agent's token_env) never does, even
 * when allowed by name. Claude's credential is added under the name the CLI reads; the Claude
 * adapter then hands it over on a file descriptor, not in the env (lib/engines/claude.ts).
 */
import { isDeniedEnv } from '../secrets.ts'
import type { EngineName } from './types.ts'

/**
 * The factory keeps the Claude subscription token under its own name (CLAUDE_AUTH_TOKEN, denied like
 * every factory secret) and hands it to Claude Code under the name the CLI reads.
 */
const CLAUDE_TOKEN_SOURCE = 'CLAUDE_AUTH_TOKEN'
export const CLAUDE_TOKEN_TARGET = 'CLAUDE_CODE_OAUTH_TOKEN'

/** What every engine's shell may see. */
export const BASE_ENV_NAMES: readonly string[] = [
  'PATH',
  'HOME',
  'LANG',
  'LANGUAGE',
  'TERM',
  'COLORTERM',
  'TMPDIR',
  'USER',
  'LOGNAME',
  'SHELL',
  'TZ',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'XDG_DATA_HOME',
  'XDG_STATE_HOME',
  'XDG_RUNTIME_DIR',
]
export const BASE_ENV_PREFIXES: readonly string[] = ['LC_']

/** Each engine's own documented variables (configuration, not credentials: those are denied first). */
export const ENGINE_ENV: Readonly<Record<EngineName, { names: readonly string[]; prefixes: readonly string[] }>> = {
  claude: {
    names: [
      'CLAUDE_CONFIG_DIR',
      'DISABLE_TELEMETRY',
      'DISABLE_AUTOUPDATER',
      'DISABLE_ERROR_REPORTING',
      'DISABLE_BUG_COMMAND',
      'DISABLE_COST_WARNINGS',
      'DISABLE_NON_ESSENTIAL_MODEL_CALLS',
      'IS_SANDBOX',
      'ANTHROPIC_BASE_URL',
      'ANTHROPIC_MODEL',
      'ANTHROPIC_SMALL_FAST_MODEL',
      'BASH_DEFAULT_TIMEOUT_MS',
      'BASH_MAX_TIMEOUT_MS',
      'MAX_THINKING_TOKENS',
    ],
    prefixes: ['CLAUDE_CODE_'],
  },
  codex: { names: ['CODEX_HOME', 'RUST_LOG'], prefixes: ['CODEX_'] },
  console: { names: [], prefixes: [] },
}

/** True when `name` may reach `engine` (before the secret check): the basics, its own variables, or `extra`. */
export function isAllowedEngineEnv(engine: EngineName, name: string, extra: readonly string[] = []): boolean {
  const upper = name.toUpperCase()
  const own = ENGINE_ENV[engine]
  return (
    BASE_ENV_NAMES.includes(upper) ||
    BASE_ENV_PREFIXES.some((p) => upper.startsWith(p)) ||
    own.names.includes(upper) ||
    own.prefixes.some((p) => upper.startsWith(p)) ||
    extra.some((n) => n.toUpperCase() === upper)
  )
}

/**
 * The env for `engine`: the allowed variables of `processEnv` (plus `allow`, the agent's
 * engine_env), never a secret (deny-listed or one of `agentSecretEnvs`); Claude also gets
 * CLAUDE_AUTH_TOKEN (or an exported CLAUDE_CODE_OAUTH_TOKEN) as CLAUDE_CODE_OAUTH_TOKEN, which its
 * adapter moves to a file descriptor.
 */
export function engineEnv(
  engine: EngineName,
  processEnv: NodeJS.ProcessEnv,
  agentSecretEnvs: readonly string[] = [],
  allow: readonly string[] = [],
): Record<string, string> {
  const secret = new Set(agentSecretEnvs.map((n) => n.toUpperCase()))
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(processEnv)) {
    if (v === undefined || isDeniedEnv(k) || secret.has(k.toUpperCase())) continue
    if (isAllowedEngineEnv(engine, k, allow)) env[k] = v
  }
  if (engine === 'claude') {
    const token = processEnv[CLAUDE_TOKEN_SOURCE] || processEnv[CLAUDE_TOKEN_TARGET]
    if (token) env[CLAUDE_TOKEN_TARGET] = token
  }
  return env
}
