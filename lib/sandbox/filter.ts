/**
 * IssueFilter evaluation: exactly the subset the factory uses (see SANDBOX_SDL's inputs).
 * Any other field is rejected with an error naming it; nothing is silently ignored.
 */
import { GraphQLError } from 'graphql'
import type { CommentRecord, IssueRecord, SandboxData, StateRecord, UserRecord } from './types.ts'

/** What a filter needs besides the issue: the data, the viewer (isMe) and "now" (durations). */
export interface FilterContext {
  data: SandboxData
  viewerId: string
  now: number
}

type Obj = Record<string, unknown>

export function unsupportedFilter(path: string, field: string): GraphQLError {
  const message = `Unsupported filter field "${field}" at ${path} in the Linear sandbox: it evaluates only and, or, id, assignee, delegate, createdAt, updatedAt, comments.some, state.type/name, team.key (extend lib/sandbox/filter.ts to add one)`
  return new GraphQLError(message, { extensions: { code: 'INVALID_INPUT', type: 'invalid input', userPresentableMessage: message } })
}

function checkKeys(obj: Obj, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (obj[key] === undefined) continue
    if (!allowed.includes(key)) throw unsupportedFilter(path, key)
  }
}

const DURATION =
  /^([+-])?P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/

/**
 * An ISO date (or a year shortcut like `2021`), or an ISO-8601 duration added to `now`
 * (`-PT15M` = fifteen minutes ago, `-P2W1D`, `P1D`), as epoch ms; null when it is neither.
 */
export function parseDateTimeOrDuration(value: string, now: number): number | null {
  const m = DURATION.exec(value.trim())
  if (m) {
    const sign = m[1] === '-' ? -1 : 1
    const n = (i: number) => Number(m[i] ?? 0) * sign
    const d = new Date(now)
    if (m[2] || m[3]) d.setUTCMonth(d.getUTCMonth() + n(2) * 12 + n(3))
    const ms = ((n(4) * 7 + n(5)) * 24 * 3600 + n(6) * 3600 + n(7) * 60 + n(8)) * 1000
    return d.getTime() + ms
  }
  if (/^\d{4}$/.test(value)) return Date.UTC(Number(value), 0, 1)
  if (!/^\d{4}-\d{2}/.test(value)) return null
  const t = Date.parse(value)
  return Number.isNaN(t) ? null : t
}

function dateValue(value: unknown, ctx: FilterContext, path: string): number {
  const t = typeof value === 'string' ? parseDateTimeOrDuration(value, ctx.now) : null
  if (t === null) throw unsupportedFilter(path, `value ${JSON.stringify(value)}`)
  return t
}

function matchDate(iso: string, cmp: Obj, ctx: FilterContext, path: string): boolean {
  checkKeys(cmp, ['eq', 'gt', 'gte', 'lt', 'lte'], path)
  const t = Date.parse(iso)
  for (const [op, raw] of Object.entries(cmp)) {
    if (raw === undefined || raw === null) continue
    const v = dateValue(raw, ctx, `${path}.${op}`)
    const ok = op === 'eq' ? t === v : op === 'gt' ? t > v : op === 'gte' ? t >= v : op === 'lt' ? t < v : t <= v
    if (!ok) return false
  }
  return true
}

/** StringComparator / IDComparator / IssueIDComparator (eq, neq, in, nin). */
function matchString(value: string, cmp: Obj, path: string): boolean {
  checkKeys(cmp, ['eq', 'neq', 'in', 'nin'], path)
  if (cmp.eq != null && value !== cmp.eq) return false
  if (cmp.neq != null && value === cmp.neq) return false
  if (Array.isArray(cmp.in) && !cmp.in.includes(value)) return false
  if (Array.isArray(cmp.nin) && cmp.nin.includes(value)) return false
  return true
}

function matchBoolean(value: boolean, cmp: Obj, path: string): boolean {
  checkKeys(cmp, ['eq', 'neq'], path)
  if (cmp.eq != null && value !== cmp.eq) return false
  if (cmp.neq != null && value === cmp.neq) return false
  return true
}

/** UserFilter (nullable: NullableUserFilter with `null`). A missing user matches only `null: true`. */
function matchUser(user: UserRecord | undefined, f: Obj, ctx: FilterContext, path: string, nullable: boolean): boolean {
  checkKeys(f, nullable ? ['isMe', 'id', 'email', 'null'] : ['isMe', 'id', 'email'], path)
  if (f.null != null && (user === undefined) !== f.null) return false
  const rest = Object.keys(f).filter((k) => k !== 'null' && f[k] != null)
  if (rest.length === 0) return true
  if (!user) return false
  if (f.isMe && !matchBoolean(user.id === ctx.viewerId, f.isMe as Obj, `${path}.isMe`)) return false
  if (f.id && !matchString(user.id, f.id as Obj, `${path}.id`)) return false
  if (f.email && !matchString(user.email, f.email as Obj, `${path}.email`)) return false
  return true
}

function matchComment(c: CommentRecord, f: Obj, ctx: FilterContext, path: string): boolean {
  checkKeys(f, ['createdAt', 'user'], path)
  if (f.createdAt && !matchDate(c.createdAt, f.createdAt as Obj, ctx, `${path}.createdAt`)) return false
  if (f.user) {
    const user = c.userId ? ctx.data.users.find((u) => u.id === c.userId) : undefined
    if (!matchUser(user, f.user as Obj, ctx, `${path}.user`, false)) return false
  }
  return true
}

