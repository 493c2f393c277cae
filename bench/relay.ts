#!/usr/bin/env bun
/**
 * The relay on 127.0.0.1, one relay process per store, measured in one run (compare ratios):
 * durable accept rate and latency of POST /webhooks/linear (32 concurrent senders), and the time
 * from a webhook's send to the event in a long-polling worker's hands (one at a time).
 * Targets (SQLite, 2 cores): >= 2,000 accepts/s, p99 < 20 ms; webhook -> worker p50 < 50 ms, p99 < 250 ms.
 * Prints a Markdown section for BENCHMARKS.md.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { postgresUnavailable, startPostgres } from '../test/fakes/postgres.ts'
import { spawnRelay } from '../test/fakes/relay-process.ts'
import { ack, delivery, poll, post, sessionEvent } from '../test/fakes/webhooks.ts'

const ACCEPTS = Number(process.env.BENCH_ACCEPTS ?? 5000)
const CONCURRENCY = 32
const HOPS = Number(process.env.BENCH_HOPS ?? 200)

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!
const ms = (x: number) => `${x.toFixed(1)} ms`

interface StoreUnderTest {
  name: string
  args: string[]
  cleanup(): Promise<void>
}

async function stores(dir: string): Promise<StoreUnderTest[]> {
  const list: StoreUnderTest[] = [
    { name: 'SQLite (--local-queue)', args: ['--local-queue', join(dir, 'queue.db')], cleanup: async () => {} },
  ]
  const why = postgresUnavailable()
  if (why) console.error(`PostgreSQL left out: ${why}`)
  else {
    const server = await startPostgres()
    const url = await server.createDatabase()
    list.push({ name: 'PostgreSQL (--queue-url)', args: ['--queue-url', url], cleanup: () => server.stop() })
  }
  return list
}

async function measure(s: StoreUnderTest, dir: string) {
  const relay = await spawnRelay(s.args, { FACTORY_HOME: dir })
  try {
    // Warm up (JIT, connections, the store's pages).
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: `warm-${i}` })))),
    )
    const latencies: number[] = []
    let next = 0
    const started = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < ACCEPTS) {
          const i = next++
          const d = delivery(sessionEvent({ action: 'created', sessionId: `s-${i}` }))
          const t = performance.now()
          const res = await post(relay.url, d)
          latencies.push(performance.now() - t)
          if (res.status !== 200) throw new Error(`webhook ${i}: ${res.status}`)
          await res.arrayBuffer()
        }
      }),
    )
    const rate = ACCEPTS / ((performance.now() - started) / 1000)
    // Drain what was accepted so the hop measurement starts from an empty queue.
    for (;;) {
      const events = await poll(relay.url, 'drain', 0, 100)
      if (events.length === 0) break
      await ack(
        relay.url,
        'drain',
        events.map((e) => e.id),
      )
    }
    const hops: number[] = []
    for (let i = 0; i < HOPS; i++) {
      const waiting = poll(relay.url, 'worker', 25, 10)
      await Bun.sleep(2) // the poll is parked on the relay before the webhook arrives
      const t = performance.now()
      await post(relay.url, delivery(sessionEvent({ action: 'created', sessionId: `hop-${i}` })))
      const events = await waiting
      hops.push(performance.now() - t)
      await ack(
        relay.url,
        'worker',
        events.map((e) => e.id),
      )
    }
    return { rate, p50: pct(latencies, 50), p99: pct(latencies, 99), hop50: pct(hops, 50), hop99: pct(hops, 99) }
  } finally {
    await relay.stop()
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bench-relay-'))
const list = await stores(dir)
const rows: string[] = []
try {
  for (const s of list) {
    const r = await measure(s, dir)
    rows.push(
      `| ${s.name} | ${Math.round(r.rate).toLocaleString('en')} /s | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.hop50)} | ${ms(r.hop99)} |`,
    )
  }
} finally {
  for (const s of list) await s.cleanup()
  rmSync(dir, { recursive: true, force: true })
}
console.log(`## Relay: durable webhook accepts and webhook -> worker latency

\`bun bench/relay.ts\` (${ACCEPTS.toLocaleString('en')} webhooks from ${CONCURRENCY} concurrent senders, then ${HOPS} one-at-a-time hops to a long-polling worker; relay and clients share this 2-core machine). Targets on SQLite: >= 2,000 accepts/s and p99 < 20 ms; webhook -> worker p50 < 50 ms, p99 < 250 ms.

| store | accepted | webhook p50 | webhook p99 | webhook -> worker p50 | webhook -> worker p99 |
|---|---|---|---|---|---|
${rows.join('\n')}`)
