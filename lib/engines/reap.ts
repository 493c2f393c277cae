/**
 * Processes an engine started outside its process group. Claude Code runs each Bash command in a
 * new process group, so `cmd &` outlives the kill of the engine's group (proc.run) and even a
 * normal exit. Every engine run is tagged with a unique env variable, which its descendants
 * inherit; after the run we SIGKILL whatever still carries the tag. Linux only (/proc); elsewhere
 * a no-op.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** The env variable that marks every process of one engine run. */
export const RUN_TAG_ENV = 'ROSE_ENGINE_RUN'

/** A fresh tag value for one run. */
export function newRunTag(): string {
  return crypto.randomUUID()
}

/** Pids of live processes (other than us) whose environment carries `RUN_TAG_ENV=tag`. */
export function taggedProcesses(tag: string): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  const needle = `\0${RUN_TAG_ENV}=${tag}\0`
  const pids: number[] = []
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (`\0${readFileSync(`/proc/${name}/environ`, 'latin1')}\0`.includes(needle)) pids.push(Number(name))
    } catch {} // gone already, or not ours to read
  }
  return pids
}

/** SIGKILL every process still carrying the run's tag; returns the pids it signalled. */
export function reapTagged(tag: string): number[] {
  const pids = taggedProcesses(tag)
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  return pids
}
