/**
 * This process's own environ block: the NAME=value strings the kernel put on the stack at exec,
 * which /proc/<pid>/environ reads back for any process of the same user (an engine's shell).
 * Deleting from process.env does not touch them; overwriting them in place does (Linux: the block
 * lies between env_start and env_end of /proc/self/stat, in this process's writable stack).
 */
import { readFileSync } from 'node:fs'

/** The start and end address of this process's environ block (/proc/self/stat fields 50 and 51), or undefined. */
function environBlock(): { start: number; end: number } | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'latin1')
    // Fields after the command name, which may hold spaces and parentheses: field 3 onwards.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = Number(fields[50 - 3])
    const end = Number(fields[51 - 3])
    return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start > 0 && end > start ? { start, end } : undefined
  } catch {
    return undefined
  }
}

/** True when no entry of /proc/self/environ named by `isSecret` still has a value. */
export function environClean(isSecret: (name: string) => boolean, text = readFileSync('/proc/self/environ', 'latin1')): boolean {
  return text.split('\0').every((entry) => {
    const eq = entry.indexOf('=')
    return eq <= 0 || eq === entry.length - 1 || !isSecret(entry.slice(0, eq))
  })
}

/**
 * Overwrite with NUL bytes the value of every entry of this process's environ block named by
 * `isSecret`, then read /proc/self/environ back: true only when it shows none of them with a value
 * (false, and possibly nothing changed, when the block cannot be found: the caller re-executes).
 * The process keeps what it read before (process.env is its own copy); `NAME=` stays, empty.
 */
export function wipeEnvironSecrets(isSecret: (name: string) => boolean, ffi: typeof import('bun:ffi')): boolean {
  const where = environBlock()
  if (!where) return false
  try {
    const block = ffi.toBuffer(where.start, 0, where.end - where.start)
    for (let i = 0; i < block.length;) {
      let end = block.indexOf(0, i)
      if (end < 0) end = block.length
      const eq = block.indexOf(0x3d, i) // '='
      if (eq > i && eq < end && isSecret(block.toString('latin1', i, eq))) block.fill(0, eq + 1, end)
      i = end + 1
    }
    return environClean(isSecret)
  } catch {
    return false
  }
}
