#!/usr/bin/env bun
/** doctor: check a set-up before it touches Linear (config, tokens, Linear, git, repo, GitHub, engines, home, disk). */
import { defineCommand } from 'citty'
import { type CliSession, isEntry, printJson, runCli } from '../lib/cli.ts'
import { agentSecretEnvs, type FactoryConfig, loadConfig, selectAgents, configPath } from '../lib/config.ts'
import { planChecks, realDoctorDeps, renderChecks, runChecks } from '../lib/doctor.ts'
import { asFactoryError, type FactoryError } from '../lib/errors.ts'
import { enterWithoutSecrets, processEnv } from '../lib/secret-channel.ts'
import { planSecrets, resolveSecretSources, type SecretStatus } from '../lib/secret-sources.ts'

const command = defineCommand({
  meta: {
    name: 'doctor',
    description:
      'Check the set-up: config, token variables (and where each came from: env or GCP Secret Manager), Linear (who the key is), git, the repo and its base branch, the GitHub token, the engine and its login, FACTORY_HOME, disk space. Each line says ok (✓), warning (!) or failure (✗) and the fix. Exit 1 on any failure, 2 when the config cannot be read.',
  },
  args: {
    config: { type: 'string', description: 'agents.yaml path (default $FACTORY_HOME/agents.yaml)' },
    agent: { type: 'string', description: 'only this agent (default: every agent in agents.yaml)' },
    json: { type: 'boolean', description: 'print the checks as JSON', default: false },
  },
  async run({ args, data }) {
    const env = (data as CliSession | undefined)?.env ?? processEnv()
    let config: FactoryConfig | null = null
    let configError: FactoryError | undefined
    let path = configPath(args.config, env)
    try {
      ;({ config, path } = loadConfig(args.config, env, { requireEnv: false }))
    } catch (err) {
      configError = asFactoryError(err)
    }
    // An unknown --agent is bad usage (exit 2, naming the agents), not a check.
    const agents = config ? selectAgents(config, args.agent) : []
    // Env first, then the config's GCP project: the token checks say which, and show a refusal with its fix.
    let secrets: SecretStatus[] = []
    if (config) secrets = await resolveSecretSources(planSecrets(config, agents, env), env, config.secrets?.gcp_project)
    const checks = planChecks({ config, configPath: path, configError, agents, env, secrets })
    const hidden = [...(config?.agents.flatMap(agentSecretEnvs) ?? []), ...secrets.map((s) => s.name)]
    const results = await runChecks(checks, realDoctorDeps(env), hidden)
    if (args.json) printJson(results)
    else process.stdout.write(renderChecks(results))
    if (configError) return configError.exitCode
    return results.some((r) => r.status === 'fail') ? 1 : 0
  },
})

export default command

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (the engine CLIs it runs could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
