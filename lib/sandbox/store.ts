/**
 * The sandbox's data: in memory, persisted to one JSON file after every write (temp file, fsync,
 * rename), loaded from it on start. A corrupt file is an error naming its path, never a reset.
 * A monotonic clock gives each write a distinct, strictly increasing ISO timestamp.
 */
import { randomUUID } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { FactoryError } from '../errors.ts'
import { isUuid } from './naming.ts'
import { buildData, DEFAULT_SEED } from './seed.ts'
import {
  SandboxError,
  type AttachmentRecord,
  type CommentRecord,
  type IssueRecord,
  type SandboxData,
  type StateRecord,
  type UserRecord,
} from './types.ts'

export interface StoreOptions {
  dataPath?: string
  /** Used when there is no data file (or with `reseed`); default: DEFAULT_SEED. */
  seed?: unknown
  /** Replace an existing data file with `seed`. */
  reseed?: boolean
  /** Epoch ms "now" (default Date.now). */
  clock?: () => number
}

export type IssuePatch = Partial<Pick<IssueRecord, 'stateId' | 'assigneeId' | 'delegateId' | 'title' | 'description' | 'priority'>>

const ARRAYS = ['teams', 'states', 'users', 'labels', 'issues', 'comments', 'attachments'] as const
/** Lists added later: a data file without them is read as having none. */
const AGENT_ARRAYS = ['agentSessions', 'agentActivities'] as const

function notFound(entity: string, field?: string): SandboxError {
  return new SandboxError('not_found', `Entity not found: ${entity}`, field, entity)
}

export class SandboxStore {
  data: SandboxData
  /** Where the data came from on open. */
  readonly source: 'file' | 'seed' | 'default'
  readonly dataPath?: string
  private readonly clock: () => number
  private last = 0

  constructor(opts: StoreOptions = {}) {
    this.clock = opts.clock ?? Date.now
    this.dataPath = opts.dataPath
    if (opts.dataPath && existsSync(opts.dataPath) && !opts.reseed) {
      this.data = SandboxStore.load(opts.dataPath)
      this.last = this.data.clock
      this.source = 'file'
    } else {
      this.source = opts.seed === undefined ? 'default' : 'seed'
      this.data = this.build(opts.seed ?? DEFAULT_SEED)
      this.persist()
    }
  }

