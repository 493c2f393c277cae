/**
 * The environment-scrubbing fixture: puts every denied variable (DENIED_ENV_NAMES, one per denied
 * prefix, and an agent token_env) into process.env with a unique value, plus a harmless marker and
 * a token-looking canary that is NOT denied (it proves the CLI does not filter on its own).
 */
import { DENIED_ENV_NAMES } from '../../lib/secrets.ts'

/**
 * Secret variable names, written out by hand (not derived from lib/secrets.ts) so that dropping a
 * name from the factory's lists fails a test: every one must stay out of an engine process.
 */
export const SECRET_ENV_NAMES: readonly string[] = [
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
  'FACTORY_GITHUB_TOKEN',
  'GITHUB_TOKEN',
  'GH_TOKEN',
  'FACTORY_RELAY_WORKER_TOKEN',
  'RELAY_ENCRYPTION_KEY',
  'ROSE_STATUS_TOKEN',
  'CLAUDE_AUTH_TOKEN',
  'SENTRY_AUTH_TOKEN',
  'SUPABASE_ACCESS_TOKEN',
  // Found reaching the engine by issue 8 (a deny-list misses names; the env is now an allow-list).
  'CODEX_API_KEY',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_API_KEY',
  'GH_ENTERPRISE_TOKEN',
  'GITHUB_PAT',
  'GITLAB_TOKEN',
  'NPM_TOKEN',
  'OPENAI_ADMIN_KEY',
  'CLAUDE_CODE_OAUTH_TOKEN',
  'LINEAR_API_KEY',
  'LINEAR_WEBHOOK_SECRET',
  'LANGFUSE_SECRET_KEY',
  'FACTORY_SECRET_ANYTHING',
]

/** Build the fixture; call set() before the run and restore() after. */
export function deniedEnvFixture() {
  const salt = Math.random().toString(36).slice(2, 10)
  const agentTokenEnv = 'ROSE_TEST_AGENT_TOKEN'
  const names = [...DENIED_ENV_NAMES, 'LINEAR_API_KEY', 'LANGFUSE_SECRET_KEY', 'FACTORY_SECRET_DEMO', agentTokenEnv]
  const values = new Map(names.map((n) => [n, `denied-${n.toLowerCase()}-${salt}`]))
  const markerName = 'ROSE_HARMLESS_MARKER'
  const markerValue = `marker-${salt}`
  const canaryName = 'ROSE_CANARY_API_TOKEN'
  const canaryValue = `canary-${salt}`
  const saved = new Map<string, string | undefined>()
  return {
    agentTokenEnv,
    names,
    markerName,
    markerValue,
    canaryName,
    canaryValue,
    set() {
      for (const [k, v] of [...values, [markerName, markerValue], [canaryName, canaryValue]] as [string, string][]) {
        saved.set(k, process.env[k])
        process.env[k] = v
      }
    },
    restore() {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    },
    /** Denied names (as `NAME=`) or values found in `text`. */
    leaks(text: string): string[] {
      return names.filter((n) => text.includes(`${n}=`) || text.includes(values.get(n)!))
    },
  }
}
