/**
 * The agent-session side of one run (agent_session mode): the engine's events streamed to the
 * session as progress activities (activities.ts, coalesced and capped per the agent's tracker
 * settings), and the answer to a stop. api_key runs get null and post nothing here.
 */
import { activityRunner, type ActivityRunner, sessionPost } from './activity-runner.ts'
import { activityStream } from './activities.ts'
import { stableUuid } from './comments.ts'
import type { AgentContext } from './context.ts'
import { asFactoryError } from './errors.ts'
import type { IssueRecord } from './state.ts'
import { sessionClientFor, speak } from './voice.ts'

/** The progress stream of run `n` of an agent_session record, or null. */
export function sessionProgress(ctx: AgentContext, record: IssueRecord, n: number): ActivityRunner | null {
  const client = sessionClientFor(ctx, record)
  if (!client) return null
  const run = record.runs.find((r) => r.n === n)
  const t = ctx.agent.tracker
  // One key per attempt: a new attempt's progress is new, a resumed process's repeats are not posted twice.
  const stream = activityStream({
    sessionId: record.agentSessionId!,
    runKey: `${n}@${run?.startedAt ?? ''}`,
    intervalMs: t.activity_interval_seconds * 1000,
    maxActivities: t.max_activities,
    redact: ctx.redact,
  })
  return activityRunner({
    stream,
    deps: { post: sessionPost(client, record.agentSessionId!), log: (level, line) => ctx.log[level](`${record.identifier}: ${line}`) },
  })
}

/**
 * The final `response` after a stop in Linear: that it stopped and what was left (best effort).
 * `was`: a run was under way, the issue only waited in the queue, or nothing was going on.
 */
export async function answerStop(ctx: AgentContext, record: IssueRecord, was: 'running' | 'queued' | 'idle'): Promise<void> {
  if (!record.agentSessionId) return
  const last = record.runs.at(-1)
  const stopped = {
    running: `Stopped as asked. Nothing from run #${last?.n ?? '?'} was pushed; its changes stay in the worktree${record.branch ? ` on branch \`${record.branch}\`` : ''}.`,
    queued: 'Stopped as asked, before the run started.',
    idle: 'Nothing was running, so there was nothing to stop.',
  }
  const left = [
    stopped[was],
    record.prUrl ? `Earlier work is in ${record.prUrl}.` : 'No branch was pushed.',
    'Reply in this session to start again.',
  ].join(' ')
  const id = stableUuid(`rose-factory/${ctx.agent.name}/${record.id}/session/${record.agentSessionId}/stopped/${last?.n ?? 0}`)
  await speak(ctx, record, { id, body: left, kind: 'stopped' }).catch((err) =>
    ctx.log.warn(`${record.identifier}: could not post the stop response: ${asFactoryError(err).message}`),
  )
}
