/** The seed format (JSON) and how it becomes the sandbox's data. */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { z } from '../zod.ts'
import { SandboxError, type SandboxData, type StateRecord } from './types.ts'

const iso = z
  .string()
  .refine((s) => /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO date-time such as 2024-05-01T12:00:00.000Z')
const email = z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address')
const STATE_TYPES = ['triage', 'backlog', 'unstarted', 'started', 'completed', 'canceled'] as const

export const seedSchema = z.strictObject({
  organization: z
    .strictObject({ name: z.string().min(1), urlKey: z.string().regex(/^[a-z0-9-]+$/, 'must be lowercase letters, digits and dashes') })
    .optional(),
  teams: z
    .array(
      z.strictObject({
        id: z.string().min(1).optional(),
        key: z.string().regex(/^[A-Z][A-Z0-9]{0,6}$/, 'must be 1-7 uppercase letters/digits starting with a letter, like ENG'),
        name: z.string().min(1),
        description: z.string().optional(),
        states: z
          .array(
            z.strictObject({ id: z.string().min(1).optional(), name: z.string().min(1), type: z.enum(STATE_TYPES), position: z.number() }),
          )
          .min(1)
          .optional(),
      }),
    )
    .min(1, 'needs at least one team'),
  users: z.array(
    z.strictObject({
      id: z.string().min(1).optional(),
      name: z.string().min(1),
      email,
      apiKey: z.string().min(8).optional(),
      /** An app user (OAuth app, actor=app): `clientId` is sent as the webhooks' oauthClientId; `clientSecret` mints its token at /oauth/token. */
      app: z.strictObject({ clientId: z.string().min(1).optional(), clientSecret: z.string().min(8).optional() }).optional(),
    }),
  ),
  issues: z
    .array(
      z.strictObject({
        id: z.string().min(1).optional(),
        team: z.string().min(1),
        title: z.string().min(1),
        description: z.string().optional(),
        assignee: email.optional(),
        delegate: email.optional(),
        state: z.string().min(1).optional(),
        priority: z.number().int().min(0).max(4).optional(),
        labels: z.array(z.string().min(1)).optional(),
        /** A project name (issues naming the same one share it). */
        project: z.string().min(1).optional(),
        createdAt: iso.optional(),
        branchName: z.string().min(1).optional(),
        comments: z
          .array(z.strictObject({ id: z.string().min(1).optional(), user: email, body: z.string().min(1), createdAt: iso.optional() }))
          .optional(),
      }),
    )
    .default([]),
})

export type SandboxSeed = z.input<typeof seedSchema>

export const DEFAULT_STATES: { name: string; type: (typeof STATE_TYPES)[number]; position: number }[] = [
  { name: 'Backlog', type: 'backlog', position: 0 },
  { name: 'Todo', type: 'unstarted', position: 1 },
  { name: 'In Progress', type: 'started', position: 2 },
  { name: 'In Review', type: 'started', position: 3 },
  { name: 'Done', type: 'completed', position: 4 },
  { name: 'Canceled', type: 'canceled', position: 5 },
]

const COLORS: Record<string, string> = {
  triage: '#fc7840',
  backlog: '#bec2c8',
  unstarted: '#e2e2e2',
  started: '#f2c94c',
  completed: '#5e6ad2',
  canceled: '#95a2b3',
}

/** Used when `serve` starts with neither a data file nor a seed. */
export const DEFAULT_SEED: SandboxSeed = {
  organization: { name: 'Sandbox', urlKey: 'sandbox' },
  teams: [{ key: 'ENG', name: 'Engineering' }],
  users: [
    { name: 'Factory Agent', email: 'agent@sandbox.local', apiKey: 'lin_api_sandbox_agent' },
    { name: 'Riley Reviewer', email: 'reviewer@sandbox.local', apiKey: 'lin_api_sandbox_reviewer' },
    {
      name: 'Rosie',
      email: 'rosie@oauthapp.sandbox.local',
      apiKey: 'lin_oauth_sandbox_rosie',
      app: { clientId: 'sandbox-rosie-client', clientSecret: 'sandbox-rosie-client-secret' },
    },
  ],
  issues: [
    {
      team: 'ENG',
      title: 'Add a health check endpoint',
      description: 'GET /healthz answers 200 with {"ok":true}.',
      assignee: 'agent@sandbox.local',
      priority: 2,
      labels: ['backend'],
    },
    {
      team: 'ENG',
      title: 'Fix the typo in the README',
      assignee: 'reviewer@sandbox.local',
      delegate: 'agent@sandbox.local',
      priority: 4,
      labels: ['docs'],
    },
    { team: 'ENG', title: 'Plan the next release', state: 'Backlog' },
  ],
}

/** A readable one-line-per-problem message from a zod error (`issues.0.assignee: must be ...`). */
export function describeZodError(err: z.ZodError, root: string): string {
  return err.issues.map((i) => `${[root, ...i.path].join('.')}: ${i.message}`).join('; ')
}

function newApiKey(): string {
  return `lin_api_${randomBytes(20).toString('hex')}`
}

/** Validate a seed and build fresh data from it; `tick()` hands out write timestamps. */
export function buildData(input: unknown, tick: () => string): SandboxData {
  const parsed = seedSchema.safeParse(input)
  if (!parsed.success) throw new SandboxError('invalid_input', `invalid seed: ${describeZodError(parsed.error, 'seed')}`)
  const seed = parsed.data
  const ids = new Set<string>()
  const id = (given: string | undefined, field: string) => {
    const v = given ?? randomUUID()
    if (ids.has(v)) throw new SandboxError('invalid_input', `invalid seed: ${field} id ${v} is used twice`, field)
    ids.add(v)
    return v
  }
  const now = tick()
  const data: SandboxData = {
    version: 1,
    clock: 0,
    lastSyncId: 1,
    organization: {
      id: randomUUID(),
      name: seed.organization?.name ?? 'Sandbox',
      urlKey: seed.organization?.urlKey ?? 'sandbox',
      createdAt: now,
      updatedAt: now,
    },
    teams: [],
    states: [],
    users: [],
    labels: [],
    issues: [],
    comments: [],
    attachments: [],
    agentSessions: [],
    agentActivities: [],
  }
  seed.teams.forEach((t, ti) => {
    if (data.teams.some((x) => x.key === t.key))
      throw new SandboxError('invalid_input', `invalid seed: team key ${t.key} is used twice`, `teams.${ti}.key`)
    const team = {
      id: id(t.id, `teams.${ti}`),
      key: t.key,
      name: t.name,
      description: t.description ?? null,
      nextNumber: 1,
      createdAt: now,
      updatedAt: now,
    }
    data.teams.push(team)
    for (const [si, s] of (t.states ?? DEFAULT_STATES).entries()) {
      const state: StateRecord = {
        id: id((s as { id?: string }).id, `teams.${ti}.states.${si}`),
        teamId: team.id,
        name: s.name,
        type: s.type,
        position: s.position,
        color: COLORS[s.type] ?? '#e2e2e2',
        createdAt: now,
        updatedAt: now,
      }
      data.states.push(state)
    }
  })
  const keys = new Set<string>()
  seed.users.forEach((u, ui) => {
    if (data.users.some((x) => x.email.toLowerCase() === u.email.toLowerCase()))
      throw new SandboxError('invalid_input', `invalid seed: user email ${u.email} is used twice`, `users.${ui}.email`)
    const apiKey = u.apiKey ?? newApiKey()
    if (keys.has(apiKey)) throw new SandboxError('invalid_input', `invalid seed: users.${ui}.apiKey is used twice`, `users.${ui}.apiKey`)
    keys.add(apiKey)
    data.users.push({
      id: id(u.id, `users.${ui}`),
      name: u.name,
      email: u.email,
      apiKey,
      createdAt: now,
      updatedAt: now,
      ...(u.app ? { app: { clientId: u.app.clientId ?? randomUUID(), clientSecret: u.app.clientSecret ?? randomUUID() } } : {}),
    })
  })
  const userId = (mail: string | undefined, field: string) => {
    if (mail === undefined) return null
    const user = data.users.find((u) => u.email.toLowerCase() === mail.toLowerCase())
    if (!user)
      throw new SandboxError(
        'invalid_input',
        `invalid seed: ${field} ${mail} is not one of the seed's users (${data.users.map((u) => u.email).join(', ') || 'none'})`,
        field,
      )
    return user.id
  }
  seed.issues.forEach((s, ii) => {
    const at = `issues.${ii}`
    const team = data.teams.find((t) => t.key === s.team)
    if (!team)
      throw new SandboxError(
        'invalid_input',
        `invalid seed: ${at}.team ${s.team} is not a seeded team key (${data.teams.map((t) => t.key).join(', ')})`,
        `${at}.team`,
      )
    const states = data.states.filter((x) => x.teamId === team.id).sort((a, b) => a.position - b.position)
    const state = s.state
      ? states.find((x) => x.name.toLowerCase() === s.state!.toLowerCase())
      : (states.find((x) => x.type === 'unstarted') ?? states[0])
    if (!state)
      throw new SandboxError(
        'invalid_input',
        `invalid seed: ${at}.state ${s.state} is not a state of team ${team.key} (${states.map((x) => x.name).join(', ')})`,
        `${at}.state`,
      )
    const labelIds = (s.labels ?? []).map((name) => {
      let label = data.labels.find((l) => l.teamId === team.id && l.name === name)
      if (!label) data.labels.push((label = { id: randomUUID(), teamId: team.id, name, color: '#5e6ad2', createdAt: now, updatedAt: now }))
      return label.id
    })
    const createdAt = s.createdAt ? new Date(s.createdAt).toISOString() : tick()
    const issue = {
      id: id(s.id, at),
      teamId: team.id,
      number: team.nextNumber++,
      title: s.title,
      description: s.description ?? null,
      stateId: state.id,
      assigneeId: userId(s.assignee, `${at}.assignee`),
      delegateId: userId(s.delegate, `${at}.delegate`),
      creatorId: null,
      priority: s.priority ?? 0,
      labelIds,
      ...(s.project ? { project: { id: stableProjectId(s.project), name: s.project } } : {}),
      createdAt,
      updatedAt: createdAt,
      ...(s.branchName ? { branchName: s.branchName } : {}),
    }
    data.issues.push(issue)
    ;(s.comments ?? []).forEach((c, ci) => {
      const cAt = c.createdAt ? new Date(c.createdAt).toISOString() : tick()
      data.comments.push({
        id: id(c.id, `${at}.comments.${ci}`),
        issueId: issue.id,
        userId: userId(c.user, `${at}.comments.${ci}.user`),
        body: c.body,
        parentId: null,
        createdAt: cAt,
        updatedAt: cAt,
      })
    })
  })
  return data
}

/** One id per project name, so issues naming the same project share it. */
function stableProjectId(name: string): string {
  const h = createHash('sha256').update(`project:${name}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}
