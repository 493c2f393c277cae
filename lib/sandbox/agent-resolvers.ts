/** Resolvers for the agent-session part of the schema (sdl-agents.ts); merged into resolvers.ts. */
import {
  createActivity,
  createSession,
  findActivity,
  mustSession,
  sessionActivities,
  sessionStatus,
  updateSession,
  type ActivityInput,
  type SessionPatch,
} from './agents.ts'
import { byTime, type PageArgs } from './connection.ts'
import { issueIdentifier, issueUrl } from './naming.ts'
import type { SandboxContext } from './resolvers.ts'
import { SandboxError, type AgentActivityRecord, type AgentSessionRecord } from './types.ts'

type Args = Record<string, unknown> & PageArgs & { orderBy?: string | null }
type Resolver = (parent: any, args: Args, ctx: SandboxContext) => unknown

const CONTENT_TYPES: Record<string, string> = {
  action: 'AgentActivityActionContent',
  elicitation: 'AgentActivityElicitationContent',
  error: 'AgentActivityErrorContent',
  prompt: 'AgentActivityPromptContent',
  response: 'AgentActivityResponseContent',
  thought: 'AgentActivityThoughtContent',
}

/** The content union's concrete type for a stored content object. */
export function contentTypeName(content: Record<string, unknown>): string {
  const name = CONTENT_TYPES[String(content.type)]
  if (!name) throw new Error(`sandbox data is inconsistent: activity content type ${String(content.type)}`)
  return name
}

/** Linear keeps a rich-text (ProseMirror) copy of every body: a one-paragraph document per line here. */
function bodyData(content: { body?: unknown }) {
  const lines = String(content.body ?? '').split('\n')
  return { type: 'doc', content: lines.map((text) => ({ type: 'paragraph', ...(text ? { content: [{ type: 'text', text }] } : {}) })) }
}

/** The session's page: the issue URL with the session's slug as fragment (null without an issue). */
export function sessionUrl(s: AgentSessionRecord, ctx: Pick<SandboxContext, 'store' | 'baseUrl'>): string | null {
  const issue = s.issueId ? ctx.store.issue(s.issueId) : undefined
  const team = issue ? ctx.store.team(issue.teamId) : undefined
  if (!issue || !team) return null
  return `${issueUrl(ctx.baseUrl, ctx.store.data.organization.urlKey, issueIdentifier(issue, team), issue.title)}#agent-session-${slugId(s)}`
}

const slugId = (s: AgentSessionRecord) => s.id.replace(/-/g, '').slice(0, 12)
const payload = <T>(key: string, value: T, ctx: SandboxContext) => ({ success: true, [key]: value, lastSyncId: ctx.store.data.lastSyncId })

const contentBody = { body: (c: { body: string }) => c.body, bodyData, type: (c: { type: string }) => c.type }

export const AGENT_RESOLVERS: Record<string, Record<string, Resolver>> = {
  Query: {
    agentSession: (_p, a, ctx) => mustSession(ctx.store, String(a.id)),
    agentSessions: (_p, a, ctx) => byTime(ctx.store.data.agentSessions, a.orderBy, a),
    agentActivity: (_p, a, ctx) => {
      const activity = findActivity(ctx.store, String(a.id))
      if (!activity) throw new SandboxError('not_found', 'Entity not found: AgentActivity', 'id', 'AgentActivity')
      return activity
    },
    issueRepositorySuggestions: (_p, a, ctx) => {
      const issue = ctx.store.issue(String(a.issueId))
      if (!issue) throw new SandboxError('not_found', 'Entity not found: Issue', 'issueId', 'Issue')
      return { suggestions: suggestRepositories(issue, a.candidateRepositories as Candidate[]) }
    },
  },
  Mutation: {
    agentActivityCreate: (_p, a, ctx) => payload('agentActivity', createActivity(ctx.store, ctx.viewer, a.input as ActivityInput), ctx),
    agentSessionUpdate: (_p, a, ctx) =>
      payload('agentSession', updateSession(ctx.store, ctx.viewer, String(a.id), (a.input ?? {}) as SessionPatch), ctx),
    agentSessionCreateOnIssue: (_p, a, ctx) => {
      const input = a.input as { issueId: string; externalUrls?: unknown }
      const issue = ctx.store.mustIssue(input.issueId, 'issueId')
      return payload(
        'agentSession',
        createSession(ctx.store, { appUserId: ctx.viewer.id, creatorId: null, issueId: issue.id, externalUrls: input.externalUrls }),
        ctx,
      )
    },
    agentSessionCreateOnComment: (_p, a, ctx) => {
      const input = a.input as { commentId: string; externalUrls?: unknown }
      const comment = ctx.store.comment(input.commentId)
      if (!comment) throw new SandboxError('not_found', 'Entity not found: Comment', 'commentId', 'Comment')
      const session = createSession(ctx.store, {
        appUserId: ctx.viewer.id,
        creatorId: null,
        issueId: comment.issueId,
        commentId: comment.id,
        externalUrls: input.externalUrls,
      })
      return payload('agentSession', session, ctx)
    },
  },
  AgentSession: {
    archivedAt: () => null,
    status: (s: AgentSessionRecord, _a, ctx) => sessionStatus(s, ctx.store.now()),
    appUser: (s: AgentSessionRecord, _a, ctx) => ctx.store.user(s.appUserId),
    creator: (s: AgentSessionRecord, _a, ctx) => ctx.store.user(s.creatorId) ?? null,
    issue: (s: AgentSessionRecord, _a, ctx) => (s.issueId ? (ctx.store.issue(s.issueId) ?? null) : null),
    comment: (s: AgentSessionRecord, _a, ctx) => (s.commentId ? (ctx.store.comment(s.commentId) ?? null) : null),
    externalLinks: (s: AgentSessionRecord) => s.externalUrls,
    externalUrls: (s: AgentSessionRecord) => s.externalUrls,
    plan: (s: AgentSessionRecord) => s.plan ?? null,
    slugId: (s: AgentSessionRecord) => slugId(s),
    url: (s: AgentSessionRecord, _a, ctx) => sessionUrl(s, ctx),
    activities: (s: AgentSessionRecord, a, ctx) => byTime(sessionActivities(ctx.store, s.id), a.orderBy, a),
  },
  AgentActivity: {
    archivedAt: (x: AgentActivityRecord) => x.replacedAt,
    agentSession: (x: AgentActivityRecord, _a, ctx) => mustSession(ctx.store, x.agentSessionId),
    user: (x: AgentActivityRecord, _a, ctx) => ctx.store.user(x.userId),
  },
  AgentActivityElicitationContent: contentBody,
  AgentActivityErrorContent: contentBody,
  AgentActivityPromptContent: contentBody,
  AgentActivityResponseContent: contentBody,
  AgentActivityThoughtContent: contentBody,
}

type Candidate = { hostname: string; repositoryFullName: string }

/**
 * The sandbox's stand-in for Linear's model: a candidate whose repository name is a word of the
 * issue's title or description gets 0.9, every other one 0.3 (Linear ranks with a model; only the
 * payload's shape and the 0-1 range are Linear's).
 */
function suggestRepositories(issue: { title: string; description: string | null }, candidates: Candidate[]) {
  const words = new Set(`${issue.title} ${issue.description ?? ''}`.toLowerCase().split(/[^a-z0-9_.-]+/))
  return candidates.map((c) => ({
    repositoryFullName: c.repositoryFullName,
    hostname: c.hostname,
    confidence: words.has(c.repositoryFullName.split('/').pop()!.toLowerCase()) ? 0.9 : 0.3,
  }))
}
