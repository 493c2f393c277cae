#!/usr/bin/env bun
/**
 * config check: validate agents.yaml and print the resolved config with secrets masked, and where
 * each secret comes from (env, GCP Secret Manager, missing: never its value); config schema: its JSON Schema.
 */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, runCli, printJson } from '../lib/cli.ts'
import { configSchemaText, factoryHome, githubApiUrl, linearApiUrl, loadConfig } from '../lib/config.ts'
import { FactoryError } from '../lib/errors.ts'
import { missingRequired, planSecrets, renderSecretSources, resolveSecretSources } from '../lib/secret-sources.ts'
import { mask } from '../lib/secrets.ts'
import { stringify } from 'yaml'

const check = defineCommand({
  meta: {
    name: 'check',
    description:
      'Validate agents.yaml and print it resolved, secrets masked, with where each secret comes from (env, gcp: the Secret Manager of secrets.gcp_project, or missing: what needs it and the fix). Exit 2 with the key path and the fix if broken, or when a secret an agent needs is missing.',
  },
  args: {
    config: { type: 'string', description: 'agents.yaml path (default $FACTORY_HOME/agents.yaml)' },
    json: { type: 'boolean', description: 'print JSON instead of YAML', default: false },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? process.env
    // Token variables are checked below, after Secret Manager had its chance to fill them.
    const { config, path } = loadConfig(args.config, env, { requireEnv: false })
    const project = config.secrets?.gcp_project
    const secrets = await resolveSecretSources(planSecrets(config, config.agents, env), env, project)
    const resolved = {
      file: path,
      factory_home: factoryHome(env),
      linear_api_url: linearApiUrl(env),
      github_api_url: githubApiUrl(env),
      ...config,
      agents: config.agents.map((a) => ({
        ...a,
        tracker: { ...a.tracker, token: mask(env[a.tracker.token_env]) },
        github: { ...a.github, token: mask(env[a.github.token_env] || env.GITHUB_TOKEN) },
      })),
    }
    const sources = secrets.map(({ name, source, secret, required, needs, fix, error }) => ({
      name,
      source,
      ...(secret ? { secret } : {}),
      required,
      needs,
      ...(source === 'missing' ? { fix: error?.fix ?? fix } : {}),
      ...(error ? { error: error.message } : {}),
    }))
    const missing = missingRequired(secrets)
    if (args.json) printJson({ ...resolved, secret_sources: sources })
    else {
      const lines = renderSecretSources(secrets, env).map((l) => `#   ${l}\n`)
      const head = `# ${path}: ${missing.length ? 'valid, but secrets are missing' : 'valid'}\n`
      process.stdout.write(`${head}${stringify(resolved)}# where each secret comes from (never its value):\n${lines.join('')}`)
    }
    // As before Secret Manager existed: a secret a configured agent cannot run without is a config error.
    if (missing.length)
      throw new FactoryError(
        missing.every((m) => m.error) ? 'secret_unavailable' : 'config_invalid',
        `${path}: ${missing.map((m) => `${m.name} is missing (${m.needs.join(', ')})${m.error ? `: ${m.error.message}` : ''}`).join('\n  ')}`,
        { fix: missing.map((m) => m.error?.fix ?? m.fix).join('\n  fix: ') },
      )
  },
})

const schema = defineCommand({
  meta: {
    name: 'schema',
    description:
      'Print the JSON Schema of agents.yaml (for editors: agents.example.yaml names agents.schema.json in its yaml-language-server modeline).',
  },
  run() {
    process.stdout.write(configSchemaText())
  },
})

const command = defineCommand({
  meta: { name: 'config', description: 'Configuration commands.' },
  subCommands: { check, schema },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
