/**
 * The environment an engine process gets (invariant "no-secrets-in-reach"): the factory's env scrubbed by the named
 * deny-list plus the agent's own secret variables (its Linear and GitHub token_env), with the one credential each engine needs.
 */
import { scrubEnv } from '../secrets.ts'
import type { EngineName } from './types.ts'

/**
 * The factory keeps the Claude subscription token under its own name (CLAUDE_AUTH_TOKEN, denied like
 * every factory secret) and hands it to Claude Code under the name the CLI reads.
 */
const CLAUDE_TOKEN_SOURCE = 'CLAUDE_AUTH_TOKEN'
const CLAUDE_TOKEN_TARGET = 'CLAUDE_CODE_OAUTH_TOKEN'

/** The scrubbed env for `engine`; Claude also gets CLAUDE_AUTH_TOKEN as CLAUDE_CODE_OAUTH_TOKEN. */
export function engineEnv(engine: EngineName, processEnv: NodeJS.ProcessEnv, agentSecretEnvs: readonly string[] = []): Record<string, string> {
  const env = scrubEnv(processEnv, agentSecretEnvs)
  if (engine === 'claude') {
    const token = processEnv[CLAUDE_TOKEN_SOURCE]
    if (token) env[CLAUDE_TOKEN_TARGET] = token
  } else {
    // A Claude subscription token is no business of any other engine (its shell could print it).
    delete env[CLAUDE_TOKEN_TARGET]
  }
  return env
}
