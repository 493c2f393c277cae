/** Resolvers for SANDBOX_SDL, attached once to the shared schema. */
import { GraphQLError, isObjectType, isUnionType, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql'
import { AGENT_RESOLVERS, contentTypeName } from './agent-resolvers.ts'
import { byTime, paginate, type PageArgs } from './connection.ts'
import { matchIssue, matchState, validateIssueFilter, validateStateFilter } from './filter.ts'
import { issueBranchName, issueIdentifier, issueUrl, PRIORITY_LABELS, userHandle } from './naming.ts'
import { sandboxSchema } from './schema.ts'
import type { SandboxStore } from './store.ts'
import {
  SandboxError,
  type AttachmentRecord,
  type CommentRecord,
  type IssueRecord,
  type StateRecord,
  type TeamRecord,
  type UserRecord,
} from './types.ts'

export interface SandboxContext {
  store: SandboxStore
  viewer: UserRecord
  /** The server's base URL (issue and user URLs are built from it). */
  baseUrl: string
  /** Epoch ms at the start of the request (durations in filters are relative to it). */
  now: number
  /** Order of an issue's comments connection (default newest first). */
  commentOrder?: 'newest_first' | 'oldest_first'
}

type Args = Record<string, unknown> & PageArgs & { orderBy?: string | null; filter?: Record<string, unknown> | null }
type Resolver = (parent: any, args: Args, ctx: SandboxContext) => unknown

/** A Linear-shaped error (`extensions.code` and `extensions.type`, which the SDK reads). */
export function linearError(message: string, code = 'INVALID_INPUT', type = 'invalid input', userMessage = message): GraphQLError {
  return new GraphQLError(message, { extensions: { code, type, userError: true, userPresentableMessage: userMessage } })
}

function toGraphQLError(err: unknown): unknown {
  if (!(err instanceof SandboxError)) return err
  if (err.code === 'not_found')
    return linearError(err.message, 'INVALID_INPUT', 'invalid input', `Could not find referenced ${err.entity ?? 'entity'}.`)
  if (err.code === 'forbidden') return linearError(err.message, 'FORBIDDEN', 'forbidden')
  return linearError(err.message)
}

const byPosition = (states: StateRecord[], args: Args) => {
  if (args.filter) validateStateFilter(args.filter)
  const list = states
    .filter((s) => !args.filter || matchState(s, args.filter))
    .sort((a, b) => a.position - b.position || (a.id < b.id ? -1 : 1))
  return args.orderBy ? byTime(list, args.orderBy, args) : paginate(list, (s) => s.position, 'asc', args)
}

function issueConnection(issues: IssueRecord[], args: Args, ctx: SandboxContext) {
  validateIssueFilter(args.filter)
  const fctx = { data: ctx.store.data, viewerId: ctx.viewer.id, now: ctx.now }
  return byTime(
    issues.filter((i) => matchIssue(i, args.filter, fctx)),
    args.orderBy,
    args,
  )
}

function teamOf(ctx: SandboxContext, issue: IssueRecord): TeamRecord {
  const team = ctx.store.team(issue.teamId)
  if (!team) throw new Error(`sandbox data is inconsistent: issue ${issue.id} has no team ${issue.teamId}`)
  return team
}

const identifier = (i: IssueRecord, ctx: SandboxContext) => issueIdentifier(i, teamOf(ctx, i))
const issueLink = (i: IssueRecord, ctx: SandboxContext) =>
  issueUrl(ctx.baseUrl, ctx.store.data.organization.urlKey, identifier(i, ctx), i.title)

const ISSUE_INPUT = ['stateId', 'assigneeId', 'delegateId', 'title', 'description', 'priority']

const resolvers: Record<string, Record<string, Resolver>> = {
  Query: {
    viewer: (_p, _a, ctx) => ctx.viewer,
    organization: (_p, _a, ctx) => ctx.store.data.organization,
    user: (_p, a, ctx) =>
      ctx.store.user(String(a.id)) ??
      (() => {
        throw new SandboxError('not_found', 'Entity not found: User', 'id', 'User')
      })(),
    users: (_p, a, ctx) => byTime(ctx.store.data.users, a.orderBy, a),
    team: (_p, a, ctx) =>
      ctx.store.team(String(a.id)) ??
      (() => {
        throw new SandboxError('not_found', 'Entity not found: Team', 'id', 'Team')
      })(),
    teams: (_p, a, ctx) => byTime(ctx.store.data.teams, a.orderBy, a),
    workflowStates: (_p, a, ctx) => byPosition(ctx.store.data.states, a),
    issue: (_p, a, ctx) => ctx.store.mustIssue(String(a.id)),
    issues: (_p, a, ctx) => issueConnection(ctx.store.data.issues, a, ctx),
    comment: (_p, a, ctx) => {
      if (!a.id) throw linearError('comment needs an id (the sandbox does not look comments up by hash)')
      const comment = ctx.store.comment(String(a.id))
      if (!comment) throw new SandboxError('not_found', 'Entity not found: Comment', 'id', 'Comment')
      return comment
    },
  },
  Mutation: {
    issueUpdate: (_p, a, ctx) => {
      const input = (a.input ?? {}) as Record<string, unknown>
      const extra = Object.keys(input).filter((k) => !ISSUE_INPUT.includes(k))
      if (extra.length)
        throw linearError(
          `IssueUpdateInput field ${extra.join(', ')} is not supported by the Linear sandbox (supported: ${ISSUE_INPUT.join(', ')})`,
        )
      const issue = ctx.store.updateIssue(String(a.id), input)
      return { success: true, issue, lastSyncId: ctx.store.data.lastSyncId }
    },
    commentCreate: (_p, a, ctx) => {
      const input = (a.input ?? {}) as { id?: string | null; issueId?: string | null; body?: string | null; parentId?: string | null }
      if (!input.issueId)
        throw linearError('commentCreate needs input.issueId in the Linear sandbox (project/document comments are not served)')
      if (input.body == null) throw linearError('commentCreate needs input.body')
      const comment = ctx.store.createComment({
        id: input.id,
        issue: input.issueId,
        userId: ctx.viewer.id,
        body: input.body,
        parentId: input.parentId,
      })
      return { success: true, comment, lastSyncId: ctx.store.data.lastSyncId }
    },
    attachmentLinkURL: (_p, a, ctx) => {
      const attachment = ctx.store.linkUrl({
        issue: String(a.issueId),
        url: String(a.url),
        title: a.title as string | null,
        creatorId: ctx.viewer.id,
      })
      return { success: true, attachment, lastSyncId: ctx.store.data.lastSyncId }
    },
  },
  User: {
    displayName: (u: UserRecord) => userHandle(u),
    active: () => true,
    admin: () => false,
    isMe: (u: UserRecord, _a, ctx) => u.id === ctx.viewer.id,
    url: (u: UserRecord, _a, ctx) => `${ctx.baseUrl}/${ctx.store.data.organization.urlKey}/profiles/${userHandle(u)}`,
  },
  Organization: {
    teams: (_o, a, ctx) => byTime(ctx.store.data.teams, a.orderBy, a),
    users: (_o, a, ctx) => byTime(ctx.store.data.users, a.orderBy, a),
  },
  Team: {
    organization: (_t, _a, ctx) => ctx.store.data.organization,
    states: (t: TeamRecord, a, ctx) => byPosition(ctx.store.teamStates(t.id), a),
    issues: (t: TeamRecord, a, ctx) =>
      issueConnection(
        ctx.store.data.issues.filter((i) => i.teamId === t.id),
        a,
        ctx,
      ),
  },
  WorkflowState: {
    team: (s: StateRecord, _a, ctx) => ctx.store.team(s.teamId),
    description: () => null,
  },
  Issue: {
    identifier: (i: IssueRecord, _a, ctx) => identifier(i, ctx),
    url: (i: IssueRecord, _a, ctx) => issueLink(i, ctx),
    branchName: (i: IssueRecord, _a, ctx) => i.branchName ?? issueBranchName(identifier(i, ctx), i.title, ctx.store.user(i.assigneeId)),
    priorityLabel: (i: IssueRecord) => PRIORITY_LABELS[i.priority] ?? 'No priority',
    archivedAt: () => null,
    state: (i: IssueRecord, _a, ctx) => ctx.store.state(i.stateId),
    team: (i: IssueRecord, _a, ctx) => teamOf(ctx, i),
    assignee: (i: IssueRecord, _a, ctx) => ctx.store.user(i.assigneeId) ?? null,
    delegate: (i: IssueRecord, _a, ctx) => ctx.store.user(i.delegateId) ?? null,
    creator: (i: IssueRecord, _a, ctx) => ctx.store.user(i.creatorId) ?? null,
    project: (i: IssueRecord) => i.project ?? null,
    labels: (i: IssueRecord, a, ctx) => {
      const labels = ctx.store.data.labels
        .filter((l) => i.labelIds.includes(l.id))
        .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
      return a.orderBy ? byTime(labels, a.orderBy, a) : paginate(labels, (l) => l.name, 'asc', a)
    },
    comments: (i: IssueRecord, a, ctx) =>
      byTime(
        ctx.store.data.comments.filter((c) => c.issueId === i.id),
        a.orderBy,
        a,
        ctx.commentOrder === 'oldest_first' ? 'asc' : 'desc',
      ),
    attachments: (i: IssueRecord, a, ctx) =>
      byTime(
        ctx.store.data.attachments.filter((x) => x.issueId === i.id),
        a.orderBy,
        a,
      ),
  },
  Comment: {
    url: (c: CommentRecord, _a, ctx) => {
      const issue = ctx.store.issue(c.issueId)
      return `${issue ? issueLink(issue, ctx) : ctx.baseUrl}#comment-${c.id.slice(0, 8)}`
    },
    editedAt: () => null,
    user: (c: CommentRecord, _a, ctx) => ctx.store.user(c.userId) ?? null,
    issue: (c: CommentRecord, _a, ctx) => ctx.store.issue(c.issueId) ?? null,
    issueId: (c: CommentRecord) => c.issueId,
    parent: (c: CommentRecord, _a, ctx) => (c.parentId ? (ctx.store.comment(c.parentId) ?? null) : null),
  },
  Attachment: {
    subtitle: () => null,
    metadata: () => ({}),
    sourceType: () => null,
    issue: (x: AttachmentRecord, _a, ctx) => ctx.store.issue(x.issueId),
    creator: (x: AttachmentRecord, _a, ctx) => ctx.store.user(x.creatorId) ?? null,
  },
}

let attached: GraphQLSchema | undefined

/** The shared executable schema: SANDBOX_SDL with the resolvers above (errors made Linear-shaped). */
export function executableSchema(): GraphQLSchema {
  if (attached) return attached
  const schema = sandboxSchema()
  const content = schema.getType('AgentActivityContent')
  if (!isUnionType(content)) throw new Error('SANDBOX_SDL lacks the AgentActivityContent union')
  content.resolveType = (value) => contentTypeName(value as Record<string, unknown>)
  const all = {
    ...resolvers,
    ...AGENT_RESOLVERS,
    Query: { ...resolvers.Query, ...AGENT_RESOLVERS.Query },
    Mutation: { ...resolvers.Mutation, ...AGENT_RESOLVERS.Mutation },
  }
  for (const [typeName, fields] of Object.entries(all)) {
    const type = schema.getType(typeName)
    if (!isObjectType(type)) throw new Error(`resolvers for ${typeName}, which SANDBOX_SDL does not define`)
    const defs = type.getFields()
    for (const [name, fn] of Object.entries(fields)) {
      const def = defs[name]
      if (!def) throw new Error(`resolver ${typeName}.${name} has no field in SANDBOX_SDL`)
      const wrapped: GraphQLFieldResolver<unknown, SandboxContext> = (parent, args, ctx) => {
        try {
          return fn(parent, args as Args, ctx)
        } catch (err) {
          throw toGraphQLError(err)
        }
      }
      def.resolve = wrapped
    }
  }
  attached = schema
  return schema
}
