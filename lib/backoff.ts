/**
 * The one backoff formula: `base` after the first failure, doubling, capped. Retries of a run,
 * polls after a Linear outage and the tracker's quick retries all use it with their own numbers.
 */
export interface BackoffPolicy {
  baseMs: number
  capMs: number
}

/** Retries of a failed run: 10 s, doubling, at most 5 min. */
export const RUN_RETRY: BackoffPolicy = { baseMs: 10_000, capMs: 300_000 }
/** Polls after Linear failed: 30 s, doubling, at most 5 min. */
export const POLL_RETRY: BackoffPolicy = { baseMs: 30_000, capMs: 300_000 }
/** The tracker's quick in-request retries: 1 s, doubling, at most 15 s. */
export const REQUEST_RETRY: BackoffPolicy = { baseMs: 1_000, capMs: 15_000 }

/** Delay after the `failures`-th consecutive failure (1 = the first): base * 2^(failures-1), capped. */
export function backoffMs(failures: number, policy: BackoffPolicy): number {
  return Math.min(policy.baseMs * 2 ** Math.max(0, failures - 1), policy.capMs)
}
