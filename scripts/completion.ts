#!/usr/bin/env bun
/** completion: print the bash or zsh completion script of rose-factory (its verbs and each verb's flags). */
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { commandNodes, completionScript } from '../lib/completion.ts'
import { FactoryError } from '../lib/errors.ts'

const command = defineCommand({
  meta: {
    name: 'completion',
    description:
      'Print the shell completion script: `eval "$(rose-factory completion bash)"` in ~/.bashrc (zsh: completion zsh, after compinit).',
  },
  args: { shell: { type: 'positional', description: 'bash or zsh', valueHint: 'bash|zsh', required: true } },
  async run({ args }) {
    if (args.shell !== 'bash' && args.shell !== 'zsh')
      throw new FactoryError('usage', `unknown shell "${args.shell}"`, { fix: 'use: rose-factory completion bash, or completion zsh' })
    // The whole tree, every verb loaded: completion is generated, never a hand-kept list.
    const { rootCommand: root } = await import('../lib/verbs.ts')
    process.stdout.write(completionScript(args.shell, 'rose-factory', await commandNodes(root)))
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
