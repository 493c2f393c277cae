/**
 * Where the config lives and which secret names it holds, read without validating it: what a
 * process needs at its entry (lib/secret-channel.ts), kept apart from the zod schema in config.ts
 * so that an entry, `--help` and `--version` do not load zod.
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'

/**
 * The secret variable names the config at `--config` (or $FACTORY_HOME/agents.yaml) names: every
 * agent's tracker and GitHub token_env. Read leniently (no validation, [] when unreadable): a
 * process uses it at its entry, before anything else, to move those tokens out of its environ.
 */
export function configSecretNames(rawArgs: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const i = rawArgs.findIndex((a) => a === '--config' || a.startsWith('--config='))
  const explicit = i < 0 ? undefined : rawArgs[i]!.startsWith('--config=') ? rawArgs[i]!.slice('--config='.length) : rawArgs[i + 1]
  try {
    const raw = parseYaml(readFileSync(configPath(explicit, env), 'utf8')) as { agents?: unknown }
    if (!Array.isArray(raw?.agents)) return []
    return raw.agents
      .flatMap((a: any) => [a?.tracker?.token_env, a?.github?.token_env ?? 'FACTORY_GITHUB_TOKEN'])
      .filter((n): n is string => typeof n === 'string' && n.length > 0)
  } catch {
    return []
  }
}

/** Where the factory keeps its state: $FACTORY_HOME, default ~/rose-factory. */
export function factoryHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.FACTORY_HOME || join(homedir(), 'rose-factory'))
}

/** The config file path: --config, else $FACTORY_HOME/agents.yaml. */
export function configPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit ?? join(factoryHome(env), 'agents.yaml'))
}
