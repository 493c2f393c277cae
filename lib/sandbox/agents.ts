/**
 * Agent sessions and activities in the sandbox's data, with Linear's lifecycle rules: a session
 * is `pending` when created; the last activity sets its status (thought/action -> active,
 * elicitation -> awaitingInput, response -> complete, error -> error, a user's prompt -> pending
 * until the agent answers); it reads as `stale` 30 minutes after the last activity while active,
 * and any new activity revives it. An ephemeral activity (thought/action only) is replaced by the
 * next activity of its session: hidden from lists, still found by id.
 */
import { randomUUID } from 'node:crypto'
import { isUuid } from './naming.ts'
import type { SandboxStore } from './store.ts'
import {
  SandboxError,
  type AgentActivityRecord,
  type AgentSessionRecord,
  type AgentSessionStatus,
  type ExternalUrl,
  type UserRecord,
} from './types.ts'

/** A session still `active` this long after its last activity reads as `stale` (Linear: ~30 min). */
export const STALE_AFTER_MS = 30 * 60 * 1000

export const ACTIVITY_TYPES = ['thought', 'action', 'elicitation', 'response', 'error', 'prompt'] as const
export type ActivityType = (typeof ACTIVITY_TYPES)[number]
const SIGNALS = ['auth', 'continue', 'select', 'stop'] as const
const PLAN_STATUSES = ['pending', 'inProgress', 'completed', 'canceled']

const STATUS_AFTER: Record<ActivityType, AgentSessionRecord['status']> = {
  thought: 'active',
  action: 'active',
  elicitation: 'awaitingInput',
  response: 'complete',
  error: 'error',
  prompt: 'pending',
}

const bad = (message: string, field: string) => new SandboxError('invalid_input', message, field)

/** The status Linear shows now: the stored one, or `stale` for an active session left quiet too long. */
export function sessionStatus(session: AgentSessionRecord, now: number): AgentSessionStatus {
  if (session.status === 'active' && now - Date.parse(session.lastActivityAt) > STALE_AFTER_MS) return 'stale'
  return session.status
}

export function findSession(store: SandboxStore, id: string): AgentSessionRecord | undefined {
  return store.data.agentSessions.find((s) => s.id === id)
}

export function mustSession(store: SandboxStore, id: string, field = 'id'): AgentSessionRecord {
  const session = findSession(store, id)
  if (!session) throw new SandboxError('not_found', 'Entity not found: AgentSession', field, 'AgentSession')
  return session
}

export function findActivity(store: SandboxStore, id: string): AgentActivityRecord | undefined {
  return store.data.agentActivities.find((a) => a.id === id)
}

/** A session's visible activities (replaced ephemeral ones left out), oldest first. */
export function sessionActivities(store: SandboxStore, sessionId: string): AgentActivityRecord[] {
  return store.data.agentActivities.filter((a) => a.agentSessionId === sessionId && !a.replacedAt)
}

/** The app user named by id, email, name or email handle (case-insensitive); the only app when `ref` is empty. */
export function findAppUser(store: SandboxStore, ref: string | undefined): UserRecord {
  const apps = store.data.users.filter((u) => u.app)
  if (!apps.length) throw bad('the sandbox has no app user: seed one with "app": {} on a user', 'app')
  if (!ref) {
    if (apps.length === 1) return apps[0]!
    throw bad(`several app users (${apps.map((u) => u.name).join(', ')}): name one with "app"`, 'app')
  }
  const r = ref.toLowerCase()
  const app = apps.find((u) => u.id === ref || u.email.toLowerCase() === r || u.name.toLowerCase() === r || u.email.split('@')[0] === r)
  if (!app) throw bad(`"app": no app user ${ref} (known: ${apps.map((u) => `${u.name} <${u.email}>`).join(', ')})`, 'app')
  return app
}

function checkUrls(urls: unknown, field: string): ExternalUrl[] {
  if (!Array.isArray(urls)) throw bad(`${field} must be a list of {label, url}`, field)
  return urls.map((u, i) => {
    const { label, url } = (u ?? {}) as Record<string, unknown>
    if (typeof label !== 'string' || typeof url !== 'string' || !/^https?:\/\/\S+$/.test(url))
      throw bad(`${field}[${i}] must be {label, url} with an http(s) url`, field)
    return { label, url }
  })
}

/** Create a session of `appUserId` on an issue (delegation, mention, or the app's own agentSessionCreateOn*). */
export function createSession(
  store: SandboxStore,
  input: { appUserId: string; creatorId: string | null; issueId: string | null; commentId?: string | null; externalUrls?: unknown },
): AgentSessionRecord {
  const app = store.user(input.appUserId)
  if (!app?.app) throw bad(`${input.appUserId} is not an app user: only apps have agent sessions`, 'appUserId')
  const externalUrls = input.externalUrls == null ? [] : checkUrls(input.externalUrls, 'externalUrls')
  return store.write(() => {
    const at = store.tick()
    const session: AgentSessionRecord = {
      id: randomUUID(),
      appUserId: app.id,
      creatorId: input.creatorId,
      issueId: input.issueId,
      commentId: input.commentId ?? null,
      status: 'pending',
      externalUrls,
      plan: null,
      lastActivityAt: at,
      startedAt: null,
      endedAt: null,
      createdAt: at,
      updatedAt: at,
    }
    store.data.agentSessions.push(session)
    return session
  })
}

