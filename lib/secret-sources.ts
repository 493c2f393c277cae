/**
 * Which secrets a config needs and where each one comes from: the environment, GCP Secret Manager
 * (`secrets.gcp_project`), or nowhere. planSecrets() lists them (pure); resolveSecretSources()
 * fills the env (lib/gcp-secrets.ts) and says where each came from. `config check`, `doctor` and
 * `start` use the same list, so what config check reports is what a run gets. Never a value: only
 * names, sources, the Secret Manager resource, what needs each secret and the fix.
 */
import { type AgentConfig, type FactoryConfig, mcpSecretRefs } from './config.ts'
import type { SecretSource } from './gcp-secrets.ts'
import type { GcpDeps } from './gcp-token.ts'
import { isLocalRemote } from './git.ts'
import { prRepos } from './preflight.ts'

/** A secret the config needs: its variable name, what needs it and how to provide it. */
export interface SecretNeed {
  name: string
  /** What needs it, e.g. `tester: Linear API key (tracker.token_env)`. */
  needs: string[]
  /** Its absence is a config error (exit 2), as an unset tracker token or MCP secret always was. */
  required: boolean
  fix: string
}

/** Where a needed secret came from, and why Secret Manager did not give it. */
export interface SecretStatus extends SecretNeed {
  source: SecretSource
  /** The Secret Manager resource the value is read from (with a GCP project). */
  secret?: string
  /** Secret Manager's refusal (403, not found, disabled version), with its fix. */
  error?: { message: string; fix?: string }
}

/** Optional secrets read from the environment (or Secret Manager) by the factory's tracing and error reports. */
const OBSERVABILITY: readonly { name: string; needs: string; fix: string }[] = [
  {
    name: 'LANGFUSE_PUBLIC_KEY',
    needs: 'Langfuse traces',
    fix: 'export LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces',
  },
  {
    name: 'LANGFUSE_SECRET_KEY',
    needs: 'Langfuse traces',
    fix: 'export LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces',
  },
  { name: 'SENTRY_DSN', needs: 'Sentry error reports', fix: 'export SENTRY_DSN (Sentry: Project settings > Client Keys) to report errors' },
]

/**
 * The secrets `agents` of `config` need, one entry per variable (its needs merged), in config
 * order: each tracker token (the relay worker token for agent_session), GitHub token, MCP `${NAME}`
 * secret, CLAUDE_AUTH_TOKEN for claude agents, and the Langfuse/Sentry keys when set or when a
 * GCP project could hold them. Pure.
 */
export function planSecrets(config: FactoryConfig, agents: readonly AgentConfig[], env: NodeJS.ProcessEnv): SecretNeed[] {
  const byName = new Map<string, SecretNeed>()
  const add = (name: string, needs: string, required: boolean, fix: string) => {
    const had = byName.get(name)
    if (!had) return void byName.set(name, { name, needs: [needs], required, fix })
    had.needs.push(needs)
    if (required && !had.required) Object.assign(had, { required, fix })
  }
  for (const a of agents) {
    const t = a.tracker
    if (t.mode === 'agent_session')
      add(
        t.token_env,
        `${a.name}: relay worker token (tracker.token_env)`,
        true,
        `export ${t.token_env}=<the worker token of ${t.relay_url}>`,
      )
    else
      add(
        t.token_env,
        `${a.name}: Linear API key (tracker.token_env)`,
        true,
        `export ${t.token_env}=<the Linear API key of agent ${a.name}'s user> (Linear: Settings > Security & access > Personal API keys)`,
      )
    // Every repository of the agent: one on GitHub (PRs) or any https remote (pushes) needs the token.
    const slugs = prRepos(a)
      .map((r) => `${r.owner}/${r.name}`)
      .join(', ')
    const https = a.repos.find((r) => r.url.startsWith('https://') && !isLocalRemote(r.url))
    if (slugs)
      add(
        a.github.token_env,
        `${a.name}: pushes and PRs to ${slugs} (github.token_env)`,
        false,
        `export ${a.github.token_env}=<a GitHub token that can push to and open pull requests on ${slugs}>`,
      )
    else if (https)
      // lib/steps/worktree.ts authenticates any https remote with it.
      add(
        a.github.token_env,
        `${a.name}: https pushes to ${https.url} (github.token_env)`,
        false,
        `export ${a.github.token_env}=<a token that can push to ${https.url}>`,
      )
    for (const r of mcpSecretRefs(a))
      add(
        r.name,
        `${a.name}: MCP server ${r.server} (mcp_servers.${r.server}.env.${r.key})`,
        true,
        `export ${r.name}=<the secret MCP server ${r.server} of agent ${a.name} needs>, or write the value literally`,
      )
    if (a.engine === 'claude')
      add(
        'CLAUDE_AUTH_TOKEN',
        `${a.name}: the claude engine's login (unless claude is logged in on this machine)`,
        false,
        'run `claude setup-token` and export the token it prints as CLAUDE_AUTH_TOKEN',
      )
  }
  for (const o of OBSERVABILITY) if (env[o.name] || config.secrets?.gcp_project) add(o.name, o.needs, false, o.fix)
  return [...byName.values()]
}

