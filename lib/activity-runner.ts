/**
 * Posts one run's activity stream (activities.ts) to its agent session, in order, one request at
 * a time: engine events go in synchronously (EngineRunInput.onEvent), a timer sends the activity
 * that waited for its interval, and `finish` sends the final one after everything queued. A
 * `tracker_refused` (Linear's userError: the session is gone) stops the stream for good; any other
 * failure of a progress post is logged and the run goes on (the client already retried it).
 */
import type { FinalKind, ActivityStream, StreamPost } from './activities.ts'
import type { EngineEvent } from './engines/types.ts'
import { FactoryError } from './errors.ts'
import type { AgentSessionClient } from './tracker/agent-session.ts'

export interface ActivityRunnerDeps {
  /** Send one post (an activity or the whole plan); throws a FactoryError when it could not. */
  post(p: StreamPost): Promise<unknown>
  /** Call `fn` after `ms`; returns a cancel function. */
  setTimer(fn: () => void, ms: number): () => void
  log(level: 'info' | 'warn', line: string): void
}

export interface ActivityRunResult {
  /** posted: Linear has the final activity (now or from an earlier attempt); refused: the session is gone; failed: see error. */
  final: 'posted' | 'refused' | 'failed'
  error?: FactoryError
  /** Why the stream stopped (a userError), if it did. */
  stopped: string | null
  posted: number
  dropped: number
  plans: number
  /** Progress posts lost to failures other than a userError. */
  failed: number
}

export interface ActivityRunner {
  /** Give the engine this as its onEvent. */
  onEvent(e: EngineEvent): void
  /** Post the final activity after everything queued; resolves once it was sent (never rejects). */
  finish(kind: FinalKind, body: string): Promise<ActivityRunResult>
  /** Send what waits for its interval now and wait for every post queued (the final goes elsewhere). */
  drain(): Promise<void>
}

/** deps.post for a session through the relay: activities with their ids, plans as session updates. */
export function sessionPost(client: AgentSessionClient, sessionId: string): ActivityRunnerDeps['post'] {
  return (p) =>
    p.kind === 'plan'
      ? client.updateSession(sessionId, { plan: p.plan })
      : client.postActivity({ id: p.id, sessionId, content: p.content, ephemeral: p.ephemeral || undefined })
}

const defaultTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms)
  t.unref?.()
  return () => clearTimeout(t)
}

/** The runner of `stream`, posting through `deps.post`. */
export function activityRunner(opts: {
  stream: ActivityStream
  deps: Pick<ActivityRunnerDeps, 'post'> & Partial<ActivityRunnerDeps>
  now?: () => number
}): ActivityRunner {
  const { stream } = opts
  const deps: ActivityRunnerDeps = { setTimer: defaultTimer, log: () => {}, ...opts.deps }
  const now = opts.now ?? Date.now
  let tail: Promise<void> = Promise.resolve()
  let cancel: (() => void) | null = null
  let timerAt = Infinity
  let failed = 0
  // After a progress post failed (the relay or Linear is down), later progress is dropped, not
  // retried one by one: a long outage must not hold up the report (the final is still sent).
  let progressOff = false
  let finalOutcome: Pick<ActivityRunResult, 'final' | 'error'> = { final: 'failed' }

  async function send(p: StreamPost): Promise<void> {
    if (stream.stopped) return
    const final = p.kind === 'activity' && p.final
    if (progressOff && !final) return void failed++
    try {
      await deps.post(p)
      if (p.kind === 'activity' && p.final) finalOutcome = { final: 'posted' }
    } catch (err) {
      const e = err instanceof FactoryError ? err : new FactoryError('internal', err instanceof Error ? err.message : String(err))
      if (e.code === 'tracker_refused') {
        stream.stop(e.message)
        deps.log('warn', `agent session: ${e.message}; no more activities for this session`)
        if (p.kind === 'activity' && p.final) finalOutcome = { final: 'refused', error: e }
        return
      }
      if (p.kind === 'activity' && p.final) finalOutcome = { final: 'failed', error: e }
      else {
        failed++
        progressOff = true
        deps.log(
          'warn',
          `agent session: a progress update was not posted (${e.message}); no more progress for this run, the final response still goes`,
        )
      }
    }
  }

  function enqueue(posts: StreamPost[]): void {
    for (const p of posts) tail = tail.then(() => send(p))
    schedule()
  }

  function schedule(): void {
    const at = stream.nextFlushAt()
    if (at === null || at >= timerAt) return
    cancel?.()
    timerAt = at
    cancel = deps.setTimer(
      () => {
        cancel = null
        timerAt = Infinity
        enqueue(stream.flush())
      },
      Math.max(0, at - now()),
    )
  }

  return {
    onEvent(e) {
      enqueue(stream.push(e))
    },
    async drain() {
      cancel?.()
      cancel = null
      timerAt = Infinity
      for (const p of stream.flush()) tail = tail.then(() => send(p))
      await tail
    },
    async finish(kind, body) {
      cancel?.()
      cancel = null
      timerAt = Infinity
      const posts = stream.finish(kind, body)
      for (const p of posts) tail = tail.then(() => send(p))
      await tail
      if (stream.stopped && finalOutcome.final === 'failed' && !finalOutcome.error) finalOutcome = { final: 'refused' }
      return { ...finalOutcome, stopped: stream.stopped, ...stream.counts(), failed }
    },
  }
}
