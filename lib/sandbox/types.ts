/** The sandbox's persisted data model (one JSON file) and its public option/stat shapes. */

export interface OrganizationRecord {
  id: string
  name: string
  urlKey: string
  createdAt: string
  updatedAt: string
}

export interface TeamRecord {
  id: string
  key: string
  name: string
  description: string | null
  /** The next issue number in this team (identifiers are `${key}-${number}`). */
  nextNumber: number
  createdAt: string
  updatedAt: string
}

export interface StateRecord {
  id: string
  teamId: string
  name: string
  /** triage | backlog | unstarted | started | completed | canceled */
  type: string
  position: number
  color: string
  createdAt: string
  updatedAt: string
}

export interface UserRecord {
  id: string
  name: string
  email: string
  apiKey: string
  createdAt: string
  updatedAt: string
  /** Set on an app user (an OAuth app installed with actor=app): it can be delegated issues and mentioned, and owns agent sessions. */
  app?: { clientId: string; clientSecret?: string }
}

export interface LabelRecord {
  id: string
  teamId: string
  name: string
  color: string
  createdAt: string
  updatedAt: string
}

export interface IssueRecord {
  id: string
  teamId: string
  number: number
  title: string
  description: string | null
  stateId: string
  assigneeId: string | null
  delegateId: string | null
  creatorId: string | null
  priority: number
  labelIds: string[]
  /** The issue's project (kept on the issue: the sandbox serves a project's id and name only). */
  project?: { id: string; name: string } | null
  createdAt: string
  updatedAt: string
  /** Linear's suggested branch when seeded explicitly (edge-data tests); else derived from the identifier and title. */
  branchName?: string
}

export interface CommentRecord {
  id: string
  issueId: string
  userId: string | null
  body: string
  parentId: string | null
  createdAt: string
  updatedAt: string
}

export interface AttachmentRecord {
  id: string
  issueId: string
  url: string
  title: string
  creatorId: string | null
  createdAt: string
  updatedAt: string
}

/** One of Linear's AgentSessionStatus values. */
export type AgentSessionStatus = 'pending' | 'active' | 'awaitingInput' | 'complete' | 'error' | 'stale'

export interface ExternalUrl {
  label: string
  url: string
}

export interface AgentSessionRecord {
  id: string
  /** The app user the session belongs to. */
  appUserId: string
  /** The human who delegated or mentioned (null when the app created the session itself). */
  creatorId: string | null
  issueId: string | null
  /** The comment the session lives on (the mention; null for a delegation). */
  commentId: string | null
  /** The status set by the last activity; `stale` is derived on read (agents.ts sessionStatus). */
  status: Exclude<AgentSessionStatus, 'stale'>
  externalUrls: ExternalUrl[]
  plan: unknown
  /** When the last activity (of anyone) was created: a session goes stale 30 min after it. */
  lastActivityAt: string
  startedAt: string | null
  endedAt: string | null
  createdAt: string
  updatedAt: string
}

export interface AgentActivityRecord {
  id: string
  agentSessionId: string
  /** Who created it: the app user, or the human for a `prompt`. */
  userId: string
  /** Linear's content payload: `{ type, body }` or `{ type: 'action', action, parameter, result? }`. */
  content: Record<string, unknown>
  signal: 'auth' | 'continue' | 'select' | 'stop' | null
  signalMetadata: Record<string, unknown> | null
  ephemeral: boolean
  /** Set when a later activity replaced this ephemeral one: hidden from lists, still found by id. */
  replacedAt: string | null
  createdAt: string
  updatedAt: string
}

export interface SandboxData {
  version: 1
  /** The last timestamp the monotonic clock handed out (epoch ms). */
  clock: number
  /** Bumped on every write (Linear's `lastSyncId`). */
  lastSyncId: number
  organization: OrganizationRecord
  teams: TeamRecord[]
  states: StateRecord[]
  users: UserRecord[]
  labels: LabelRecord[]
  issues: IssueRecord[]
  comments: CommentRecord[]
  attachments: AttachmentRecord[]
  /** Absent in data files written before agent sessions existed (read as empty). */
  agentSessions: AgentSessionRecord[]
  agentActivities: AgentActivityRecord[]
}

export type FaultKind = 'ratelimited' | '5xx' | 'timeout'

/** Fault injection for /graphql (never /_sandbox/*). A failed request mutates nothing. */
export interface SandboxFaults {
  /** Probability (0..1) that a request fails with one of `kinds`. */
  rate?: number
  /** Kinds to inject (default ratelimited and 5xx). */
  kinds?: FaultKind[]
  /** ratelimited: the reset is now + resetMs (default 1000); every request until then is refused. */
  resetMs?: number
  /** Added before every /graphql response. */
  latencyMs?: number
  /** timeout: hold the request this long, then destroy the socket (default 30000). */
  hangMs?: number
  /** The next N requests fail, kinds round-robin. */
  failNext?: number
  /** PRNG seed for `rate` (deterministic runs). */
  seed?: number
}

export interface SandboxStats {
  /** Every /graphql request received (faulted ones included). */
  requests: number
  /** Parsed query / mutation operations (attempts: faulted and rejected ones included). */
  queries: number
  mutations: number
  /** Attempts per operation name (`anonymous` when unnamed). */
  byOperation: Record<string, number>
  /** Linear-style complexity estimates of the parsed operations. */
  complexity: { last: number; max: number; total: number }
  /** Faults injected (ratelimited, 5xx, timeout); refusals during a rate-limit window not included. */
  faultsInjected: number
  /** Requests refused because a rate-limit window (injected or real) was still open. */
  requestsDuringRateLimit: number
}

/** A rejected sandbox input (bad seed, unknown entity, duplicate id), naming the field. */
export class SandboxError extends Error {
  constructor(
    readonly code: 'not_found' | 'invalid_input' | 'forbidden',
    message: string,
    readonly field?: string,
    /** For not_found: the entity type (Linear answers `Entity not found: <entity>`). */
    readonly entity?: string,
  ) {
    super(message)
    this.name = 'SandboxError'
  }
}
