/**
 * The environment-scrubbing fixture: puts every denied variable (DENIED_ENV_NAMES, one per denied
 * prefix, and an agent token_env) into process.env with a unique value, plus a harmless marker and
 * a token-looking canary that is NOT denied (it proves the CLI does not filter on its own).
 */
import { DENIED_ENV_NAMES } from '../../lib/secrets.ts'

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
