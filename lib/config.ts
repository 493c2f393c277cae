/**
 * agents.yaml: one zod schema, strict (an unknown key is an error that names it). Types come from
 * z.infer. Loading checks what zod cannot: duplicate names, unset token env vars, modes not built yet.
 */
import { existsSync, readFileSync } from 'node:fs'
import { LineCounter, parseDocument } from 'yaml'
import { z } from './zod.ts'
import { isolationStatus } from './engines/isolate.ts'
import { didYouMean, formatPath, keysAt, where } from './config-issues.ts'
import { FactoryError } from './errors.ts'
import { isDeniedEnv } from './secrets.ts'
import { RUNTIME_PROVIDERS, runtimeSchemaOf } from './runtime/registry.ts'

const nameRe = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/

const trackerSchema = z.strictObject({
  mode: z.enum(['api_key', 'agent_session']),
  token_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'),
  /** Linear user ids or emails whose comments may trigger a rerun (absent = anyone). */
  allow_commenters: z.array(z.string()).optional(),
  /** Workflow state names or types in which a newly seen issue runs (default: unstarted + the started non-review state). */
  active_states: z.array(z.string().min(1)).min(1).optional(),
  /** agent_session: the relay workers long-poll (token_env then names its worker token). */
  relay_url: z.url({ protocol: /^https?$/ }).optional(),
  /** agent_session: at most one non-final activity per this many seconds. */
  activity_interval_seconds: z.number().min(0).default(3),
  /** agent_session: at most this many non-final activities per run (the final one always goes). */
  max_activities: z.number().int().min(0).default(60),
})

const repoSchema = z.strictObject({
  url: z.string().min(1),
  base: z.string().min(1).default('main'),
  bootstrap: z.string().optional(),
  bootstrap_timeout_seconds: z.number().int().positive().default(300),
  /** owner/name of the GitHub repository for PRs, when `url` is not a github.com URL (mirror, local path). */
  github: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, 'must look like owner/name')
    .optional(),
})

/** Which issues a `repos` entry takes: every key given must hold (labels: any one of them); names compare case-insensitively. */
const matchSchema = z
  .strictObject({
    labels: z.array(z.string().min(1)).min(1).optional(),
    /** A team key, e.g. ENG. */
    team: z.string().min(1).optional(),
    /** A project name. */
    project: z.string().min(1).optional(),
  })
  .refine((m) => m.labels || m.team || m.project, 'name at least one of labels, team, project (an entry without match is the default)')

/** One repository of an agent that works in several (lib/route.ts picks one per issue). */
const repoEntrySchema = repoSchema.extend({ match: matchSchema.optional() })

const claudeSchema = z.strictObject({
  permission_mode: z.enum(['acceptEdits', 'bypassPermissions', 'default', 'plan']).default('bypassPermissions'),
  allowed_tools: z.array(z.string()).optional(),
  model: z.string().optional(),
  max_turns: z.number().int().positive().optional(),
  bin: z.string().optional(),
})

const codexSchema = z.strictObject({
  sandbox: z.enum(['read-only', 'workspace-write', 'danger-full-access']).default('workspace-write'),
  model: z.string().optional(),
  config: z.array(z.string()).optional(),
  bin: z.string().optional(),
})

const limitsSchema = z.strictObject({
  stall_seconds: z.number().positive().default(300),
  timeout_minutes: z.number().positive().default(60),
  max_attempts: z.number().int().positive().default(3),
  max_cost_usd: z.number().positive().optional(),
  /** Most model turns per run (Claude: --max-turns; other engines: tool calls). */
  max_turns: z.number().int().positive().optional(),
})

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')

/** A `${NAME}` value: the factory's env var NAME, a secret handed only to that MCP server. */
export const SECRET_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/

/** One stdio MCP server the agent's engine starts (Claude: --mcp-config, Codex: a profile; lib/engines/mcp.ts). */
const mcpServerSchema = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  /** The server's own variables: a literal, or `${NAME}` (a secret: never the engine's env, always redacted). */
  env: z.record(envName, z.string()).default({}),
})

