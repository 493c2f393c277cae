/**
 * What the `rose-factory` command does with its first word before any verb is loaded: print the
 * version, turn `help <verb>` into `<verb> --help`, list the verbs, or run a verb. Pure.
 */

export type TopLevel =
  | { kind: 'version' }
  /** The verb listing (`--help`, `help`): rendered from each verb's meta only. */
  | { kind: 'list' }
  | { kind: 'run'; args: string[] }

/** Decide what `rawArgs` (argv after the command) asks of the top level; `verbs` are the known verb names. */
export function topLevel(rawArgs: readonly string[], verbs: readonly string[]): TopLevel {
  const [first, ...rest] = rawArgs
  if (first === '--version' || first === '-v' || first === 'version') return { kind: 'version' }
  if (first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) return { kind: 'list' }
  // `help config check` is `config check --help`; an unknown verb falls through to the usual usage error.
  if (first === 'help') return verbs.includes(rest[0]!) ? { kind: 'run', args: [...rest, '--help'] } : { kind: 'run', args: rest }
  return { kind: 'run', args: [...rawArgs] }
}
