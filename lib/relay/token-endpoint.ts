/**
 * Linear's OAuth token endpoint (POST form-encoded to /oauth/token: authorization_code,
 * refresh_token, client_credentials) and the one GraphQL read an install needs (the app user and
 * the workspace). Failures are relay_oauth_failed with `details.reason`: `invalid_grant` (Linear
 * refused the code or refresh token: only a reinstall helps), `unreachable` (no answer, a timeout
 * or a 5xx: the reply may be lost, the same request may be replayed) or `refused` (anything else).
 * No message ever carries a token, a code or the client secret.
 */
import { z } from '../zod.ts'
import { FactoryError } from '../errors.ts'
import { redact } from '../secrets.ts'
import type { LinearAppSettings } from './app-settings.ts'

export interface TokenReply {
  accessToken: string
  /** Null for client_credentials tokens (and old long-lived OAuth tokens). */
  refreshToken: string | null
  expiresInMs: number
  scope: string
}

/** The slice of fetch the relay uses (a test can pass its own). */
export type FetchFn = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export interface EndpointDeps {
  fetch: FetchFn
  /** Per request; a reply that takes longer counts as lost. */
  timeoutMs: number
}

export const defaultEndpointDeps: EndpointDeps = { fetch: (input, init) => fetch(input, init), timeoutMs: 15_000 }

export type Grant =
  | { grant_type: 'authorization_code'; code: string; redirect_uri: string }
  | { grant_type: 'refresh_token'; refresh_token: string }
  | { grant_type: 'client_credentials'; scope: string }

// Not strict: this is Linear's reply, and a field Linear adds tomorrow must not break installs.
const tokenReplySchema = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).nullish(),
  expires_in: z.number().positive(),
  scope: z.union([z.string(), z.array(z.string())]).optional(),
})

const errorReplySchema = z.object({ error: z.string().optional(), error_description: z.string().optional() })

const failed = (reason: 'invalid_grant' | 'unreachable' | 'refused', message: string, status?: number, cause?: unknown) =>
  new FactoryError('relay_oauth_failed', message, { details: { reason, status }, cause })

/** POST one grant to Linear's token endpoint; the client id and secret go in the form body. */
export async function postGrant(settings: LinearAppSettings, grant: Grant, deps: EndpointDeps = defaultEndpointDeps): Promise<TokenReply> {
  const secrets = [settings.clientSecret, 'code' in grant ? grant.code : '', 'refresh_token' in grant ? grant.refresh_token : ''].filter(
    Boolean,
  )
  const form = new URLSearchParams({ ...grant, client_id: settings.clientId, client_secret: settings.clientSecret })
  const what = `the ${grant.grant_type} grant at ${settings.tokenUrl}`
  let res: Response
  let text: string
  try {
    res = await deps.fetch(settings.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form,
      signal: AbortSignal.timeout(deps.timeoutMs),
    })
    text = await res.text()
  } catch (err) {
    const e = err as Error
    const why = e.name === 'TimeoutError' ? `no reply within ${deps.timeoutMs} ms` : e.message
    throw failed('unreachable', `Linear did not answer ${what}: ${redact(why, secrets)}`, undefined, err)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  if (!res.ok) {
    const e = errorReplySchema.safeParse(body)
    const said =
      e.success && e.data.error ? `${e.data.error}${e.data.error_description ? `: ${e.data.error_description}` : ''}` : text.slice(0, 200)
    const reason = res.status >= 500 ? 'unreachable' : e.success && e.data.error === 'invalid_grant' ? 'invalid_grant' : 'refused'
    throw failed(reason, `Linear refused ${what}: HTTP ${res.status} ${redact(said, secrets)}`, res.status)
  }
  const ok = tokenReplySchema.safeParse(body)
  if (!ok.success) throw failed('refused', `Linear answered ${what} with HTTP ${res.status} but no access_token/expires_in`, res.status)
  const scope = ok.data.scope
  return {
    accessToken: ok.data.access_token,
    refreshToken: ok.data.refresh_token ?? null,
    expiresInMs: ok.data.expires_in * 1000,
    scope: Array.isArray(scope)
      ? scope.join(',')
      : (scope ?? '')
          .split(/[\s,]+/)
          .filter(Boolean)
          .join(','),
  }
}

export interface InstallIdentity {
  appUserId: string
  orgId: string
  orgName: string
}

const IDENTITY_QUERY = 'query RelayInstallIdentity { viewer { id } organization { id name } }'

const identitySchema = z.object({
  data: z.object({ viewer: z.object({ id: z.string() }), organization: z.object({ id: z.string(), name: z.string() }) }),
})

/** Read the app user's id and the workspace with a fresh token (one GraphQL request). */
export async function readIdentity(apiUrl: string, token: string, deps: EndpointDeps = defaultEndpointDeps): Promise<InstallIdentity> {
  let res: Response
  let body: unknown
  try {
    res = await deps.fetch(apiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: IDENTITY_QUERY }),
      signal: AbortSignal.timeout(deps.timeoutMs),
    })
    body = await res.json().catch(() => undefined)
  } catch (err) {
    throw failed(
      'unreachable',
      `Linear did not answer the install's viewer/organization read at ${apiUrl}: ${redact((err as Error).message, [token])}`,
    )
  }
  const parsed = identitySchema.safeParse(body)
  if (!parsed.success) {
    const msg = (body as { errors?: { message?: string }[] } | undefined)?.errors?.[0]?.message
    throw failed(
      'refused',
      `Linear refused the install's viewer/organization read: HTTP ${res.status}${msg ? ` ${redact(msg, [token])}` : ''}`,
      res.status,
    )
  }
  const { viewer, organization } = parsed.data.data
  return { appUserId: viewer.id, orgId: organization.id, orgName: organization.name }
}
