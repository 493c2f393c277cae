/**
 * The sandbox's admin routes for agents: the webhook target, a human delegating an issue to an
 * app user or mentioning it (a new AgentSession and a signed `created` webhook), prompting a
 * session (a `prompt` activity and a `prompted` webhook; `signal: "stop"` to stop it), the
 * recorded deliveries (redeliver one, duplicate one under a new id) and the sessions with their
 * activities. Same error shape as admin.ts. Each route that sends answers after the first attempt.
 */
import type { AdminResult } from './admin.ts'
import { createdPayload, promptedPayload } from './agent-payload.ts'
import { createActivity, createSession, findAppUser, mustSession, sessionActivities, sessionStatus } from './agents.ts'
import type { SandboxStore } from './store.ts'
import { SandboxError, type AgentSessionRecord, type IssueRecord, type UserRecord } from './types.ts'
import type { WebhookSender } from './webhooks.ts'

type Body = Record<string, unknown>
const EVENT = 'AgentSessionEvent'

function str(body: Body, field: string, required = true): string | undefined {
  const v = body[field]
  if (v === undefined && !required) return undefined
  if (typeof v !== 'string' || !v.trim()) throw new SandboxError('invalid_input', `"${field}" is required (a non-empty string)`, field)
  return v
}

/** The human acting: `user` (an email), else the issue's assignee, else the first human user. */
function human(store: SandboxStore, body: Body, issue?: IssueRecord): UserRecord {
  if (body.user === undefined) {
    const fallback = store.user(issue?.assigneeId) ?? store.data.users.find((u) => !u.app)
    if (fallback && !fallback.app) return fallback
  }
  const email = str(body, 'user')!
  const user = store.userByEmail(email)
  if (!user || user.app)
    throw new SandboxError(
      'invalid_input',
      `"user": no human user with email ${email} (known: ${store.data.users
        .filter((u) => !u.app)
        .map((u) => u.email)
        .join(', ')})`,
      'user',
    )
  return user
}

function issueOf(store: SandboxStore, body: Body) {
  const ref = str(body, 'issue')!
  const issue = store.issue(ref)
  if (!issue) throw new SandboxError('invalid_input', `"issue": no issue ${ref} (use an identifier like ENG-1 or an id)`, 'issue')
  return issue
}

function sessionView(store: SandboxStore, s: AgentSessionRecord) {
  return { ...s, status: sessionStatus(s, store.now()), activities: sessionActivities(store, s.id) }
}

/** Route one agent admin request; null when the route is not one of these. */
export async function handleAgentAdmin(
  method: string,
  path: string,
  body: unknown,
  ctx: { store: SandboxStore; webhooks: WebhookSender; baseUrl: string },
): Promise<AdminResult | null> {
  const { store, webhooks } = ctx
  const b = (body && typeof body === 'object' && !Array.isArray(body) ? body : {}) as Body
  const route = `${method} ${path.replace(/\/+$/, '')}`
  const env = (app: UserRecord) => ({
    webhookId: webhooks.webhookId() ?? '',
    oauthClientId: app.app?.clientId ?? '',
    createdAt: new Date().toISOString(),
  })
  const ok = (extra: Record<string, unknown>): AdminResult => ({ status: 200, body: { ok: true, ...extra } })
  try {
    switch (route) {
      case 'GET /_sandbox/webhook':
        return ok({ webhook: webhooks.current() })
      case 'POST /_sandbox/webhook': {
        if (b.off === true) webhooks.configure(null)
        else
          webhooks.configure({
            url: str(b, 'url')!,
            secret: str(b, 'secret')!,
            retryDelaysMs: b.retryDelaysMs as number[] | undefined,
            timeoutMs: typeof b.timeoutMs === 'number' ? b.timeoutMs : undefined,
          })
        return ok({ webhook: webhooks.current() })
      }
      case 'POST /_sandbox/delegate':
      case 'POST /_sandbox/mention': {
        const issue = issueOf(store, b)
        const user = human(store, b, issue)
        const app = findAppUser(store, str(b, 'app', false))
        let commentId: string | null = null
        if (route.endsWith('mention')) {
          const text = str(b, 'body', false) ?? 'can you take a look?'
          const mention = `@${app.email.split('@')[0]}`
          commentId = store.createComment({
            issue: issue.id,
            userId: user.id,
            body: text.includes(mention) ? text : `${mention} ${text}`,
          }).id
        } else if (issue.delegateId !== app.id) store.updateIssue(issue.id, { delegateId: app.id })
        const session = createSession(store, { appUserId: app.id, creatorId: user.id, issueId: issue.id, commentId })
        const delivery = await webhooks.send(EVENT, createdPayload(session, env(app), ctx), { agentSessionId: session.id })
        return ok({ session: sessionView(store, session), delivery })
      }
      case 'POST /_sandbox/prompt':
      case 'POST /_sandbox/stop': {
        const session = mustSession(store, str(b, 'session')!, 'session')
        const user = b.user === undefined ? store.user(session.creatorId) : human(store, b)
        if (!user) throw new SandboxError('invalid_input', '"user" is required: the session has no creator', 'user')
        const stop = route.endsWith('stop') || b.signal === 'stop'
        if (b.signal !== undefined && b.signal !== 'stop') throw new SandboxError('invalid_input', '"signal" can only be "stop"', 'signal')
        const text = str(b, 'body', !stop) ?? 'Stop'
        const activity = createActivity(
          store,
          user,
          { agentSessionId: session.id, content: { type: 'prompt', body: text }, signal: stop ? 'stop' : null },
          true,
        )
        const app = store.user(session.appUserId)!
        const payload = promptedPayload(session, activity, env(app), ctx)
        const delivery = await webhooks.send(EVENT, payload, { agentSessionId: session.id, agentActivityId: activity.id })
        return ok({ activity, delivery })
      }
      case 'GET /_sandbox/deliveries':
        return ok({ deliveries: webhooks.deliveries })
      case 'POST /_sandbox/deliveries/redeliver':
        return ok({ delivery: await webhooks.redeliver(str(b, 'id')!) })
      case 'POST /_sandbox/deliveries/duplicate':
        return ok({ delivery: await webhooks.duplicate(str(b, 'id', false)) })
      case 'GET /_sandbox/sessions':
      case 'POST /_sandbox/sessions': {
        const issue = b.issue === undefined ? undefined : issueOf(store, b)
        const sessions = store.data.agentSessions.filter((s) => !issue || s.issueId === issue.id)
        return ok({ sessions: sessions.map((s) => sessionView(store, s)) })
      }
      default:
        return null
    }
  } catch (err) {
    if (err instanceof SandboxError) {
      const message = err.code === 'not_found' ? `${err.message} (${err.field ?? 'id'})` : err.message
      return { status: 400, body: { error: { code: err.code, message, field: err.field } } }
    }
    throw err
  }
}
