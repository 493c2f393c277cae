/**
 * The relay's counters and latency histograms, rendered as Prometheus text for `GET /metrics`.
 * Per instance (each relay instance counts what it did); queue depths come from the store.
 */

/** Histogram bucket upper bounds, in seconds. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

class Histogram {
  readonly counts = new Array<number>(BUCKETS.length).fill(0)
  sum = 0
  count = 0
  observe(seconds: number): void {
    this.sum += seconds
    this.count++
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) this.counts[i]!++
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
    BUCKETS.forEach((b, i) => lines.push(`${name}_bucket{le="${b}"} ${this.counts[i]}`))
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`)
    return lines
  }
}

/** One relay instance's metrics. */
export class RelayMetrics {
  accepted = 0
  duplicates = 0
  ignored = 0
  readonly rejected = new Map<string, number>()
  delivered = 0
  redelivered = 0
  acked = 0
  thoughtsPosted = 0
  thoughtsFailed = 0
  readonly webhookSeconds = new Histogram()
  readonly deliverySeconds = new Histogram()

  reject(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1)
  }

  /** Prometheus text exposition; `gauges` are read from the store at scrape time. */
  render(gauges: { queue: Record<string, number>; leaseExpiries: number; deadLetters: number }): string {
    const counter = (name: string, help: string, value: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`]
    const lines = [
      ...counter('relay_webhooks_accepted_total', 'Webhooks durably enqueued.', this.accepted),
      ...counter(
        'relay_webhooks_duplicate_total',
        'Webhooks answered 200 and not enqueued again (same delivery or same meaning).',
        this.duplicates,
      ),
      ...counter('relay_webhooks_ignored_total', 'Signed webhooks of other types, answered 200.', this.ignored),
      '# HELP relay_webhooks_rejected_total Webhooks refused with a 4xx, by reason.',
      '# TYPE relay_webhooks_rejected_total counter',
      ...[...this.rejected].map(([reason, n]) => `relay_webhooks_rejected_total{reason="${reason}"} ${n}`),
      ...counter('relay_events_delivered_total', 'Events handed to a worker (first deliveries).', this.delivered),
      ...counter('relay_events_redelivered_total', 'Events handed to a worker again after a lease ran out.', this.redelivered),
      ...counter('relay_events_acked_total', 'Events acked by the worker holding them.', this.acked),
      ...counter('relay_lease_expiries_total', 'Leases that ran out (store-wide).', gauges.leaseExpiries),
      ...counter('relay_first_thoughts_posted_total', 'First thought activities posted on created.', this.thoughtsPosted),
      ...counter('relay_first_thoughts_failed_total', 'First thought activities that could not be posted.', this.thoughtsFailed),
      '# HELP relay_queue_events Events in the store by state.',
      '# TYPE relay_queue_events gauge',
      ...Object.entries(gauges.queue).map(([state, n]) => `relay_queue_events{state="${state}"} ${n}`),
      '# HELP relay_dead_letters Parked events waiting for an admin.',
      '# TYPE relay_dead_letters gauge',
      `relay_dead_letters ${gauges.deadLetters}`,
      ...this.webhookSeconds.render('relay_webhook_seconds', 'Time from request to answer for POST /webhooks/linear.'),
      ...this.deliverySeconds.render('relay_delivery_seconds', 'Time from webhook accepted to the event in a worker hands.'),
    ]
    return lines.join('\n') + '\n'
  }
}
