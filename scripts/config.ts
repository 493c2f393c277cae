#!/usr/bin/env bun
/** config check: validate agents.yaml and print the resolved config with secrets masked; config schema: its JSON Schema. */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, runCli, printJson } from '../lib/cli.ts'
import { configSchemaText, factoryHome, githubApiUrl, linearApiUrl, loadConfig } from '../lib/config.ts'
import { mask } from '../lib/secrets.ts'
import { stringify } from 'yaml'

const check = defineCommand({
  meta: {
    name: 'check',
    description: 'Validate agents.yaml (exit 2 with the key path and the fix if broken) and print it resolved, secrets masked.',
  },
  args: {
    config: { type: 'string', description: 'agents.yaml path (default $FACTORY_HOME/agents.yaml)' },
    json: { type: 'boolean', description: 'print JSON instead of YAML', default: false },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? process.env
    const { config, path } = loadConfig(args.config, env)
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
    if (args.json) printJson(resolved)
    else process.stdout.write(`# ${path}: valid\n${stringify(resolved)}`)
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