  /** Read and check a data file; a torn or foreign file is a `state_corrupt` error with its path. */
  static load(path: string): SandboxData {
    const corrupt = (why: string, cause?: unknown) =>
      new FactoryError('state_corrupt', `sandbox data file ${path} is corrupt: ${why}`, {
        fix: `restore it, delete it to start from the seed, or start with --reseed to replace it`,
        cause,
      })
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'))
    } catch (err) {
      throw corrupt(err instanceof Error ? err.message : String(err), err)
    }
    const d = parsed as Partial<SandboxData> | null
    if (!d || typeof d !== 'object' || d.version !== 1) throw corrupt('expected {"version": 1, ...}')
    for (const key of ARRAYS) if (!Array.isArray(d[key])) throw corrupt(`"${key}" is not a list`)
    if (!d.organization || typeof d.organization.urlKey !== 'string') throw corrupt('"organization" is missing')
    if (typeof d.clock !== 'number' || typeof d.lastSyncId !== 'number') throw corrupt('"clock"/"lastSyncId" are missing')
    for (const key of AGENT_ARRAYS) {
      if (d[key] === undefined) d[key] = []
      else if (!Array.isArray(d[key])) throw corrupt(`"${key}" is not a list`)
    }
    return d as SandboxData
  }

  /** Epoch ms now (the injected clock). */
  now(): number {
    return this.clock()
  }

  /** A write timestamp: strictly greater than every earlier one, even within one millisecond. */
  tick(): string {
    this.last = Math.max(this.clock(), this.last + 1)
    return new Date(this.last).toISOString()
  }

  private build(seed: unknown): SandboxData {
    return buildData(seed, () => this.tick())
  }

  /** Replace all data with a seed (validated first: a bad seed changes nothing). */
  replace(seed: unknown): void {
    const data = this.build(seed)
    data.lastSyncId = this.data.lastSyncId + 1
    this.data = data
    this.persist()
  }

  /** Write the data file atomically (no-op without dataPath). */
  persist(): void {
    this.data.clock = this.last
    if (!this.dataPath) return
    mkdirSync(dirname(this.dataPath), { recursive: true })
    const tmp = `${this.dataPath}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, `${JSON.stringify(this.data, null, 2)}\n`)
      fsyncSync(fd)
    } catch (err) {
      closeSync(fd)
      unlinkSync(tmp)
      throw err
    }
    closeSync(fd)
    renameSync(tmp, this.dataPath)
  }

  /** Run one change, bump lastSyncId and persist (every write goes through here). */
  write<T>(fn: () => T): T {
    const result = fn()
    this.data.lastSyncId++
    this.persist()
    return result
  }

  // ---- lookups ----

  user(id: string | null | undefined): UserRecord | undefined {
    return id ? this.data.users.find((u) => u.id === id) : undefined
  }

  userByEmail(email: string): UserRecord | undefined {
    return this.data.users.find((u) => u.email.toLowerCase() === email.toLowerCase())
  }

  userByApiKey(key: string): UserRecord | undefined {
    return key ? this.data.users.find((u) => u.apiKey === key) : undefined
  }

  team(ref: string) {
    return this.data.teams.find((t) => t.id === ref || t.key === ref)
  }

  state(id: string): StateRecord | undefined {
    return this.data.states.find((s) => s.id === id)
  }

  teamStates(teamId: string): StateRecord[] {
    return this.data.states.filter((s) => s.teamId === teamId).sort((a, b) => a.position - b.position)
  }

  /** By UUID or identifier (`ENG-1`, case-insensitive). */
  issue(ref: string): IssueRecord | undefined {
    const byId = this.data.issues.find((i) => i.id === ref)
    if (byId) return byId
    const m = /^([A-Za-z][A-Za-z0-9]*)-(\d+)$/.exec(ref.trim())
    if (!m) return undefined
    const team = this.data.teams.find((t) => t.key.toLowerCase() === m[1]!.toLowerCase())
    return team ? this.data.issues.find((i) => i.teamId === team.id && i.number === Number(m[2])) : undefined
  }

  mustIssue(ref: string, field = 'id'): IssueRecord {
    const issue = this.issue(ref)
    if (!issue) throw notFound('Issue', field)
    return issue
  }

  comment(id: string): CommentRecord | undefined {
    return this.data.comments.find((c) => c.id === id)
  }

  // ---- writes (each persists) ----

  /** issueUpdate: validates every field first; bumps updatedAt when something changed. */
  updateIssue(ref: string, patch: IssuePatch): IssueRecord {
    const issue = this.mustIssue(ref)
    const next: IssuePatch = {}
    if (patch.stateId !== undefined) {
      const state = this.state(patch.stateId ?? '')
      if (!state || state.teamId !== issue.teamId) {
        throw new SandboxError('invalid_input', `stateId ${patch.stateId} is not a workflow state of the issue's team`, 'stateId')
      }
      next.stateId = state.id
    }
    for (const field of ['assigneeId', 'delegateId'] as const) {
      if (patch[field] === undefined) continue
      if (patch[field] !== null && !this.user(patch[field]))
        throw new SandboxError('invalid_input', `${field} ${patch[field]} is not a user id`, field)
      next[field] = patch[field]
    }
    if (patch.title !== undefined) {
      if (!patch.title?.trim()) throw new SandboxError('invalid_input', 'title must not be empty', 'title')
      next.title = patch.title
    }
    if (patch.description !== undefined) next.description = patch.description
    if (patch.priority !== undefined) {
      if (patch.priority === null || !Number.isInteger(patch.priority) || patch.priority < 0 || patch.priority > 4) {
        throw new SandboxError('invalid_input', `priority ${patch.priority} must be 0 (none) to 4 (low)`, 'priority')
      }
      next.priority = patch.priority
    }
    const changed = (Object.keys(next) as (keyof IssuePatch)[]).some((k) => issue[k] !== next[k])
    if (!changed) return issue
    return this.write(() => Object.assign(issue, next, { updatedAt: this.tick() }))
  }

  /** commentCreate: a duplicate client-chosen id is refused. Does NOT bump the issue's updatedAt. */
  createComment(input: {
    id?: string | null
    issue: string
    userId: string | null
    body: string
    parentId?: string | null
  }): CommentRecord {
    if (input.id != null && !isUuid(input.id))
      throw new SandboxError('invalid_input', `Argument Validation Error: id ${input.id} must be a UUID`, 'id')
    if (input.id != null && this.comment(input.id))
      throw new SandboxError('invalid_input', `Comment with id ${input.id} already exists`, 'id')
    const issue = this.mustIssue(input.issue, 'issueId')
    if (!input.body.trim()) throw new SandboxError('invalid_input', 'body must not be empty', 'body')
    if (input.parentId != null) {
      const parent = this.comment(input.parentId)
      if (!parent || parent.issueId !== issue.id)
        throw new SandboxError('invalid_input', `parentId ${input.parentId} is not a comment on ${input.issue}`, 'parentId')
    }
    return this.write(() => {
      const at = this.tick()
      const comment: CommentRecord = {
        id: input.id ?? randomUUID(),
        issueId: issue.id,
        userId: input.userId,
        body: input.body,
        parentId: input.parentId ?? null,
        createdAt: at,
        updatedAt: at,
      }
      this.data.comments.push(comment)
      return comment
    })
  }

  /** attachmentLinkURL: creates, or updates the attachment with the same url on the same issue. */
  linkUrl(input: { issue: string; url: string; title?: string | null; creatorId: string | null }): AttachmentRecord {
    const issue = this.mustIssue(input.issue, 'issueId')
    if (!/^https?:\/\/\S+$/.test(input.url)) throw new SandboxError('invalid_input', `url ${input.url} must be an http(s) URL`, 'url')
    return this.write(() => {
      const at = this.tick()
      const existing = this.data.attachments.find((a) => a.issueId === issue.id && a.url === input.url)
      if (existing) return Object.assign(existing, { title: input.title ?? existing.title, updatedAt: at })
      const attachment: AttachmentRecord = {
        id: randomUUID(),
        issueId: issue.id,
        url: input.url,
        title: input.title ?? input.url,
        creatorId: input.creatorId,
        createdAt: at,
        updatedAt: at,
      }
      this.data.attachments.push(attachment)
      return attachment
    })
  }
}