const agentSchema = z.strictObject({
  name: z.string().regex(nameRe, 'must be lowercase letters, digits and dashes (e.g. benoit-codex)'),
  engine: z.enum(['claude', 'codex', 'console']),
  tracker: trackerSchema,
  /** The one repository of the agent (or `repos`, never both). */
  repo: repoSchema.optional(),
  /** Several repositories: the first entry whose `match` holds takes the issue; the entry without `match` is the default. */
  repos: z.array(repoEntrySchema).min(1).optional(),
  /** What a run needs besides its worktree (lib/runtime/): `none`, or `command` scripts around each run. */
  runtime: runtimeSchemaOf(RUNTIME_PROVIDERS),
  concurrency: z.number().int().positive().max(64).default(2),
  claude: claudeSchema.optional(),
  codex: codexSchema.optional(),
  limits: limitsSchema.prefault({}),
  github: z.strictObject({ token_env: z.string().default('FACTORY_GITHUB_TOKEN') }).prefault({}),
  /** Further variables the engine may see (its env is an allow-list); never a secret (checked at load). */
  engine_env: z.array(envName).default([]),
  /** How the engine CLI runs: `namespace` (bwrap; the default on Linux when bwrap works) or `none` (see lib/engines/isolate.ts). */
  isolation: z.enum(['none', 'namespace']).optional(),
  /** MCP servers the engine may start, by name; their `${NAME}` env values are secrets only they get. */
  mcp_servers: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be letters, digits, _ and -'), mcpServerSchema).default({}),
})

export const configSchema = z.strictObject({
  poll_interval_seconds: z.number().positive().default(30),
  /** Runs at once on this machine, across agents. */
  max_concurrency: z.number().int().positive().default(4),
  /** Worktrees of completed or canceled issues are removed this long after the factory sees them closed. */
  cleanup_grace_minutes: z.number().nonnegative().default(60),
  /** Logs of an issue the factory forgot (record pruned) are removed once unwritten this many days. */
  log_retention_days: z.number().nonnegative().default(30),
  agents: z.array(agentSchema).min(1, 'list at least one agent'),
  /** Where secrets unset in the environment come from: the Secret Manager of this GCP project (same names). */
  secrets: z
    .strictObject({
      gcp_project: z
        .string()
        .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a GCP project id')
        .optional(),
    })
    .optional(),
})

export type RepoConfig = z.infer<typeof repoSchema>
export type RepoEntry = z.infer<typeof repoEntrySchema>
export type RepoMatch = z.infer<typeof matchSchema>
/**
 * An agent as loaded: `repos` lists every repository (a single `repo:` becomes one entry without
 * match), `repo` is the default one; a run's context carries the issue's repo there (lib/route.ts).
 */
export type AgentConfig = Omit<z.infer<typeof agentSchema>, 'repo' | 'repos'> & { repo: RepoConfig; repos: RepoEntry[] }
export type FactoryConfig = Omit<z.infer<typeof configSchema>, 'agents'> & { agents: AgentConfig[] }

/** The env variables holding an agent's own secrets (beyond the fixed deny-list): never given to engines, always redacted. */
export function agentSecretEnvs(agent: AgentConfig): string[] {
  return [agent.tracker.token_env, agent.github.token_env, ...mcpSecretRefs(agent).map((r) => r.name)]
}

/** The `${NAME}` references of an agent's MCP servers, with where each is written. */
export function mcpSecretRefs(agent: Pick<AgentConfig, 'mcp_servers'>): { name: string; server: string; key: string }[] {
  return Object.entries(agent.mcp_servers ?? {}).flatMap(([server, s]) =>
    Object.entries(s.env).flatMap(([key, value]) => {
      const name = SECRET_REF.exec(value)?.[1]
      return name ? [{ name, server, key }] : []
    }),
  )
}

import { configPath } from './config-path.ts'

export { configPath, configSecretNames, factoryHome } from './config-path.ts'

/** One environment variable a config names but the environment lacks. */
export interface MissingEnv {
  agent: string
  /** Where the config names it, e.g. `agents[1].tracker.token_env`. */
  path: string
  name: string
  fix: string
}

/** The tracker token and MCP secret variables of `agents` that are unset or empty (every one, not just the first). */
export function missingEnv(config: FactoryConfig, env: NodeJS.ProcessEnv, agents: readonly AgentConfig[] = config.agents): MissingEnv[] {
  const tokens = agents
    .filter((a) => !env[a.tracker.token_env])
    .map((a) => ({
      agent: a.name,
      path: `agents[${config.agents.indexOf(a)}].tracker.token_env`,
      name: a.tracker.token_env,
      fix: `export ${a.tracker.token_env}=<the Linear API key of agent ${a.name}'s user> (Linear: Settings > Security & access > Personal API keys)`,
    }))
  const mcp = agents.flatMap((a) =>
    mcpSecretRefs(a)
      .filter((r) => !env[r.name])
      .map((r) => ({
        agent: a.name,
        path: `agents[${config.agents.indexOf(a)}].mcp_servers.${r.server}.env.${r.key}`,
        name: r.name,
        fix: `export ${r.name}=<the secret MCP server ${r.server} of agent ${a.name} needs>, or write the value literally`,
      })),
  )
  return [...tokens, ...mcp]
}

