/**
 * The route step (agents with several repositories): which repository the issue runs in, before
 * it is claimed. lib/route.ts decides from the rules; when none decides, agent_session asks
 * Linear's `issueRepositorySuggestions` (a confident answer, >= 0.8, is taken) and else asks the
 * user with a `select` elicitation; api_key says where each rule routes in one comment. Either way
 * the issue waits for a human (escalated): their answer or new comment queues it again. Returns
 * what it decided; the runner records it and says what it planned.
 */
import { stableUuid } from '../comments.ts'
import type { AgentContext } from '../context.ts'
import type { RepoEntry } from '../config.ts'
import { asFactoryError, type FactoryError } from '../errors.ts'
import type { PhaseEvent } from '../phases.ts'
import { candidates, describeRules, goneError, pickFromReplies, pickSuggestion, planRoute, repoName, unmatchedError } from '../route.ts'
import type { IssueRecord } from '../state.ts'
import type { SelectSignal } from '../tracker/agent-session.ts'
import type { TrackerIssue } from '../tracker/types.ts'
import { sessionClientFor } from '../voice.ts'

/** The confidence from which Linear's suggestion is taken without asking. */
export const SUGGESTION_THRESHOLD = 0.8

export type Routed =
  | { kind: 'repo'; repo: RepoEntry; why: string }
  | {
      kind: 'held'
      error: FactoryError
      /** For the state machine: the issue waits for a human. */
      event: Extract<PhaseEvent, { type: 'escalated' }>
      /** What to tell the humans (a comment, or a `select` elicitation in the session). */
      say: { id: string; body: string; kind: 'escalation'; select?: SelectSignal['signalMetadata'] }
    }

/** Decide the issue's repository (reading Linear's suggestions in agent_session mode); see the module comment. */
export async function routeIssue(ctx: AgentContext, issue: TrackerIssue, record: IssueRecord | undefined): Promise<Routed> {
  const d = planRoute(issue, ctx.agent, record?.repo)
  if (d.kind === 'repo') return d
  if (d.kind === 'gone') throw goneError(issue.identifier, ctx.agent.name, d.url)
  const repos = ctx.agent.repos
  const error = unmatchedError(issue, ctx.agent)
  // Once per request: a retried post keeps the id, a new human request (queuedAt) gets a new one.
  const id = stableUuid(`${ctx.agent.name}:${issue.id}:route:${record?.queuedAt ?? record?.updatedAt ?? ''}`)
  const event = {
    type: 'escalated' as const,
    reason: 'no repository rule takes it',
    error: { code: error.code, message: error.message, fix: error.fix },
  }
  const session = record ? sessionClientFor(ctx, record) : null
  if (!session) {
    const body = [
      `**No repository for this issue.** Agent ${ctx.agent.name} works in several repositories and none of its rules takes ${issue.identifier} ` +
        `(labels ${issue.labels.join(', ') || '(none)'}, team ${issue.team.key}, project ${issue.project ?? '(none)'}):`,
      '',
      ...describeRules(ctx.agent),
      '',
      'Add a label, team or project that routes it, then comment here to start the run.',
    ].join('\n')
    return { kind: 'held', error, event, say: { id, body, kind: 'escalation' } }
  }
  // The user's answer to an earlier question comes back as a reply.
  const chosen = pickFromReplies(
    (record!.pendingPrompts ?? []).map((p) => p.body),
    repos,
  )
  if (chosen) return { kind: 'repo', repo: chosen, why: 'chosen in the agent session' }
  const listed = candidates(repos)
  let best = ''
  if (listed.length) {
    try {
      const suggestions = await session.repositorySuggestions(
        issue.id,
        record!.agentSessionId!,
        listed.map(({ hostname, repositoryFullName }) => ({ hostname, repositoryFullName })),
      )
      const pick = pickSuggestion(suggestions, repos, SUGGESTION_THRESHOLD)
      if (pick) return { kind: 'repo', repo: pick.repo, why: `Linear suggests it (confidence ${pick.confidence.toFixed(2)})` }
      const top = [...suggestions].sort((a, b) => b.confidence - a.confidence)[0]
      if (top)
        best = ` (Linear's best guess, ${top.repositoryFullName}, has confidence ${top.confidence.toFixed(2)}, under ${SUGGESTION_THRESHOLD})`
    } catch (err) {
      ctx.log.warn(`${issue.identifier}: Linear's repository suggestions failed (${asFactoryError(err).message}); asking the user`)
    }
  }
  const options = repos.map((r) => ({ label: repoName(r), value: repoName(r) }))
  const body = [
    `Which repository should I work in for ${issue.identifier}? None of my routing rules decides${best}.`,
    '',
    ...describeRules(ctx.agent),
    '',
    `Reply with one of: ${options.map((o) => `\`${o.value}\``).join(', ')}.`,
  ].join('\n')
  return { kind: 'held', error, event, say: { id, body, kind: 'escalation', select: { options } } }
}
