/**
 * The one backoff formula and the three policies that use it: how long the factory waits after
 * a failed run, after Linear failed a poll, and between its quick in-request retries.
 */
import { describe, expect, test } from 'bun:test'
import { backoffMs, POLL_RETRY, REQUEST_RETRY, RUN_RETRY } from '../lib/backoff.ts'

const SECOND = 1_000
const MINUTE = 60 * SECOND

describe('backoffMs', () => {
  test('a failed run is retried after 10 s, then 20 s, 40 s, 80 s, 160 s, and never more than 5 min apart', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffMs(n, RUN_RETRY))).toEqual([
      10 * SECOND,
      20 * SECOND,
      40 * SECOND,
      80 * SECOND,
      160 * SECOND,
      5 * MINUTE,
      5 * MINUTE,
      5 * MINUTE,
    ])
  })

  test('polls after a Linear outage wait 30 s, then 60 s, 120 s, 240 s, then 5 min at most', () => {
    expect([1, 2, 3, 4, 5, 10].map((n) => backoffMs(n, POLL_RETRY))).toEqual([
      30 * SECOND,
      60 * SECOND,
      120 * SECOND,
      240 * SECOND,
      5 * MINUTE,
      5 * MINUTE,
    ])
  })

  test('the tracker retries a request after 1 s, 2 s, 4 s, 8 s, then 15 s at most', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, REQUEST_RETRY))).toEqual([1, 2, 4, 8, 15, 15].map((s) => s * SECOND))
  })

  test('a count of zero or less (no failure yet) waits the base delay, never less', () => {
    expect(backoffMs(0, RUN_RETRY)).toBe(10 * SECOND)
    expect(backoffMs(-3, POLL_RETRY)).toBe(30 * SECOND)
  })

  test('a delay exactly at the cap stays at the cap, and a base above the cap is cut to it', () => {
    expect(backoffMs(3, { baseMs: 250, capMs: 1_000 })).toBe(1_000)
    expect(backoffMs(1, { baseMs: 5_000, capMs: 2_000 })).toBe(2_000)
  })
})
