/**
 * Shell completion generated from the citty command tree (verbs, their subcommands and flags), so
 * a new verb or flag is completed without anyone editing a list. The script is plain data plus a
 * small walker: the words typed so far select a node; a word starting with `-` completes that
 * node's flags, else its subcommands; after a flag that takes a value the shell completes files.
 */
import type { ArgsDef, CommandDef } from 'citty'

/** One command of the tree: its path of subcommand names, the subcommands under it, its flags. */
export interface CommandNode {
  path: string[]
  subs: string[]
  flags: string[]
  /** Flags that take a value (the next word is the value, not a subcommand). */
  valueFlags: string[]
}

async function resolve<T>(value: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value
}

/** Every node of `cmd`'s tree, depth first (loads every lazily imported subcommand). */
export async function commandNodes(cmd: CommandDef<any>, path: string[] = []): Promise<CommandNode[]> {
  const args: ArgsDef = (await resolve(cmd.args)) ?? {}
  const subCommands = (await resolve(cmd.subCommands)) ?? {}
  const flags = ['--help']
  const valueFlags: string[] = []
  for (const [name, def] of Object.entries(args)) {
    if (def.type === 'positional') continue
    const alias = (def as { alias?: string | string[] }).alias
    const names = [`--${name}`, ...(Array.isArray(alias) ? alias : alias ? [alias] : []).map((a) => (a.length === 1 ? `-${a}` : `--${a}`))]
    flags.push(...names)
    if (def.type !== 'boolean') valueFlags.push(...names)
  }
  const node: CommandNode = { path, subs: Object.keys(subCommands), flags, valueFlags }
  const below: CommandNode[] = []
  for (const [name, sub] of Object.entries(subCommands)) below.push(...(await commandNodes(await resolve(sub), [...path, name])))
  return [node, ...below]
}

const fn = (prog: string) => `_${prog.replace(/[^A-Za-z0-9]/g, '_')}`
const shWords = (xs: string[]) => xs.join(' ')

/** The lookup functions both shells share: subcommands, flags and value-taking flags of a path (a string of names). */
function lookups(prog: string, nodes: CommandNode[]): string {
  const table = (what: string, pick: (n: CommandNode) => string[]) =>
    [
      `${fn(prog)}_${what}() {`,
      '  case "$1" in',
      ...nodes.map((n) => `    "${n.path.join(' ')}") echo "${shWords(pick(n))}" ;;`),
      '  esac',
      '}',
    ].join('\n')
  return [table('subs', (n) => n.subs), table('flags', (n) => n.flags), table('value_flags', (n) => n.valueFlags)].join('\n')
}

/** The path the typed words select (known subcommand names in order; a flag's value is skipped). Shared by both shells. */
function walker(prog: string): string {
  const f = fn(prog)
  return `${f}_path() {
  local at="" skip=0 w
  for w in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$w" in
      --) break ;;
      -*) case " $(${f}_value_flags "$at") " in *" $w "*) skip=1 ;; esac ;;
      *) case " $(${f}_subs "$at") " in *" $w "*) at="\${at:+$at }$w" ;; esac ;;
    esac
  done
  echo "$at"
}`
}

/** The completion script for `shell` (bash or zsh) of the command `prog` with the tree `nodes`. */
export function completionScript(shell: 'bash' | 'zsh', prog: string, nodes: CommandNode[]): string {
  const f = fn(prog)
  const head = lookups(prog, nodes) + '\n' + walker(prog)
  if (shell === 'bash')
    return `# bash completion for ${prog}: add \`eval "$(${prog} completion bash)"\` to ~/.bashrc
${head}
${f}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} at
  at=$(${f}_path "\${COMP_WORDS[@]:1:COMP_CWORD-1}")
  COMPREPLY=()
  case " $(${f}_value_flags "$at") " in *" $prev "*) return 0 ;; esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(${f}_flags "$at")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(${f}_subs "$at")" -- "$cur"))
  fi
}
complete -o default -F ${f} ${prog}
`
  return `#compdef ${prog}
# zsh completion for ${prog}: add \`eval "$(${prog} completion zsh)"\` to ~/.zshrc (after compinit)
${head}
${f}() {
  local cur=\${words[CURRENT]} prev=\${words[CURRENT-1]} at found
  at=$(${f}_path "\${(@)words[2,CURRENT-1]}")
  case " $(${f}_value_flags "$at") " in *" $prev "*) _files; return ;; esac
  if [[ $cur == -* ]]; then
    found=$(${f}_flags "$at")
    compadd -- \${=found}
  else
    found=$(${f}_subs "$at")
    if [[ -n $found ]]; then compadd -- \${=found}; else _files; fi
  fi
}
compdef ${f} ${prog}
`
}
