/**
 * The intake step of an agent_session agent (its "poll"): one long poll of the relay, and for each
 * event, in order, the state machine event it means, recorded durably, then the ack. A failure
 * leaves the event unacked (the relay hands it out again after its lease), so nothing is lost; an
 * event that cannot be run (no issue, a payload we cannot read) is acked and logged.
 *   created        -> session_created (the issue read through the relay; Linear's promptContext kept)
 *   prompted       -> prompted with the reply (a live run takes it in the next run, right after)
 *   prompted+stop  -> stop_requested (the run's watcher stops the engine; a final response follows)
 */
import { hostname } from 'node:os'
import { type AgentEvent, readAgentEvent } from '../agent-event.ts'
import type { AgentContext } from '../context.ts'
import { asFactoryError } from '../errors.ts'
import type { PhaseEvent } from '../phases.ts'
import type { RelayClient } from '../relay-client.ts'
import { isInFlight } from '../phases.ts'
import { answerStop } from '../session-run.ts'
import { findRecord, readState, updateRecord } from '../state.ts'

/** The release reason of a stop pressed in Linear (the run answers it with a final response). */
export const STOPPED_IN_LINEAR = 'stopped in Linear'

export interface IntakeItem {
  sessionId: string
  action: 'created' | 'prompted' | 'stop' | 'invalid'
  identifier?: string
  /** What the state machine made of it ('recorded', or why it was refused). */
  outcome: string
  /** The phase the issue was in before (a stop of a queued issue is answered by the intake itself). */
  before?: string
}

export interface IntakeResult {
  items: IntakeItem[]
  /** The first failure; the events from it on stay unacked. */
  error?: { code: string; message: string }
}

/** The worker id this machine's agent long-polls as (stable across restarts: its session holds survive one). */
export function workerId(agent: string): string {
  return `${hostname()}:${agent}`.replace(/[^\w.:@-]/g, '-').slice(0, 128)
}

/** Lease what the relay has for this agent (waiting up to `waitSeconds`), record each event, ack it. */
export async function intakeSessions(
  ctx: AgentContext,
  client: RelayClient,
  opts: { waitSeconds: number; signal?: AbortSignal },
): Promise<IntakeResult> {
  const items: IntakeItem[] = []
  // After the first (long) poll, take what the acks made leasable (a session's next event) without waiting.
  for (let round = 0, wait = opts.waitSeconds; round < 20; round++, wait = 0) {
    const events = await client.poll({ waitSeconds: wait, max: 10, signal: opts.signal })
    if (events.length === 0) break
    for (const e of events) {
      const a = readAgentEvent(e)
      try {
        items.push(await take(ctx, a))
      } catch (err) {
        const f = asFactoryError(err)
        ctx.log.warn(`${ctx.agent.name}: session ${e.sessionId} ${e.action}: not recorded, the relay hands it out again: ${f.describe()}`)
        return { items, error: { code: f.code, message: f.message } }
      }
      await client.ack([e.id])
    }
  }
  return { items }
}

