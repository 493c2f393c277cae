/**
 * The retry policy: what one more failed attempt of a run leads to (another attempt after a
 * backoff, a human once the attempts are used up, or a final failure when retrying cannot help).
 */
import { describe, expect, test } from 'bun:test'
import { planFailure } from '../lib/retry.ts'

const NOW = new Date('2026-12-01T12:00:00.000Z')

describe('planFailure', () => {
  test('a first failed push is retried 10 s later, as attempt 1 of 3', () => {
    expect(planFailure(0, 'git_failed', 3, NOW)).toEqual({
      kind: 'retry',
      attempts: 1,
      delayMs: 10_000,
      nextRetryAt: '2026-12-01T12:00:10.000Z',
    })
  })

  test('each further failure waits twice as long, counted from the failure', () => {
    const later = new Date('2026-12-01T13:00:00.000Z')
    expect(planFailure(1, 'engine_failed', 5, later)).toEqual({
      kind: 'retry',
      attempts: 2,
      delayMs: 20_000,
      nextRetryAt: '2026-12-01T13:00:20.000Z',
    })
    expect(planFailure(3, 'engine_stalled', 5, later)).toMatchObject({
      kind: 'retry',
      attempts: 4,
      nextRetryAt: '2026-12-01T13:01:20.000Z',
    })
  })

  test('the failure that uses the last attempt goes to a human instead of another retry', () => {
    expect(planFailure(2, 'git_failed', 3, NOW)).toEqual({ kind: 'escalate', attempts: 3 })
    expect(planFailure(0, 'git_failed', 1, NOW)).toEqual({ kind: 'escalate', attempts: 1 })
  })

  test('a record already past its budget (the limit was lowered) escalates rather than retrying', () => {
    expect(planFailure(4, 'github_failed', 2, NOW)).toEqual({ kind: 'escalate', attempts: 5 })
  })

  test('a failure retrying cannot fix is final at once, even with attempts left or used up', () => {
    expect(planFailure(0, 'engine_missing', 3, NOW)).toEqual({ kind: 'final', attempts: 1 })
    expect(planFailure(2, 'engine_timeout', 3, NOW)).toEqual({ kind: 'final', attempts: 3 })
    expect(planFailure(0, 'tracker_auth', 1, NOW)).toEqual({ kind: 'final', attempts: 1 })
  })

  test('an unknown error code is retried (a new failure mode is assumed transient)', () => {
    expect(planFailure(0, 'something_new', 3, NOW)).toMatchObject({ kind: 'retry', attempts: 1 })
  })
})
