/**
 * An agent's MCP servers (agents[].mcp_servers), handed to its engine: Claude Code through
 * `--mcp-config=<file> --strict-mcp-config`, Codex through a profile file `-p <name>` (it layers
 * `$CODEX_HOME/<name>.config.toml`). A `${NAME}` env value is a factory secret that only that
 * server gets: it is denied to the engine's env (engineEnv, via agentSecretEnvs) and lives only
 * in the config file and in the server's own environment.
 *
 * Why a 0600 file and not the config in argv (Claude takes inline JSON, Codex takes
 * `-c mcp_servers.x.env.K=V`): argv is /proc/<pid>/cmdline, readable by every user of the host
 * (`ps`), for the whole run; a 0600 file is readable by our uid only, and is removed when the run
 * ends. What remains, and cannot be helped while the server runs as the engine's uid in its PID
 * namespace: the engine's shell can read the file while the run lasts, and the server's
 * /proc/<pid>/environ. The README says so.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { SECRET_REF } from '../config.ts'
import { FactoryError } from '../errors.ts'
import { safeJoin } from '../paths.ts'
import type { EngineRunInput } from './types.ts'

/** MCP servers with their env resolved (secret values in), ready for an engine's config. */
export type McpServers = Record<string, { command: string; args: string[]; env: Record<string, string> }>

/** Resolve each `${NAME}` env value from `env` (config_invalid when unset: requireEnv reports it first). */
export function resolveMcpServers(servers: Record<string, { command: string; args?: string[]; env?: Record<string, string> }>, env: NodeJS.ProcessEnv): McpServers {
  const out: McpServers = {}
  for (const [name, s] of Object.entries(servers)) {
    const resolved: Record<string, string> = {}
    for (const [key, value] of Object.entries(s.env ?? {})) {
      const ref = SECRET_REF.exec(value)?.[1]
      const v = ref ? env[ref] : value
      if (!v)
        throw new FactoryError('config_invalid', `mcp_servers.${name}.env.${key}: environment variable ${ref} is not set`, {
          fix: `export ${ref}=<the secret MCP server ${name} needs>`,
        })
      resolved[key] = v
    }
    out[name] = { command: s.command, args: s.args ?? [], env: resolved }
  }
  return out
}

/** Claude Code's --mcp-config JSON. */
export function claudeMcpJson(servers: McpServers): string {
  const mcpServers = Object.fromEntries(Object.entries(servers).map(([n, s]) => [n, { type: 'stdio', ...s }]))
  return `${JSON.stringify({ mcpServers }, null, 2)}\n`
}

/** A TOML key or string (JSON string escapes are valid TOML basic-string escapes). */
const q = (s: string) => JSON.stringify(s)

/** Codex's profile TOML: one `[mcp_servers.<name>]` table each. */
export function codexMcpToml(servers: McpServers): string {
  return Object.entries(servers)
    .map(([n, s]) => {
      const env = Object.entries(s.env).map(([k, v]) => `${q(k)} = ${q(v)}`)
      return `[mcp_servers.${q(n)}]\ncommand = ${q(s.command)}\nargs = [${s.args.map(q).join(', ')}]\nenv = { ${env.join(', ')} }\n`
    })
    .join('\n')
}

/** A written config: the engine's extra argv, and its removal. */
export interface McpHandover {
  argv: string[]
  path: string
  cleanup(): void
}

/** The agent's private engine home ($FACTORY_HOME/engine-home/<agent>, 0700): under namespace it is bound, so the CLI can read it. */
function engineHomeOf(input: EngineRunInput): string | undefined {
  const req = input.isolation
  if (!req) return undefined
  const dir = safeJoin(join(req.factoryHome, 'engine-home'), req.agent)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return realpathSync(dir)
}

function writePrivate(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  writeFileSync(path, text, { mode: 0o600, flag: 'wx' })
}

/** Write the run's MCP config for `engine` (none configured: undefined); `isolated` says whether the CLI runs under namespace. */
export function mcpHandover(engine: 'claude' | 'codex', input: EngineRunInput, isolated: boolean): McpHandover | undefined {
  const servers = input.mcpServers
  if (!servers || Object.keys(servers).length === 0) return undefined
  const id = `rose-mcp-${randomBytes(8).toString('hex')}`
  const home = engineHomeOf(input)
  let path: string
  let argv: string[]
  if (engine === 'claude') {
    // Outside the worktree (the engine's own tree, which it commits): the engine home, else the transcript's 0700 directory.
    path = join(home ?? dirname(input.logPath), `${id}.json`)
    writePrivate(path, claudeMcpJson(servers))
    // `=`: --mcp-config is variadic and would swallow the next argument.
    argv = [`--mcp-config=${path}`, '--strict-mcp-config']
  } else {
    // Codex reads a profile only from CODEX_HOME: under namespace the engine home's (isolate.ts), else the one the CLI would use.
    const codexHome = isolated && home ? join(home, '.codex') : input.env.CODEX_HOME || join(input.env.HOME || homedir(), '.codex')
    path = join(codexHome, `${id}.config.toml`)
    writePrivate(path, codexMcpToml(servers))
    argv = ['-p', id]
  }
  return { argv, path, cleanup: () => rmSync(path, { force: true }) }
}
