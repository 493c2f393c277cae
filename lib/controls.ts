/**
 * The hands-on controls on one issue, shared by `rose-factory retry|cancel` and the status server:
 * retry un-escalates (escalated, failed or cancelled: a fresh budget of attempts) and queues it for
 * the next tick; cancel releases it and holds it (only a human comment or a retry queues it again),
 * then makes sure its run stops: the run notices the release within a second and stops its engine
 * (lib/run.ts); a run that does not is sent SIGTERM, and an engine its dead run left is killed
 * (lib/orphans.ts). Every phase change goes through the state machine (updateRecord).
 */
import { hostname } from 'node:os'
import { FactoryError } from './errors.ts'
import { inspectLock, issueLockPath, LOCK_STALE_MS, type LockOwner } from './lock.ts'
import { logger } from './log.ts'
import { killOrphanEngine } from './orphans.ts'
import { layout } from './paths.ts'
import { type FactoryState, type IssueRecord, readState, updateRecord } from './state.ts'
import { pidAlive } from './signal.ts'

/** What a human does to run a cancelled issue again (printed by cancel, shown by status). */
export const RESUME_HINT = 'a human comment on the issue in Linear, or rose-factory retry --issue'

/** The agents state.json or the poll health know, for messages that list them. */
function knownAgents(state: FactoryState, extra: readonly string[]): string[] {
  return [...new Set([...Object.keys(state.agents), ...extra])].sort()
}

/**
 * The record of `key` (identifier or id): for `agent`, or for the one agent that has it. Unknown
 * agent or ambiguous key: usage (exit 2, naming the agents); unknown key: issue_unknown.
 */
export function locateIssue(
  state: FactoryState,
  key: string,
  agent?: string,
  agents: readonly string[] = [],
): { agent: string; record: IssueRecord } {
  const known = knownAgents(state, agents)
  if (agent && !known.includes(agent))
    throw new FactoryError('usage', `unknown agent "${agent}"`, { fix: `use one of: ${known.join(', ') || '(no agent on record yet)'}` })
  const hits = Object.entries(state.agents)
    .filter(([name]) => !agent || name === agent)
    .flatMap(([name, a]) => {
      const r = a.issues[key] ?? Object.values(a.issues).find((x) => x.identifier === key)
      return r ? [{ agent: name, record: r }] : []
    })
  if (hits.length === 1) return hits[0]!
  if (hits.length > 1)
    throw new FactoryError('usage', `${key} is on record for several agents: ${hits.map((h) => h.agent).join(', ')}`, {
      fix: `name one: --agent ${hits.map((h) => h.agent).join('|')}`,
    })
  throw new FactoryError('issue_unknown', `no issue ${key} on record${agent ? ` for agent ${agent}` : ''}`)
}

export interface ControlOptions {
  agent?: string
  /** Who asked (kept in the record: "cancelled by ..."). */
  by: string
  now?: () => Date
  log?: { info(msg: string): void; warn(msg: string): void }
}

export interface ControlResult {
  agent: string
  identifier: string
  before: string
  record: IssueRecord
  /** What happened to the run in flight (cancel). */
  run?: string
}

function apply(home: string, type: 'retry_requested' | 'cancel_requested', key: string, opts: ControlOptions) {
  const path = layout(home).state
  const { agent, record } = locateIssue(readState(path), key, opts.agent)
  const step = updateRecord(path, agent, record.id, { type, by: opts.by }, (opts.now ?? (() => new Date()))())
  if (step.refused || !step.record) {
    const verb = type === 'retry_requested' ? 'retry' : 'cancel'
    throw new FactoryError('phase_conflict', `cannot ${verb} ${record.identifier}: ${step.refused ?? 'no record'}`, {
      fix:
        verb === 'retry'
          ? 'see rose-factory status --issue for what it waits for'
          : 'nothing runs it; rose-factory status --issue shows it',
    })
  }
  return { agent, identifier: record.identifier, before: record.phase, record: step.record }
}

/** Un-escalate (escalated, failed, cancelled) and queue `key`, or make a pending retry due now. The next tick runs it. */
export function retryIssue(home: string, key: string, opts: ControlOptions): ControlResult {
  const out = apply(home, 'retry_requested', key, opts)
  ;(opts.log ?? logger('retry')).info(`${out.agent}: ${out.identifier}: ${out.before} -> queued by ${opts.by}; the next tick runs it`)
  return out
}

export interface CancelOptions extends ControlOptions {
  /** How long the run gets to notice the release and stop on its own before SIGTERM (ms). */
  graceMs?: number
  sleep?: (ms: number) => Promise<void>
}

const nap = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Cancel `key` (queued or in flight): released and held, its run stopped. Resolves once the run let go (or was signalled). */
export async function cancelIssue(home: string, key: string, opts: CancelOptions): Promise<ControlResult> {
  const log = opts.log ?? logger('cancel')
  const sleep = opts.sleep ?? nap
  const out = apply(home, 'cancel_requested', key, opts)
  const lockPath = issueLockPath(layout(home).locks, out.agent, out.identifier)
  const first = inspectLock(lockPath, LOCK_STALE_MS)
  const owner = first.owner
  const gone = (o: LockOwner) => {
    const now = inspectLock(lockPath, LOCK_STALE_MS)
    return !now.owner || now.owner.pid !== o.pid || now.owner.startedAt !== o.startedAt || !!now.stale
  }
  let run = 'no run was under way'
  if (owner && first.stale) {
    const killed = killOrphanEngine(owner)
    run = `its run (pid ${owner.pid}) was dead${killed.length ? `; killed the engine it left: ${killed.join(' ')}` : ''}`
  } else if (owner && owner.host !== hostname()) {
    run = `its run (pid ${owner.pid} on ${owner.host}) stops within seconds of seeing the release`
  } else if (owner) {
    const grace = opts.graceMs ?? 10_000
    for (let waited = 0; waited < grace && !gone(owner); waited += 100) await sleep(100)
    if (gone(owner)) run = `its run (pid ${owner.pid}) stopped its engine and let go`
    else {
      // Still holding on: SIGTERM is the operator's stop (lib/run.ts); then the engine it recorded, if any.
      const engine = inspectLock(lockPath, LOCK_STALE_MS).owner?.engine
      try {
        process.kill(owner.pid, 'SIGTERM')
      } catch {}
      for (let waited = 0; waited < 5000 && pidAlive(owner.pid) && !gone(owner); waited += 100) await sleep(100)
      const killed = engine ? killOrphanEngine({ ...owner, engine }, 2000) : []
      run = `its run (pid ${owner.pid}) did not stop within ${grace / 1000} s: sent SIGTERM${killed.length ? `, killed its engine ${killed.join(' ')}` : ''}`
    }
  }
  log.warn(
    `${out.agent}: ${out.identifier}: cancelled by ${opts.by} (was ${out.before}); ${run}; runs again on ${RESUME_HINT} ${out.identifier}`,
  )
  return { ...out, run }
}