async function take(ctx: AgentContext, a: AgentEvent): Promise<IntakeItem> {
  if (a.kind === 'invalid' || !a.issue) {
    const reason = a.kind === 'invalid' ? a.reason : 'the session has no issue'
    ctx.log.warn(`${ctx.agent.name}: session ${a.sessionId}: cannot run it (${reason}); acked`)
    return { sessionId: a.sessionId, action: 'invalid', outcome: reason }
  }
  const known = findRecord(readState(ctx.paths.state), ctx.agent.name, a.issue.id)
  const record = (event: PhaseEvent, issueId: string) => updateRecord(ctx.paths.state, ctx.agent.name, issueId, event, ctx.now())
  // A reply for an issue with no record (state.json reset, or the session started elsewhere): open it first.
  if (a.kind === 'created' || !known) {
    const { issue } = await ctx.tracker.getIssue(a.issue.id)
    const promptContext = a.kind === 'created' ? a.promptContext : ''
    const opened = record({ type: 'session_created', issue, sessionId: a.sessionId, orgId: a.orgId, promptContext }, issue.id)
    if (a.kind === 'created') {
      ctx.log.info(
        `${ctx.agent.name}: ${issue.identifier}: session ${a.sessionId} ${opened.refused ? `not queued (${opened.refused})` : 'queued'}`,
      )
      return {
        sessionId: a.sessionId,
        action: 'created',
        identifier: issue.identifier,
        outcome: opened.refused ?? 'recorded',
        before: known?.phase,
      }
    }
  }
  const identifier = known?.identifier ?? a.issue.identifier
  if (a.stop) {
    const stopped = record({ type: 'stop_requested', reason: STOPPED_IN_LINEAR }, a.issue.id)
    ctx.log.info(`${ctx.agent.name}: ${identifier}: stop ${stopped.refused ? `(nothing to stop: ${stopped.refused})` : 'requested'}`)
    // Nothing was running (queued, or already finished): no run will answer, so the intake does.
    if (stopped.record && !isInFlight(known ?? stopped.record))
      await answerStop(ctx, stopped.record, known?.phase === 'queued' ? 'queued' : 'idle')
    return { sessionId: a.sessionId, action: 'stop', identifier, outcome: stopped.refused ?? 'recorded', before: known?.phase }
  }
  const prompted = record({ type: 'prompted', at: ctx.now().toISOString(), prompt: { id: a.activityId, body: a.body } }, a.issue.id)
  ctx.log.info(
    `${ctx.agent.name}: ${identifier}: reply in session ${a.sessionId} ${prompted.refused ? `not taken (${prompted.refused})` : `recorded (${prompted.record?.phase})`}`,
  )
  return { sessionId: a.sessionId, action: 'prompted', identifier, outcome: prompted.refused ?? 'recorded', before: known?.phase }
}

/** Backoff state per agent, shared with the api_key polls (lib/steps/poll.ts PollBackoff). */
type Backoff = Map<string, { until: number; failures: number }>

/**
 * One intake for the driver: skipped while backing off; a failure (relay down, token refused)
 * backs off like a failed poll and is logged with its fix. `dryRun` leases nothing: it reads the
 * relay's queue counts.
 */
export async function intakeWithBackoff(
  ctx: AgentContext,
  client: RelayClient,
  backoff: Backoff,
  opts: { now: number; waitSeconds: number; dryRun: boolean; signal?: AbortSignal; backoffMs: (failures: number) => number },
): Promise<{ ok: true; result: IntakeResult } | { ok: false; error: { code: string; message: string } }> {
  const name = ctx.agent.name
  const b = backoff.get(name)
  if (b && b.until > opts.now)
    return { ok: false, error: { code: 'backoff', message: `backing off until ${new Date(b.until).toISOString()}` } }
  try {
    if (opts.dryRun) {
      const s = await client.status()
      ctx.log.info(
        `${name}: the relay holds ${s.queue.queued ?? 0} queued and ${s.queue.leased ?? 0} leased event(s); a dry run leases none`,
      )
      return { ok: true, result: { items: [] } }
    }
    const result = await intakeSessions(ctx, client, { waitSeconds: opts.waitSeconds, signal: opts.signal })
    if (!result.error) {
      backoff.delete(name)
      return { ok: true, result }
    }
    return failed(result.error)
  } catch (err) {
    const e = asFactoryError(err)
    ctx.log.error(`${name}: relay intake failed: ${e.describe()}`)
    return failed(e)
  }
  function failed(e: { code: string; message: string }) {
    const failures = (b?.failures ?? 0) + 1
    const until = opts.now + opts.backoffMs(failures)
    backoff.set(name, { until, failures })
    ctx.log.info(`${name}: next relay intake not before ${new Date(until).toISOString()}`)
    return { ok: false as const, error: { code: e.code, message: e.message } }
  }
}
