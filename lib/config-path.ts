/**
 * Where the config lives and which secret names it holds, read without validating it: what a
 * process needs at its entry (lib/secret-channel.ts), kept apart from the zod schema in config.ts
 * so that an entry, `--help` and `--version` do not load zod.
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/**
 * The secret variable names the config at `--config` (or $FACTORY_HOME/agents.yaml) names: every
 * agent's tracker and GitHub token_env. Read leniently (no validation, [] when unreadable): a
 * process uses it at its entry, before anything else, to move those tokens out of its environ.
 * The YAML parser is loaded only when the text is beyond tokenEnvNames (its first parse costs ~10 ms).
 */
export async function configSecretNames(rawArgs: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const i = rawArgs.findIndex((a) => a === '--config' || a.startsWith('--config='))
  const explicit = i < 0 ? undefined : rawArgs[i]!.startsWith('--config=') ? rawArgs[i]!.slice('--config='.length) : rawArgs[i + 1]
  try {
    const text = readFileSync(configPath(explicit, env), 'utf8')
    const quick = tokenEnvNames(text)
    if (quick) return [...quick, 'FACTORY_GITHUB_TOKEN']
    const { parse } = await import('yaml')
    const raw = parse(text) as { agents?: unknown }
    if (!Array.isArray(raw?.agents)) return []
    return raw.agents
      .flatMap((a: any) => [a?.tracker?.token_env, a?.github?.token_env ?? 'FACTORY_GITHUB_TOKEN'])
      .filter((n): n is string => typeof n === 'string' && n.length > 0)
  } catch {
    return []
  }
}

/**
 * Every `token_env` value of a config text, read without a YAML parser, or undefined when the text
 * needs one: each occurrence of `token_env` must be a key followed on its line by a plain or quoted
 * variable name. An alias, a tag, a block scalar, a quoted key or an escape gives undefined. May
 * name more than the YAML holds (a commented-out line): a name too many only moves one more
 * variable to the secret channel, a name missed would leave a token in the environ.
 */
export function tokenEnvNames(text: string): string[] | undefined {
  const occurrences = text.split('token_env').length - 1
  const names = [...text.matchAll(/(?<![\w"'-])token_env[ \t]*:[ \t]+(["']?)([A-Za-z_][A-Za-z0-9_]*)\1[ \t]*(?=[,}#\r\n]|$)/gm)].map(
    (m) => m[2]!,
  )
  return names.length === occurrences ? names : undefined
}

/** Where the factory keeps its state: $FACTORY_HOME, default ~/rose-factory. */
export function factoryHome(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.FACTORY_HOME || join(homedir(), 'rose-factory'))
}

/** The config file path: --config, else $FACTORY_HOME/agents.yaml. */
export function configPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit ?? join(factoryHome(env), 'agents.yaml'))
}
