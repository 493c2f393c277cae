/**
 * Logs of forgotten issues: `$FACTORY_HOME/logs/<agent>/<KEY>/` (transcripts, bootstrap logs) of an
 * issue that has no record any more (pruned after the cleanup grace: reconcile.ts) is removed once
 * nothing in it was written for `log_retention_days`. A directory whose issue is on record is kept,
 * however old. Swept at most every SWEEP_MS per process (it lists and stats directories).
 */
import { readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { sanitizeKey } from './paths.ts'

const SWEEP_MS = 10 * 60_000
const lastSweep = new Map<string, number>()

/** Newest mtime (ms) of a directory and the files directly in it; undefined when it is gone. */
function newestWrite(dir: string): number | undefined {
  const st = statSync(dir, { throwIfNoEntry: false })
  if (!st?.isDirectory()) return undefined
  let out = st.mtimeMs
  for (const name of readdirSync(dir)) out = Math.max(out, statSync(join(dir, name), { throwIfNoEntry: false })?.mtimeMs ?? 0)
  return out
}

/**
 * The issue log directories of `agentLogs` (logs/<agent>) due for removal: no record among
 * `identifiers` and nothing written for `retentionMs`.
 */
export function dueLogDirs(agentLogs: string, identifiers: string[], retentionMs: number, now: Date): string[] {
  const recorded = new Set(identifiers.map(sanitizeKey))
  let names: string[]
  try {
    names = readdirSync(agentLogs)
  } catch {
    return []
  }
  return names
    .filter((n) => !recorded.has(n))
    .map((n) => join(agentLogs, n))
    .filter((dir) => {
      const at = newestWrite(dir)
      return at !== undefined && now.getTime() - at >= retentionMs
    })
}

/** Remove the due log directories (throttled per directory); returns those removed. */
export function pruneLogs(agentLogs: string, identifiers: string[], retentionMs: number, now: Date): string[] {
  const last = lastSweep.get(agentLogs)
  if (last !== undefined && now.getTime() - last < SWEEP_MS) return []
  lastSweep.set(agentLogs, now.getTime())
  const due = dueLogDirs(agentLogs, identifiers, retentionMs, now)
  for (const dir of due) rmSync(dir, { recursive: true, force: true })
  return due
}
