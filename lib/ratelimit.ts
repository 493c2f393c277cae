/**
 * One view of Linear's rate limit per agent token, shared by every process on this FACTORY_HOME
 * (the driver and its run children): when any of them is told RATELIMITED, it records the reset
 * time in a small file, and none of them sends another request before that time.
 *
 * A reset is never trusted further than MAX_RATE_LIMIT_WAIT_MS ahead (a bogus reset in the year
 * 2100 once stopped an agent for good, across restarts): it is clamped where it is stored and
 * again where it is read (against when it was stored), so after at most an hour Linear is asked
 * again and gives a fresh reset if it still refuses.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/** The longest the factory waits for one rate-limit reset before asking Linear again. */
export const MAX_RATE_LIMIT_WAIT_MS = 60 * 60_000

/** `resetAt` (epoch ms), clamped to at most MAX_RATE_LIMIT_WAIT_MS after `from`; NaN or absent means `from`. */
export function clampResetAt(resetAt: number, from: number): number {
  if (!Number.isFinite(resetAt)) return from
  return Math.min(resetAt, from + MAX_RATE_LIMIT_WAIT_MS)
}

export interface RateGate {
  /** Milliseconds to wait before the next request may be sent (0 = go). */
  waitMs(now: number): number
  /** Record that requests are refused until `resetAt` (epoch ms; clamped to an hour after `now`). */
  block(resetAt: number, now?: number): void
}

/** A gate kept in `path` (JSON `{ resetAt, at }`); unreadable or missing means open. */
export function fileRateGate(path: string): RateGate {
  return {
    waitMs(now) {
      try {
        const { resetAt, at } = JSON.parse(readFileSync(path, 'utf8')) as { resetAt?: number; at?: string }
        if (typeof resetAt !== 'number') return 0
        // Stored when? The earlier of the file's own note and its mtime (a file written by an older
        // version, or edited by hand, is still bounded), and never later than now.
        const mtime = statSync(path).mtimeMs
        const noted = typeof at === 'string' ? Date.parse(at) : Number.NaN
        const storedAt = Math.min(now, mtime, Number.isFinite(noted) ? noted : mtime)
        const until = clampResetAt(resetAt, storedAt)
        return until > now ? until - now : 0
      } catch {
        return 0
      }
    },
    block(resetAt, now = Date.now()) {
      mkdirSync(dirname(path), { recursive: true })
      const tmp = `${path}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify({ resetAt: clampResetAt(resetAt, now), at: new Date(now).toISOString() }))
      renameSync(tmp, path)
    },
  }
}

/** A gate that only lives in memory (one process). */
export function memoryRateGate(): RateGate {
  let until = 0
  return {
    waitMs: (now) => Math.max(0, until - now),
    block: (resetAt, now = Date.now()) => {
      until = Math.max(until, clampResetAt(resetAt, now))
    },
  }
}
