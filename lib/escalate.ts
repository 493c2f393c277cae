/**
 * Escalation: the factory stops running an issue on its own and asks a human, with ONE comment
 * (client-chosen id per run, so a retried post cannot duplicate it). No more automatic runs
 * until a human comments or reassigns (planIssue requeues on a new human comment).
 */
import type { AgentContext } from './context.ts'
import { asFactoryError } from './errors.ts'
import { COMMENT_MARKER } from './prompt.ts'
import { agentState, type IssueRecord, updateState } from './state.ts'
import { stableUuid } from './workflow.ts'

/** The escalation comment for an issue (pure). */
export function planEscalation(agent: string, record: IssueRecord, reason: string): { id: string; body: string } {
  const n = record.runs.at(-1)?.n ?? 0
  const failures = record.runs
    .filter((r) => r.status !== 'success' && r.status !== 'no_changes' && r.status !== 'running')
    .slice(-5)
    .map((r) => `- run #${r.n}: ${r.errorCode ?? r.status}${r.summary ? `: ${r.summary.split('\n')[0]!.slice(0, 200)}` : ''}`)
  return {
    id: stableUuid(`rose-factory/${agent}/${record.id}/run/${n}/escalation`),
    body: [
      `**Needs a human:** ${reason}.`,
      '',
      ...(failures.length ? ['Recent attempts:', ...failures, ''] : []),
      'The factory will not run this issue again on its own. Comment here (or reassign it) to start a new run.',
      '',
      `_${COMMENT_MARKER} (${agent}, escalation after run #${n})._`,
    ].join('\n'),
  }
}

/** Mark the issue escalated in state.json, then post the comment (best effort: state first, so it is never rerun). */
export async function escalate(ctx: AgentContext, issueId: string, reason: string): Promise<void> {
  const record = updateState(ctx.paths.state, (d) => {
    const r = agentState(d, ctx.agent.name).issues[issueId]
    if (!r) return undefined
    r.phase = 'escalated'
    r.escalatedAt = ctx.now().toISOString()
    r.nextRetryAt = undefined
    return structuredClone(r)
  })
  if (!record) return
  ctx.log.warn(`${record.identifier}: escalated: ${reason}`)
  const comment = planEscalation(ctx.agent.name, record, reason)
  await ctx.tracker.createComment({ id: comment.id, issueId, body: comment.body }).catch((err) => {
    ctx.log.error(`${record.identifier}: could not post the escalation comment: ${asFactoryError(err).message}`)
  })
}
