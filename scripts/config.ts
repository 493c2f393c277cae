#!/usr/bin/env bun
/** config check: validate agents.yaml and print the resolved config with secrets masked. */
import { defineCommand } from 'citty'
import { isEntry, main, printJson } from '../lib/cli.ts'
import { factoryHome, githubApiUrl, linearApiUrl, loadConfig } from '../lib/config.ts'
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
  async run({ args }) {
    const { config, path } = loadConfig(args.config)
    const resolved = {
      file: path,
      factory_home: factoryHome(),
      linear_api_url: linearApiUrl(),
      github_api_url: githubApiUrl(),
      ...config,
      agents: config.agents.map((a) => ({
        ...a,
        tracker: { ...a.tracker, token: mask(process.env[a.tracker.token_env]) },
        github: { ...a.github, token: mask(process.env[a.github.token_env] || process.env.GITHUB_TOKEN) },
      })),
    }
    if (args.json) printJson(resolved)
    else process.stdout.write(`# ${path}: valid\n${stringify(resolved)}`)
  },
})

const command = defineCommand({
  meta: { name: 'config', description: 'Configuration commands.' },
  subCommands: { check },
})

export default command

if (isEntry(import.meta.url)) await main(command)
