/**
 * The retry policy: what one more failed attempt of a run leads to. Pure; the state machine
 * (phases.ts) applies it, the runner asks it whether a failed engine result is reported or retried.
 */
import { backoffMs, RUN_RETRY } from './backoff.ts'
import { isRetryable } from './errors.ts'

export type FailurePlan =
  | { kind: 'retry'; attempts: number; nextRetryAt: string; delayMs: number }
  | { kind: 'escalate'; attempts: number }
  | { kind: 'final'; attempts: number }

/** What one more failed attempt leads to: another attempt (with backoff), a human (attempts used up), or nothing (cannot help). */
export function planFailure(attemptsBefore: number, code: string, maxAttempts: number, now: Date): FailurePlan {
  const attempts = attemptsBefore + 1
  if (!isRetryable(code)) return { kind: 'final', attempts }
  if (attempts >= maxAttempts) return { kind: 'escalate', attempts }
  const delayMs = backoffMs(attempts, RUN_RETRY)
  return { kind: 'retry', attempts, delayMs, nextRetryAt: new Date(now.getTime() + delayMs).toISOString() }
}