/**
 * Fill `env` (in memory) with the `needs` it lacks from Secret Manager in `project`, and say where
 * each came from; a refusal is kept with its fix (never thrown). Without a project nothing is
 * fetched and no GCP code loads.
 */
export async function resolveSecretSources(
  needs: readonly SecretNeed[],
  env: NodeJS.ProcessEnv,
  project: string | undefined,
  deps?: GcpDeps,
): Promise<SecretStatus[]> {
  const errors = new Map<string, SecretStatus['error']>()
  let sources: Record<string, SecretSource> = {}
  if (project) {
    const { resolveSecrets } = await import('./gcp-secrets.ts')
    const names = needs.map((n) => n.name)
    sources = await resolveSecrets(names, env, project, {
      deps,
      onError: (e, name) => errors.set(name, { message: e.message, fix: e.fix }),
    })
  }
  return needs.map((n) => {
    const source = sources[n.name] ?? (env[n.name] ? 'env' : 'missing')
    const error = errors.get(n.name)
    return { ...n, source, ...(project ? { secret: `projects/${project}/secrets/${n.name}` } : {}), ...(error ? { error } : {}) }
  })
}

/** One line per secret: `NAME: env`, `NAME: gcp (projects/P/secrets/NAME)` or `NAME: missing (what needs it; why; fix)`. */
export function renderSecretSources(statuses: readonly SecretStatus[], env: NodeJS.ProcessEnv = {}): string[] {
  return statuses.map((s) => {
    if (s.source === 'env') return `${s.name}: env`
    if (s.source === 'gcp') return `${s.name}: gcp (${s.secret})`
    const instead = fallback(s, env)
    const why = s.error ? `; ${s.error.message}` : s.secret ? `; not in the environment nor in ${s.secret}` : ''
    const fix = instead ? `${instead} is used instead` : `fix: ${s.error?.fix ?? s.fix}`
    return `${s.name}: missing (${s.required ? 'required by' : 'optional, for'} ${s.needs.join(', ')}${why}; ${fix})`
  })
}

/** The variable a missing GitHub token falls back to (GITHUB_TOKEN, as lib/preflight.ts githubToken does), when set. */
function fallback(s: SecretStatus, env: NodeJS.ProcessEnv): string | undefined {
  return s.needs.some((n) => n.endsWith('(github.token_env)')) && s.name !== 'GITHUB_TOKEN' && env.GITHUB_TOKEN ? 'GITHUB_TOKEN' : undefined
}

/** The required secrets still missing: a configured agent cannot run without them. */
export function missingRequired(statuses: readonly SecretStatus[]): SecretStatus[] {
  return statuses.filter((s) => s.source === 'missing' && s.required)
}
