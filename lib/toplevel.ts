/**
 * What the `rose-factory` command's first words ask before any verb is loaded. Pure.
 */

/** True when `rawArgs` (argv after the command) is exactly `--help` or `-h`: the verb listing, nothing else. */
export function wantsListing(rawArgs: readonly string[]): boolean {
  return rawArgs.length === 1 && (rawArgs[0] === '--help' || rawArgs[0] === '-h')
}

/** The arguments `help <verb> [<sub>]` stands for: `<verb> [<sub>] --help` (an unknown verb then fails as usual, exit 2). */
export function helpArgs(words: readonly string[]): string[] {
  return [...words, '--help']
}
