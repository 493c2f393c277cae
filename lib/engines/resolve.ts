/**
 * Which engine binary to run: the configured path, else ROSE_CLAUDE_BIN / ROSE_CODEX_BIN, else the
 * binary on PATH, else the project's own `engines/node_modules/.bin/<name>` (`make engines`).
 */
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FactoryError } from '../errors.ts'

export type EngineBinName = 'claude' | 'codex'

const ENV_NAME: Record<EngineBinName, string> = { claude: 'ROSE_CLAUDE_BIN', codex: 'ROSE_CODEX_BIN' }

/** How to install each engine, for the engine_missing fix. */
export const INSTALL_FIX: Record<EngineBinName, string> = {
  claude: 'npm install -g @anthropic-ai/claude-code, or `make engines` (installs it under engines/)',
  codex: 'npm install -g @openai/codex, or `make engines` (installs it under engines/)',
}

/** The project-local install path of `name` (engines/node_modules/.bin/<name>). */
export function projectEngineBin(name: EngineBinName): string {
  return fileURLToPath(new URL(`../../engines/node_modules/.bin/${name}`, import.meta.url))
}

/** The absolute path of the `name` binary to run; throws FactoryError engine_missing with the fix. */
export function resolveEngineBin(name: EngineBinName, configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  // An explicit choice that does not exist is an error, not a reason to quietly run another binary.
  const explicit = configured ? ['configured bin', configured] : env[ENV_NAME[name]] ? [ENV_NAME[name], env[ENV_NAME[name]]!] : null
  if (explicit) {
    const [source, value] = explicit as [string, string]
    const found = findExecutable(value, env)
    if (found) return found
    throw missing(name, `${name} binary not found: ${source} "${value}" is not an executable file`)
  }
  const onPath = findOnPath(name, env)
  if (onPath) return onPath
  const local = projectEngineBin(name)
  if (isExecutable(local)) return local
  throw missing(name, `${name} binary not found: not on PATH and not at ${local}`)
}

function missing(name: EngineBinName, message: string): FactoryError {
  return new FactoryError('engine_missing', message, { fix: INSTALL_FIX[name], details: { engine: name } })
}

/** A name with a slash is a path (relative to the cwd); a bare name is looked up on PATH. */
function findExecutable(value: string, env: NodeJS.ProcessEnv): string | undefined {
  if (value.includes('/')) {
    const abs = isAbsolute(value) ? value : resolve(value)
    return isExecutable(abs) ? abs : undefined
  }
  return findOnPath(value, env)
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