/** WorkflowStateFilter: type and name (StringComparator). */
export function matchState(state: StateRecord, f: Obj, path = 'filter'): boolean {
  checkKeys(f, ['type', 'name'], path)
  if (f.type && !matchString(state.type, f.type as Obj, `${path}.type`)) return false
  if (f.name && !matchString(state.name, f.name as Obj, `${path}.name`)) return false
  return true
}

const ISSUE_KEYS = ['and', 'or', 'id', 'assignee', 'delegate', 'createdAt', 'updatedAt', 'comments', 'state', 'team'] as const

/** The filter shapes evaluated here; `[x]` marks a list of x, a string a comparator kind. */
type Spec = { [key: string]: Spec | string | [Spec] }
const STR = 'string'
const USER: Spec = { isMe: 'boolean', id: STR, email: STR }
const STATE: Spec = { type: STR, name: STR }
const ISSUE: Spec = {
  id: STR,
  assignee: { ...USER, null: 'flag' },
  delegate: { ...USER, null: 'flag' },
  createdAt: 'date',
  updatedAt: 'date',
  comments: { some: { createdAt: 'date', user: USER } },
  state: STATE,
  team: { key: STR },
}
ISSUE.and = [ISSUE]
ISSUE.or = [ISSUE]
const COMPARATORS: Record<string, readonly string[]> = {
  string: ['eq', 'neq', 'in', 'nin'],
  boolean: ['eq', 'neq'],
  date: ['eq', 'gt', 'gte', 'lt', 'lte'],
  flag: [],
}

function validate(value: unknown, spec: Spec | string, path: string): void {
  if (value === null || value === undefined) return
  if (typeof spec === 'string') {
    if (spec !== 'flag' && typeof value === 'object') checkKeys(value as Obj, COMPARATORS[spec] ?? [], path)
    return
  }
  if (typeof value !== 'object' || Array.isArray(value)) throw unsupportedFilter(path, `value ${JSON.stringify(value)}`)
  checkKeys(value as Obj, Object.keys(spec), path)
  for (const [key, v] of Object.entries(value as Obj)) {
    const sub = spec[key]!
    if (Array.isArray(sub)) (Array.isArray(v) ? v : [v]).forEach((x, i) => validate(x, sub[0], `${path}.${key}[${i}]`))
    else validate(v, sub, `${path}.${key}`)
  }
}

/** Reject a filter using any field this evaluator does not implement, before evaluating it. */
export function validateIssueFilter(f: unknown, path = 'filter'): void {
  validate(f, ISSUE, path)
}

/** Reject a WorkflowStateFilter using any field this evaluator does not implement. */
export function validateStateFilter(f: unknown, path = 'filter'): void {
  validate(f, STATE, path)
}

/** Does `issue` match IssueFilter `f`? Top-level fields are ANDed; `and` all, `or` any. */
export function matchIssue(issue: IssueRecord, f: Obj | null | undefined, ctx: FilterContext, path = 'filter'): boolean {
  if (!f) return true
  checkKeys(f, ISSUE_KEYS, path)
  const user = (id: string | null) => (id ? ctx.data.users.find((u) => u.id === id) : undefined)
  if (f.id && !matchString(issue.id, f.id as Obj, `${path}.id`)) return false
  if (f.assignee && !matchUser(user(issue.assigneeId), f.assignee as Obj, ctx, `${path}.assignee`, true)) return false
  if (f.delegate && !matchUser(user(issue.delegateId), f.delegate as Obj, ctx, `${path}.delegate`, true)) return false
  if (f.createdAt && !matchDate(issue.createdAt, f.createdAt as Obj, ctx, `${path}.createdAt`)) return false
  if (f.updatedAt && !matchDate(issue.updatedAt, f.updatedAt as Obj, ctx, `${path}.updatedAt`)) return false
  if (f.state) {
    const state = ctx.data.states.find((s) => s.id === issue.stateId)
    if (!state || !matchState(state, f.state as Obj, `${path}.state`)) return false
  }
  if (f.team) {
    checkKeys(f.team as Obj, ['key'], `${path}.team`)
    const key = (f.team as Obj).key as Obj | undefined
    const team = ctx.data.teams.find((t) => t.id === issue.teamId)
    if (key && (!team || !matchString(team.key, key, `${path}.team.key`))) return false
  }
  if (f.comments) {
    const cf = f.comments as Obj
    checkKeys(cf, ['some'], `${path}.comments`)
    if (cf.some) {
      const some = cf.some as Obj
      const comments = ctx.data.comments.filter((c) => c.issueId === issue.id)
      if (!comments.some((c) => matchComment(c, some, ctx, `${path}.comments.some`))) return false
    }
  }
  if (Array.isArray(f.and) && !f.and.every((g, i) => matchIssue(issue, g as Obj, ctx, `${path}.and[${i}]`))) return false
  if (Array.isArray(f.or) && f.or.length > 0 && !f.or.some((g, i) => matchIssue(issue, g as Obj, ctx, `${path}.or[${i}]`))) return false
  return true
}
