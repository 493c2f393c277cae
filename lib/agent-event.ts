/**
 * What a relay event means to a worker: Linear's AgentSessionEvent payload (as the relay stored
 * it) read into `created` (a new session on an issue, with Linear's promptContext) or `prompted`
 * (a human's reply, or a stop). The schemas are loose on purpose: Linear adds payload fields
 * between releases and a worker must not refuse a session for a field it does not read. A prompt's
 * text is `agentActivity.content.body`, falling back to `agentActivity.body` (Linear's docs and
 * its SDK disagree; ../shared/notes/linear.md).
 */
import { z } from './zod.ts'

const issueSchema = z.looseObject({
  id: z.string().min(1),
  identifier: z.string().min(1),
  title: z.string(),
  description: z.string().nullish(),
  url: z.string().nullish(),
  team: z.looseObject({ id: z.string(), key: z.string() }).nullish(),
})

const sessionSchema = z.looseObject({
  id: z.string().min(1),
  issue: issueSchema.nullish(),
  comment: z.looseObject({ id: z.string(), body: z.string().nullish() }).nullish(),
  creator: z.looseObject({ id: z.string(), name: z.string().nullish(), email: z.string().nullish() }).nullish(),
})

const createdSchema = z.looseObject({
  type: z.literal('AgentSessionEvent'),
  action: z.literal('created'),
  organizationId: z.string().min(1),
  appUserId: z.string().nullish(),
  agentSession: sessionSchema,
  promptContext: z.string().nullish(),
  guidance: z.unknown().optional(),
})

const promptedSchema = z.looseObject({
  type: z.literal('AgentSessionEvent'),
  action: z.literal('prompted'),
  organizationId: z.string().min(1),
  agentSession: sessionSchema,
  agentActivity: z.looseObject({
    id: z.string().min(1),
    content: z.looseObject({ type: z.string().optional(), body: z.string().nullish() }).nullish(),
    body: z.string().nullish(),
    signal: z.string().nullish(),
    userId: z.string().nullish(),
    user: z.looseObject({ id: z.string(), name: z.string().nullish(), email: z.string().nullish() }).nullish(),
  }),
})

/** The issue a session is about, as the webhook carries it. */
export type AgentEventIssue = z.infer<typeof issueSchema>

/** A relay event read for the worker. `invalid` events cannot be run: ack them and log the reason. */
export type AgentEvent =
  | {
      kind: 'created'
      sessionId: string
      orgId: string
      issue: AgentEventIssue | null
      /** Linear's issue + comments + guidance formatted for an agent ('' when absent). */
      promptContext: string
      /** The comment the session started on (a mention), if any. */
      commentId: string | null
      creator: { id: string; name?: string | null; email?: string | null } | null
    }
  | {
      kind: 'prompted'
      sessionId: string
      orgId: string
      issue: AgentEventIssue | null
      activityId: string
      /** The human's message ('' for a bare stop). */
      body: string
      /** `signal: 'stop'`: halt the run now, then post a final response. */
      stop: boolean
      signal: string | null
      userId: string | null
    }
  | { kind: 'invalid'; sessionId: string; reason: string }

/** Read one relay event's payload (pure). `action` and `sessionId` come from the relay's own columns. */
export function readAgentEvent(event: { sessionId: string; action: string; payload: unknown }): AgentEvent {
  const schema = event.action === 'created' ? createdSchema : event.action === 'prompted' ? promptedSchema : null
  if (!schema) return { kind: 'invalid', sessionId: event.sessionId, reason: `unknown action ${JSON.stringify(event.action)}` }
  const parsed = schema.safeParse(event.payload)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return { kind: 'invalid', sessionId: event.sessionId, reason: `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` }
  }
  const p = parsed.data
  if (p.agentSession.id !== event.sessionId)
    return { kind: 'invalid', sessionId: event.sessionId, reason: `payload session ${p.agentSession.id} is not ${event.sessionId}` }
  const base = { sessionId: p.agentSession.id, orgId: p.organizationId, issue: p.agentSession.issue ?? null }
  if (p.action === 'created') {
    const c = p as z.infer<typeof createdSchema>
    return {
      kind: 'created',
      ...base,
      promptContext: c.promptContext ?? '',
      commentId: c.agentSession.comment?.id ?? null,
      creator: c.agentSession.creator ?? null,
    }
  }
  const a = (p as z.infer<typeof promptedSchema>).agentActivity
  return {
    kind: 'prompted',
    ...base,
    activityId: a.id,
    body: a.content?.body ?? a.body ?? '',
    stop: a.signal === 'stop',
    signal: a.signal ?? null,
    userId: a.userId ?? a.user?.id ?? null,
  }
}
