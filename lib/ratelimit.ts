/**
 * One view of Linear's rate limit per agent token, shared by every process on this FACTORY_HOME
 * (the driver and its run children): when any of them is told RATELIMITED, it records the reset
 * time in a small file, and none of them sends another request before that time.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

export interface RateGate {
  /** Milliseconds to wait before the next request may be sent (0 = go). */
  waitMs(now: number): number
  /** Record that requests are refused until `resetAt` (epoch ms). */
  block(resetAt: number): void
}

/** A gate kept in `path` (JSON `{ resetAt }`); unreadable or missing means open. */
export function fileRateGate(path: string): RateGate {
  return {
    waitMs(now) {
      try {
        const { resetAt } = JSON.parse(readFileSync(path, 'utf8')) as { resetAt?: number }
        return typeof resetAt === 'number' && resetAt > now ? resetAt - now : 0
      } catch {
        return 0
      }
    },
    block(resetAt) {
      mkdirSync(dirname(path), { recursive: true })
      const tmp = `${path}.${process.pid}.tmp`
      writeFileSync(tmp, JSON.stringify({ resetAt, at: new Date().toISOString() }))
      renameSync(tmp, path)
    },
  }
}

/** A gate that only lives in memory (one process). */
export function memoryRateGate(): RateGate {
  let until = 0
  return {
    waitMs: (now) => Math.max(0, until - now),
    block: (resetAt) => {
      until = Math.max(until, resetAt)
    },
  }
}