function checkContent(content: unknown): { type: ActivityType; content: Record<string, unknown> } {
  if (!content || typeof content !== 'object' || Array.isArray(content)) throw bad('content must be an object with a "type"', 'content')
  const c = content as Record<string, unknown>
  const type = c.type as ActivityType
  if (!ACTIVITY_TYPES.includes(type))
    throw bad(`content.type ${JSON.stringify(c.type)} must be one of ${ACTIVITY_TYPES.join(', ')}`, 'content')
  if (type === 'action') {
    if (typeof c.action !== 'string' || typeof c.parameter !== 'string')
      throw bad('an action needs content.action and content.parameter (strings)', 'content')
    if (c.result != null && typeof c.result !== 'string') throw bad('content.result must be a string', 'content')
    return { type, content: { type, action: c.action, parameter: c.parameter, ...(c.result != null ? { result: c.result } : {}) } }
  }
  if (typeof c.body !== 'string' || !c.body.trim()) throw bad(`a ${type} needs content.body (a non-empty string)`, 'content')
  return { type, content: { type, body: c.body } }
}

export interface ActivityInput {
  id?: string | null
  agentSessionId: string
  content: unknown
  ephemeral?: boolean | null
  signal?: string | null
  signalMetadata?: Record<string, unknown> | null
}

/**
 * agentActivityCreate (by `user`): the app's own activities, or a human's `prompt` when `asHuman`.
 * A client-chosen id that exists is refused like a duplicate comment id, and nothing changes.
 */
export function createActivity(store: SandboxStore, user: UserRecord, input: ActivityInput, asHuman = false): AgentActivityRecord {
  if (input.id != null && !isUuid(input.id)) throw bad(`Argument Validation Error: id ${input.id} must be a UUID`, 'id')
  if (input.id != null && findActivity(store, input.id)) throw bad(`AgentActivity with id ${input.id} already exists`, 'id')
  const session = mustSession(store, input.agentSessionId, 'agentSessionId')
  const { type, content } = checkContent(input.content)
  if (asHuman ? type !== 'prompt' : type === 'prompt')
    throw bad(
      asHuman ? 'a user can only add prompt activities' : "prompt activities are the user's: an agent cannot create them",
      'content',
    )
  if (!asHuman && user.id !== session.appUserId)
    throw new SandboxError('forbidden', `only the session's app user can add activities to agent session ${session.id}`, 'agentSessionId')
  const ephemeral = input.ephemeral === true
  if (ephemeral && type !== 'thought' && type !== 'action')
    throw bad(`ephemeral is allowed on thought and action only, not ${type}`, 'ephemeral')
  if (input.signal != null && !SIGNALS.includes(input.signal as (typeof SIGNALS)[number]))
    throw bad(`signal ${input.signal} must be one of ${SIGNALS.join(', ')}`, 'signal')
  return store.write(() => {
    const at = store.tick()
    for (const prev of sessionActivities(store, session.id)) if (prev.ephemeral) prev.replacedAt = at
    const activity: AgentActivityRecord = {
      id: input.id ?? randomUUID(),
      agentSessionId: session.id,
      userId: user.id,
      content,
      signal: (input.signal as AgentActivityRecord['signal']) ?? null,
      signalMetadata: input.signalMetadata ?? null,
      ephemeral,
      replacedAt: null,
      createdAt: at,
      updatedAt: at,
    }
    store.data.agentActivities.push(activity)
    const status = STATUS_AFTER[type]
    Object.assign(session, { status, lastActivityAt: at, updatedAt: at })
    if (status === 'active' && !session.startedAt) session.startedAt = at
    if (status === 'complete' || status === 'error') session.endedAt = at
    else if (status !== 'awaitingInput') session.endedAt = null
    return activity
  })
}

function checkPlan(plan: unknown): unknown {
  if (!Array.isArray(plan)) return plan
  plan.forEach((step, i) => {
    const s = (step ?? {}) as Record<string, unknown>
    if (typeof s.content !== 'string' || !PLAN_STATUSES.includes(s.status as string))
      throw bad(`plan[${i}] must be {content, status} with status one of ${PLAN_STATUSES.join(', ')}`, 'plan')
  })
  return plan
}

export interface SessionPatch {
  externalUrls?: unknown
  addedExternalUrls?: unknown
  removedExternalUrls?: unknown
  plan?: unknown
}

/** agentSessionUpdate: `externalUrls` replaces (added/removed then ignored, as Linear documents); `plan` is replaced whole. */
export function updateSession(store: SandboxStore, user: UserRecord, id: string, patch: SessionPatch): AgentSessionRecord {
  const session = mustSession(store, id)
  if (user.id !== session.appUserId)
    throw new SandboxError('forbidden', `only the OAuth application that owns agent session ${id} can update it`, 'id')
  let urls = session.externalUrls
  if (patch.externalUrls != null) urls = checkUrls(patch.externalUrls, 'externalUrls')
  else {
    if (patch.removedExternalUrls != null) {
      if (!Array.isArray(patch.removedExternalUrls)) throw bad('removedExternalUrls must be a list of urls', 'removedExternalUrls')
      const removed = new Set(patch.removedExternalUrls)
      urls = urls.filter((u) => !removed.has(u.url))
    }
    if (patch.addedExternalUrls != null) {
      const added = checkUrls(patch.addedExternalUrls, 'addedExternalUrls')
      urls = [...urls.filter((u) => !added.some((a) => a.url === u.url)), ...added]
    }
  }
  const plan = patch.plan === undefined ? session.plan : checkPlan(patch.plan)
  return store.write(() => Object.assign(session, { externalUrls: urls, plan, updatedAt: store.tick() }))
}