/** Throw one config_invalid naming every unset token variable of `agents` (none unset: nothing). */
export function requireEnv(config: FactoryConfig, file: string, env: NodeJS.ProcessEnv, agents?: readonly AgentConfig[]): void {
  const missing = missingEnv(config, env, agents)
  if (missing.length === 0) return
  throw new FactoryError(
    'config_invalid',
    `${file}: ${missing.map((m) => `${m.path}: environment variable ${m.name} is not set`).join('\n  ')}`,
    { fix: missing.map((m) => m.fix).join('\n  fix: ') },
  )
}

/** The JSON Schema of agents.yaml (what a file may say: defaults optional), generated from the zod schema. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input' }) as unknown as { properties: { agents: { items: Record<string, unknown> } } }
  // What parseConfig checks beyond zod: an agent has `repo` or `repos`, never both.
  schema.properties.agents.items.oneOf = [{ required: ['repo'] }, { required: ['repos'] }]
  return { ...schema, title: 'rose-factory agents.yaml' }
}

/** configJsonSchema() as the text of agents.schema.json (what `config schema` prints; a test keeps the file in sync). */
export function configSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`
}

/**
 * Parse and validate config text; throws FactoryError config_invalid naming file, key path, line
 * and column, and the fix. `requireEnv: false` leaves the token variables to the caller (start
 * refuses only the agents whose token is missing; a step checks only its own agent's).
 */
export function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: { requireEnv?: boolean } = {},
): FactoryConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true })
  const yamlError = doc.errors[0]
  if (yamlError) {
    const pos = yamlError.linePos?.[0]
    const at = pos ? ` (line ${pos.line}, column ${pos.col})` : ''
    throw new FactoryError('config_invalid', `${file}${at}: not valid YAML: ${yamlError.message.split('\n')[0]}`, {
      fix: 'fix the YAML syntax (indentation, quotes) at that line; agents.example.yaml shows the shape',
    })
  }
  const raw: unknown = doc.toJS()
  const parsed = configSchema.safeParse(raw ?? {})
  if (!parsed.success) {
    const schema = configJsonSchema()
    const issues = parsed.error.issues.map((i) => {
      if (i.code === 'unrecognized_keys') {
        const base = formatPath(i.path)
        return i.keys
          .map((k) => {
            const guess = didYouMean(k, keysAt(schema, i.path))
            return `${base === '(top level)' ? k : `${base}.${k}`}: unknown key "${k}"${where(doc, lines, i.path, k)}${guess ? `; did you mean "${guess}"?` : ''}`
          })
          .join('\n  ')
      }
      return `${formatPath(i.path)}: ${i.message}${where(doc, lines, i.path)}`
    })
    throw new FactoryError('config_invalid', `${file}: invalid config\n  ${issues.join('\n  ')}`, {
      fix: 'correct the keys named above; agents.example.yaml and the README list every key',
    })
  }
  const rawAgents = parsed.data.agents
  rawAgents.forEach((a, i) => {
    if (!a.repo === !a.repos)
      throw new FactoryError(
        'config_invalid',
        `${file}: agents[${i}]: ${a.repo ? 'both repo and repos are set' : 'no repo: set repo (one repository) or repos (several)'}${where(doc, lines, ['agents', i])}`,
        {
          fix: 'keep one: `repo: { url, base }` for one repository, or `repos: [{ url, base, match: { labels: [...] } }, ...]` for several',
        },
      )
    const defaults = (a.repos ?? []).filter((r) => !r.match)
    if (defaults.length > 1)
      throw new FactoryError(
        'config_invalid',
        `${file}: agents[${i}].repos: ${defaults.length} entries have no match (${defaults.map((r) => r.url).join(', ')}); only one can be the default${where(doc, lines, ['agents', i, 'repos'])}`,
        { fix: 'give every entry but the default a match: { labels | team | project }' },
      )
  })
  const config: FactoryConfig = {
    ...parsed.data,
    agents: rawAgents.map((a) => {
      const repos: RepoEntry[] = a.repos ?? [a.repo!]
      return { ...a, repos, repo: a.repo ?? repos.find((r) => !r.match) ?? repos[0]! }
    }),
  }
  const seen = new Set<string>()
  config.agents.forEach((a, i) => {
    if (seen.has(a.name)) {
      throw new FactoryError(
        'config_invalid',
        `${file}: agents[${i}].name: "${a.name}" is used twice${where(doc, lines, ['agents', i, 'name'])}`,
        {
          fix: 'give each agent a unique name',
        },
      )
    }
    seen.add(a.name)
    const secretNames = new Set(config.agents.flatMap(agentSecretEnvs).map((n) => n.toUpperCase()))
    a.engine_env.forEach((name, j) => {
      if (isDeniedEnv(name) || secretNames.has(name.toUpperCase()))
        throw new FactoryError(
          'config_invalid',
          `${file}: agents[${i}].engine_env[${j}]: ${name} holds a secret and never reaches an engine`,
          {
            fix: `remove ${name} from engine_env (engines get their credential from the factory: CLAUDE_AUTH_TOKEN on a file descriptor, Codex from its own login)`,
          },
        )
    })
    if (a.isolation === 'namespace') isolationStatus(a, env) // config_invalid when bwrap cannot be had here
    if (a.tracker.mode === 'agent_session' && !a.tracker.relay_url)
      throw new FactoryError('config_invalid', `${file}: agents[${i}].tracker.relay_url: agent_session needs the relay's URL`, {
        fix: 'add relay_url: https://your-relay (http://127.0.0.1:PORT for a relay on this machine), and token_env naming its worker token',
      })
    if (a.tracker.mode === 'api_key' && a.tracker.relay_url)
      throw new FactoryError('config_invalid', `${file}: agents[${i}].tracker.relay_url is only for mode: agent_session`, {
        fix: 'remove relay_url, or set mode: agent_session',
      })
  })
  if (opts.requireEnv !== false) requireEnv(config, file, env)
  return config
}

