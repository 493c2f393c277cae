#!/usr/bin/env bun
/** uninstall-daemon: stop and remove the user service install-daemon made. */
import { homedir } from 'node:os'
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { uninstallDaemon } from '../lib/daemon.ts'
import { FactoryError } from '../lib/errors.ts'

const command = defineCommand({
  meta: { name: 'uninstall-daemon', description: 'Stop, disable and remove the user service install-daemon installed.' },
  args: { name: { type: 'string', description: 'service name given to install-daemon', default: 'rose-factory' } },
  run({ args }) {
    const platform = process.platform
    if (platform !== 'linux' && platform !== 'darwin')
      throw new FactoryError('usage', `uninstall-daemon supports Linux and macOS, not ${platform}`, { fix: 'remove the service by hand' })
    const lines = uninstallDaemon(platform, args.name, { home: process.env.HOME || homedir(), uid: process.getuid?.() ?? 0 })
    for (const line of lines) process.stdout.write(`${line}\n`)
    return 0
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
