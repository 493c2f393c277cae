/**
 * The body of an `AgentSessionEvent` webhook, field for field as Linear's
 * AgentSessionEventWebhookPayload (schema.graphql) and its child payload types; `promptContext`
 * is the issue and its comments formatted the way Linear formats them for agents (XML-ish tags).
 * `webhookTimestamp` is added per attempt (webhook-sign.ts stampedBody).
 */
import { sessionUrl } from './agent-resolvers.ts'
import { issueIdentifier, issueUrl, userHandle } from './naming.ts'
import type { SandboxStore } from './store.ts'
import type { AgentActivityRecord, AgentSessionRecord, CommentRecord, IssueRecord, UserRecord } from './types.ts'

interface Ctx {
  store: SandboxStore
  baseUrl: string
}

const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')

function userPayload(user: UserRecord, ctx: Ctx) {
  return {
    id: user.id,
    name: user.name,
    email: user.email,
    avatarUrl: null,
    url: `${ctx.baseUrl}/${ctx.store.data.organization.urlKey}/profiles/${userHandle(user)}`,
  }
}

function issuePayload(issue: IssueRecord, ctx: Ctx) {
  const team = ctx.store.team(issue.teamId)!
  const identifier = issueIdentifier(issue, team)
  return {
    id: issue.id,
    identifier,
    title: issue.title,
    description: issue.description,
    url: issueUrl(ctx.baseUrl, ctx.store.data.organization.urlKey, identifier, issue.title),
    teamId: team.id,
    team: { id: team.id, key: team.key, name: team.name },
  }
}

function commentPayload(c: CommentRecord) {
  return { id: c.id, body: c.body, userId: c.userId, issueId: c.issueId }
}

function sessionPayload(s: AgentSessionRecord, ctx: Ctx) {
  const issue = s.issueId ? ctx.store.issue(s.issueId) : undefined
  const comment = s.commentId ? ctx.store.comment(s.commentId) : undefined
  const creator = ctx.store.user(s.creatorId)
  return {
    id: s.id,
    type: 'commentThread',
    status: s.status,
    appUserId: s.appUserId,
    organizationId: ctx.store.data.organization.id,
    creatorId: s.creatorId,
    creator: creator ? userPayload(creator, ctx) : null,
    issueId: s.issueId,
    issue: issue ? issuePayload(issue, ctx) : null,
    commentId: s.commentId,
    comment: comment ? commentPayload(comment) : null,
    sourceCommentId: null,
    sourceMetadata: null,
    url: sessionUrl(s, ctx),
    summary: null,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    archivedAt: null,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  }
}

function commentXml(c: CommentRecord, ctx: Ctx): string {
  const author = ctx.store.user(c.userId)?.name ?? 'Unknown'
  return `<comment author="${attr(author)}" created-at="${c.createdAt}">\n${c.body}\n</comment>`
}

/** Linear's promptContext: the issue, then the thread that started the session, then the other comments. */
export function promptContext(session: AgentSessionRecord, ctx: Ctx): string {
  const issue = session.issueId ? ctx.store.issue(session.issueId) : undefined
  if (!issue) return ''
  const p = issuePayload(issue, ctx)
  const labels = ctx.store.data.labels.filter((l) => issue.labelIds.includes(l.id)).map((l) => `<label>${l.name}</label>`)
  const parts = [
    [
      `<issue identifier="${p.identifier}">`,
      `<title>${issue.title}</title>`,
      ...(issue.description ? [`<description>${issue.description}</description>`] : []),
      `<team name="${attr(p.team.name)}"/>`,
      ...labels,
      `</issue>`,
    ].join('\n'),
  ]
  const comments = ctx.store.data.comments.filter((c) => c.issueId === issue.id).sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1))
  const roots = comments.filter((c) => !c.parentId)
  const thread = (root: CommentRecord, tag: string) =>
    `<${tag} comment-id="${root.id}">\n${[root, ...comments.filter((c) => c.parentId === root.id)].map((c) => commentXml(c, ctx)).join('\n')}\n</${tag}>`
  const directive = roots.find((c) => c.id === session.commentId)
  if (directive) parts.push(thread(directive, 'primary-directive-thread'))
  for (const root of roots) if (root !== directive) parts.push(thread(root, 'other-thread'))
  return parts.join('\n\n')
}

interface Envelope {
  webhookId: string
  oauthClientId: string
  createdAt: string
}

/** A `created` event: the new session with its issue, the issue's comments and the promptContext. */
export function createdPayload(session: AgentSessionRecord, env: Envelope, ctx: Ctx): Record<string, unknown> {
  const comments = session.issueId ? ctx.store.data.comments.filter((c) => c.issueId === session.issueId && c.id !== session.commentId) : []
  return {
    type: 'AgentSessionEvent',
    action: 'created',
    createdAt: env.createdAt,
    organizationId: ctx.store.data.organization.id,
    oauthClientId: env.oauthClientId,
    appUserId: session.appUserId,
    agentSession: sessionPayload(session, ctx),
    previousComments: comments.map(commentPayload),
    guidance: null,
    promptContext: promptContext(session, ctx),
    webhookId: env.webhookId,
  }
}

/** A `prompted` event: the session and the user's prompt activity (`content.body`, `signal`). */
export function promptedPayload(
  session: AgentSessionRecord,
  activity: AgentActivityRecord,
  env: Envelope,
  ctx: Ctx,
): Record<string, unknown> {
  const user = ctx.store.user(activity.userId)
  return {
    type: 'AgentSessionEvent',
    action: 'prompted',
    createdAt: env.createdAt,
    organizationId: ctx.store.data.organization.id,
    oauthClientId: env.oauthClientId,
    appUserId: session.appUserId,
    agentSession: sessionPayload(session, ctx),
    agentActivity: {
      id: activity.id,
      agentSessionId: session.id,
      content: activity.content,
      signal: activity.signal,
      signalMetadata: activity.signalMetadata,
      sourceCommentId: null,
      userId: activity.userId,
      user: user ? userPayload(user, ctx) : null,
      archivedAt: null,
      createdAt: activity.createdAt,
      updatedAt: activity.updatedAt,
    },
    webhookId: env.webhookId,
  }
}
