/**
 * The poll's health per agent (when it last succeeded, its last error) for status, in a small
 * file of its own, $FACTORY_HOME/poll/<agent>.json: an idle tick rewrites this, never state.json
 * (invariant "small-state"). Written atomically (temp file, rename) without fsync: lost or corrupt,
 * it only means "never polled" in status.
 */
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { sanitizeKey } from './paths.ts'
import { writeDurableSync } from './write-durable.ts'

export interface PollHealth {
  lastPollAt?: string
  lastPollError?: { code: string; message: string; at: string }
}

/** Where the agent's poll health lives. */
export function pollHealthPath(home: string, agent: string): string {
  return join(home, 'poll', `${sanitizeKey(agent)}.json`)
}

/** The agent's poll health; `fallback` (an older state.json's fields) when the file is absent or unreadable. */
export function readPollHealth(home: string, agent: string, fallback: PollHealth = {}): PollHealth {
  try {
    const raw = JSON.parse(readFileSync(pollHealthPath(home, agent), 'utf8')) as PollHealth
    return { lastPollAt: raw.lastPollAt, lastPollError: raw.lastPollError }
  } catch {
    return { lastPollAt: fallback.lastPollAt, lastPollError: fallback.lastPollError }
  }
}

/** Record a successful poll (`at`) or a failed one (`error`, the last success kept). */
export function writePollHealth(home: string, agent: string, update: { at: string; error?: { code: string; message: string } }): void {
  const path = pollHealthPath(home, agent)
  mkdirSync(join(home, 'poll'), { recursive: true, mode: 0o700 })
  const next: PollHealth = update.error
    ? { lastPollAt: readPollHealth(home, agent).lastPollAt, lastPollError: { ...update.error, at: update.at } }
    : { lastPollAt: update.at }
  const tmp = `${path}.${process.pid}.tmp`
  try {
    // No fsync: after a crash the file may hold the previous poll, or nothing ("never polled"), which is all it can cost.
    writeDurableSync(tmp, `${JSON.stringify(next)}\n`, 0o600, { fsync: false })
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}
