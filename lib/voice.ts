/**
 * Where the factory's words to humans go. api_key: comments on the issue. agent_session: the
 * agent session's activities (the summary is the final `response`, a failure an `error`, an
 * escalation an `elicitation` asking the human what to do), with the same ids the comments would
 * have, so a retried post cannot duplicate either. Progress activities are activity-runner.ts's.
 */
import type { AgentContext } from './context.ts'
import type { IssueRecord } from './state.ts'
import { agentSessionClient, type AgentSessionClient, type SelectSignal } from './tracker/agent-session.ts'

export type Utterance = 'summary' | 'failure' | 'escalation' | 'stopped'

const TYPE = { summary: 'response', failure: 'error', escalation: 'elicitation', stopped: 'response' } as const

/** The session client of an agent_session record (through the relay), or null for api_key. */
export function sessionClientFor(ctx: AgentContext, record: Pick<IssueRecord, 'agentSessionId' | 'agentOrgId'>): AgentSessionClient | null {
  const t = ctx.agent.tracker
  if (t.mode !== 'agent_session' || !record.agentSessionId || !t.relay_url) return null
  return agentSessionClient({ relayUrl: t.relay_url, token: ctx.env[t.token_env]!, orgId: record.agentOrgId ?? '' })
}

/** Say `body` to the humans of `record` (a comment, or an activity of its session); `created: false` when it was said before. */
export async function speak(
  ctx: AgentContext,
  record: Pick<IssueRecord, 'id' | 'agentSessionId' | 'agentOrgId'>,
  what: { id: string; body: string; kind: Utterance; select?: SelectSignal['signalMetadata'] },
): Promise<{ created: boolean }> {
  const body = ctx.redact(what.body)
  const session = sessionClientFor(ctx, record)
  if (!session) return ctx.tracker.createComment({ id: what.id, issueId: record.id, body })
  const { posted } = await session.postActivity({
    id: what.id,
    sessionId: record.agentSessionId!,
    content: { type: TYPE[what.kind], body },
    ...(what.select ? { select: what.select } : {}),
  })
  return { created: posted }
}

/** agent_session: link the PR on the session (Linear shows it as the session's PR); nothing for api_key. */
export async function linkPullRequest(
  ctx: AgentContext,
  record: Pick<IssueRecord, 'agentSessionId' | 'agentOrgId'>,
  url: string,
): Promise<void> {
  await sessionClientFor(ctx, record)?.updateSession(record.agentSessionId!, { addedExternalUrls: [{ label: 'Pull request', url }] })
}
