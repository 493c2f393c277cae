/**
 * The sandbox's admin endpoints (no auth, never affected by faults): seed, data, a human's
 * comment / assignment / move, faults and stats (agents and webhooks: agent-admin.ts). Bad input -> 400 `{ error: { code, message, field } }`.
 */
import type { GraphqlEndpoint } from './endpoint.ts'
import { emptyStats } from './endpoint.ts'
import { parseFaults } from './faults.ts'
import type { SandboxStore } from './store.ts'
import { SandboxError } from './types.ts'

export interface AdminResult {
  status: number
  body: unknown
}

type Body = Record<string, unknown>

function need(body: Body, field: string): string {
  const v = body[field]
  if (typeof v !== 'string' || !v.trim()) throw new SandboxError('invalid_input', `"${field}" is required (a non-empty string)`, field)
  return v
}

function userRef(store: SandboxStore, body: Body, field: string): string | null | undefined {
  if (!(field in body) || body[field] === undefined) return undefined
  const v = body[field]
  if (v === null || v === 'none') return null
  if (typeof v !== 'string') throw new SandboxError('invalid_input', `"${field}" must be a user email or null`, field)
  const user = store.userByEmail(v)
  if (!user)
    throw new SandboxError(
      'invalid_input',
      `"${field}": no user with email ${v} (known: ${store.data.users.map((u) => u.email).join(', ')})`,
      field,
    )
  return user.id
}

function issueRef(store: SandboxStore, body: Body) {
  const ref = need(body, 'issue')
  const issue = store.issue(ref)
  if (!issue) throw new SandboxError('invalid_input', `"issue": no issue ${ref} (use an identifier like ENG-1 or an id)`, 'issue')
  return issue
}

function summary(store: SandboxStore) {
  const d = store.data
  return {
    users: d.users.map((u) => ({ id: u.id, name: u.name, email: u.email, apiKey: u.apiKey })),
    teams: d.teams.map((t) => t.key),
    issues: d.issues.length,
  }
}

/** Route one admin request; null when the path is not an admin route. */
export function handleAdmin(
  method: string,
  path: string,
  body: unknown,
  store: SandboxStore,
  endpoint: GraphqlEndpoint,
): AdminResult | null {
  const b = (body && typeof body === 'object' && !Array.isArray(body) ? body : {}) as Body
  const route = `${method} ${path.replace(/\/+$/, '')}`
  try {
    switch (route) {
      case 'GET /_sandbox/health':
        return { status: 200, body: { ok: true } }
      case 'GET /_sandbox/data':
        return { status: 200, body: store.data }
      case 'POST /_sandbox/seed':
        store.replace(body)
        return { status: 200, body: { ok: true, ...summary(store) } }
      case 'POST /_sandbox/comment': {
        const issue = issueRef(store, b)
        const user = store.userByEmail(need(b, 'user'))
        if (!user) throw new SandboxError('invalid_input', `"user": no user with email ${b.user}`, 'user')
        const comment = store.createComment({
          id: typeof b.id === 'string' ? b.id : undefined,
          issue: issue.id,
          userId: user.id,
          body: need(b, 'body'),
        })
        return { status: 200, body: { ok: true, comment } }
      }
      case 'POST /_sandbox/assign': {
        const issue = issueRef(store, b)
        const assigneeId = userRef(store, b, 'assignee')
        const delegateId = userRef(store, b, 'delegate')
        if (assigneeId === undefined && delegateId === undefined)
          throw new SandboxError('invalid_input', 'give "assignee" and/or "delegate" (an email, or null to clear)', 'assignee')
        const patch = { ...(assigneeId !== undefined ? { assigneeId } : {}), ...(delegateId !== undefined ? { delegateId } : {}) }
        return { status: 200, body: { ok: true, issue: store.updateIssue(issue.id, patch) } }
      }
      case 'POST /_sandbox/move': {
        const issue = issueRef(store, b)
        const name = need(b, 'state')
        const states = store.teamStates(issue.teamId)
        const state = states.find((s) => s.name.toLowerCase() === name.toLowerCase())
        if (!state)
          throw new SandboxError(
            'invalid_input',
            `"state": ${name} is not a state of the issue's team (${states.map((s) => s.name).join(', ')})`,
            'state',
          )
        return { status: 200, body: { ok: true, issue: store.updateIssue(issue.id, { stateId: state.id }) } }
      }
      case 'GET /_sandbox/faults':
        return { status: 200, body: { ok: true, faults: endpoint.faults.current() } }
      case 'POST /_sandbox/faults': {
        const off = b.off === true
        const { off: _off, ...rest } = b
        return { status: 200, body: { ok: true, faults: endpoint.faults.set(off ? {} : parseFaults(rest)) } }
      }
      case 'GET /_sandbox/stats':
        return { status: 200, body: endpoint.stats }
      case 'POST /_sandbox/stats': {
        // Same as GET; `{ "reset": true }` also resets after reading.
        const stats = endpoint.stats
        if (b.reset === true) endpoint.stats = emptyStats()
        return { status: 200, body: stats }
      }
      case 'POST /_sandbox/stats/reset':
        endpoint.stats = emptyStats()
        return { status: 200, body: { ok: true, stats: endpoint.stats } }
      default:
        if (!path.startsWith('/_sandbox')) return null
        return {
          status: 404,
          body: {
            error: {
              code: 'not_found',
              message: `no admin route ${route}: see GET /_sandbox/health, /data, /stats, /faults, /webhook, /deliveries, /sessions; POST /seed, /comment, /assign, /move, /faults, /stats/reset, /webhook, /delegate, /mention, /prompt, /stop, /deliveries/redeliver, /deliveries/duplicate`,
            },
          },
        }
    }
  } catch (err) {
    if (err instanceof SandboxError) {
      const message = err.code === 'not_found' ? `${err.message} (${err.field ?? 'id'})` : err.message
      return { status: 400, body: { error: { code: err.code, message, field: err.field } } }
    }
    throw err
  }
}
