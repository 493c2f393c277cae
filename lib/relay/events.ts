/**
 * The worker side of the queue: `GET /events` long-polls (lease now, else wait for a change in
 * the store until `wait` runs out), heartbeat and ack. Delivery metrics are counted here, the one
 * place events leave the relay.
 */
import type { RelayMetrics } from './metrics.ts'
import type { LeasedEvent, RelayStore } from './store.ts'

export interface QueuePolicy {
  leaseMs: number
  maxAttempts: number
}

/** The defaults: 60 s leases, parked after 5 deliveries. */
export const DEFAULT_POLICY: QueuePolicy = { leaseMs: 60_000, maxAttempts: 5 }

/** Longest `wait` a worker may ask for, in seconds (under Cloud Run's and proxies' idle limits). */
export const MAX_WAIT_S = 55

/** Lease events for `worker`, waiting up to `waitMs` for some to arrive; empty when none did. */
export async function longPoll(
  store: RelayStore,
  input: { worker: string; max: number; waitMs: number; signal?: AbortSignal },
  policy: QueuePolicy,
  metrics: RelayMetrics,
  now: () => number = Date.now,
): Promise<LeasedEvent[]> {
  const deadline = now() + input.waitMs
  // Listen before the first lease: a change committed while a lease query runs must still wake us.
  let changed = false
  let wake: (() => void) | undefined
  const off = store.onChange(() => {
    changed = true
    wake?.()
  })
  try {
    for (;;) {
      if (input.signal?.aborted) return []
      changed = false
      const leased = await store.lease({
        worker: input.worker,
        max: input.max,
        leaseMs: policy.leaseMs,
        maxAttempts: policy.maxAttempts,
        now: now(),
      })
      if (leased.length > 0) {
        count(leased, metrics, now())
        return leased
      }
      const left = deadline - now()
      if (left <= 0) return []
      if (changed) continue
      // Leases that run out are only noticed by a lease call, so wake at least once a second.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          input.signal?.removeEventListener('abort', done)
          wake = undefined
          resolve()
        }
        const timer = setTimeout(done, Math.min(left, 1_000))
        wake = done
        input.signal?.addEventListener('abort', done, { once: true })
      })
    }
  } finally {
    off()
  }
}

function count(leased: LeasedEvent[], metrics: RelayMetrics, at: number): void {
  for (const e of leased) {
    if (e.attempts > 1) metrics.redelivered++
    else {
      metrics.delivered++
      metrics.deliverySeconds.observe(Math.max(0, at - e.receivedAt) / 1000)
    }
  }
}