/** Read and validate the config file (FactoryError config_missing / config_invalid). */
export function loadConfig(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: { requireEnv?: boolean } = {},
): { config: FactoryConfig; path: string } {
  const path = configPath(explicit, env)
  if (!existsSync(path)) {
    throw new FactoryError('config_missing', `no config at ${path}`, {
      fix: `copy agents.example.yaml to ${path} and edit it, or pass --config PATH`,
    })
  }
  return { config: parseConfig(readFileSync(path, 'utf8'), path, env, opts), path }
}

/** The agent called `name`, or a usage error listing the known names. */
export function pickAgent(config: FactoryConfig, name: string): AgentConfig {
  const agent = config.agents.find((a) => a.name === name)
  if (!agent) {
    throw new FactoryError('usage', `unknown agent "${name}"`, { fix: `use one of: ${config.agents.map((a) => a.name).join(', ')}` })
  }
  return agent
}

/** Agents selected by --agent (none = all). */
export function selectAgents(config: FactoryConfig, name?: string): AgentConfig[] {
  return name ? [pickAgent(config, name)] : config.agents
}

/** `value` of env variable `name` as an http(s) URL, or config_invalid naming the variable, its value and an example. */
function endpointUrl(name: string, value: string, example: string): string {
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {}
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new FactoryError('config_invalid', `${name}=${JSON.stringify(value)} is not a valid http(s) URL`, {
      fix: `set ${name} to a full URL such as ${example}, or unset it for the default`,
    })
  return value
}

/** Linear's GraphQL endpoint (LINEAR_API_URL overrides, for the sandbox and proxies). */
export function linearApiUrl(env: NodeJS.ProcessEnv = process.env): string {
  if (!env.LINEAR_API_URL) return 'https://api.linear.app/graphql'
  return endpointUrl('LINEAR_API_URL', env.LINEAR_API_URL, 'https://api.linear.app/graphql')
}

/** GitHub's REST endpoint (GITHUB_API_URL overrides). */
export function githubApiUrl(env: NodeJS.ProcessEnv = process.env): string {
  if (!env.GITHUB_API_URL) return 'https://api.github.com'
  return endpointUrl('GITHUB_API_URL', env.GITHUB_API_URL, 'https://github.example.com/api/v3').replace(/\/+$/, '')
}
