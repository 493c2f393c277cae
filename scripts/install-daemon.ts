#!/usr/bin/env bun
/** install-daemon: run rose-factory as a user service (systemd --user on Linux, launchd on macOS). */
import { homedir } from 'node:os'
import { defineCommand } from 'citty'
import { type CliSession, isEntry, runCli } from '../lib/cli.ts'
import { factoryHome } from '../lib/config-path.ts'
import { applyDaemon, daemonRequest, launcherPath, planDaemon } from '../lib/daemon.ts'
import { processEnv } from '../lib/secret-channel.ts'

const command = defineCommand({
  meta: {
    name: 'install-daemon',
    description:
      'Install and start rose-factory as a user service: `install-daemon --env-file ~/rose-factory/daemon.env -- start` (the words after -- are its arguments; default: start).',
  },
  args: {
    name: { type: 'string', description: 'service name (systemd unit / launchd label)', default: 'rose-factory' },
    'env-file': {
      type: 'string',
      description: 'KEY=VALUE file with the tokens the service needs (systemd EnvironmentFile)',
      valueHint: 'FILE',
    },
    print: { type: 'boolean', description: 'print the unit (or plist) and the commands; write and run nothing', default: false },
  },
  run({ args, rawArgs, data }) {
    const env = (data as CliSession | undefined)?.env ?? processEnv()
    const dashDash = rawArgs.indexOf('--')
    const factoryArgs = dashDash >= 0 && dashDash < rawArgs.length - 1 ? rawArgs.slice(dashDash + 1) : ['start']
    const home = env.HOME || homedir()
    // What the service keeps of this shell: PATH (git, the engine CLIs) and FACTORY_HOME when set. Never a token.
    const keepEnv: Record<string, string> = { PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin' }
    if (env.FACTORY_HOME) keepEnv.FACTORY_HOME = factoryHome(env)
    const req = daemonRequest({
      platform: process.platform,
      name: args.name,
      envFile: args['env-file'],
      args: factoryArgs,
      paths: { home, factoryHome: factoryHome(env), launcher: launcherPath(), uid: process.getuid?.() ?? 0 },
      keepEnv,
      print: args.print,
    })
    const plan = planDaemon(req)
    if (args.print) {
      process.stdout.write(`# ${plan.file.path}\n${plan.file.content}\n# then:\n${plan.commands.map((c) => `${c.join(' ')}\n`).join('')}`)
      return 0
    }
    for (const line of applyDaemon(plan, req.platform)) process.stdout.write(`${line}\n`)
    process.stdout.write(
      req.platform === 'linux'
        ? `logs: journalctl --user -u ${req.name} -f; stop: rose-factory uninstall-daemon --name ${req.name}\n`
        : `logs: ${plan.dirs[0]}/${req.name}.err.log; stop: rose-factory uninstall-daemon --name ${req.name} (a changed env file needs install-daemon again)\n`,
    )
    return 0
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
