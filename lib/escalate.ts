/**
 * Escalation: the factory stops running an issue on its own and asks a human with ONE comment
 * (its id derives from the run, so a retried post cannot duplicate it). No more automatic runs
 * until a human comments or reassigns (planIssue requeues on a new human comment).
 */
import { escalationComment, failureComment } from './comments.ts'
import type { AgentContext } from './context.ts'
import { asFactoryError } from './errors.ts'
import type { IssueRecord } from './state.ts'
import { speak } from './voice.ts'

/** Post the "needs a human" comment for a record the state machine escalated (best effort: the state is already written). */
export async function postEscalation(ctx: AgentContext, record: IssueRecord, reason: string): Promise<void> {
  ctx.log.warn(`${record.identifier}: escalated: ${reason}`)
  const comment = escalationComment({ agent: ctx.agent.name, issueId: record.id, runs: record.runs, reason, lastError: record.lastError })
  await speak(ctx, record, { id: comment.id, body: comment.body, kind: 'escalation' }).catch((err) => {
    ctx.log.error(`${record.identifier}: could not post the escalation: ${asFactoryError(err).message}`)
  })
}

/** Post the comment for a run that failed in a way another attempt cannot fix (best effort). */
export async function postFailure(ctx: AgentContext, record: IssueRecord, n: number): Promise<void> {
  if (!record.lastError) return
  const comment = failureComment(ctx.agent.name, record.id, record.runs.find((r) => r.n === n) ?? n, record.lastError)
  await speak(ctx, record, { id: comment.id, body: comment.body, kind: 'failure' }).catch((err) => {
    ctx.log.warn(`${record.identifier}: could not post the failure: ${asFactoryError(err).message}`)
  })
}
