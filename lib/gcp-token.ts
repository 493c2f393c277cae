/**
 * An OAuth access token for Google APIs, from the metadata server (Cloud Run, GCE) or, when
 * GOOGLE_APPLICATION_CREDENTIALS names a service-account key file, from a signed JWT exchanged at
 * the key's token_uri. Held in memory until shortly before it expires; never logged or written.
 */
import { createSign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { FactoryError } from './errors.ts'

/** The scope Secret Manager accepts. */
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const METADATA_URL = 'http://metadata.google.internal'
const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token'
/** A token is renewed this long before Google says it expires. */
const EARLY_MS = 60_000

/** Side effects of getting a token, with real defaults. */
export interface GcpDeps {
  fetch: (url: string, init?: RequestInit) => Promise<Response>
  now: () => number
  readFile: (path: string) => string
}

/** The real fetch, clock and file reader. */
export const realGcpDeps: GcpDeps = { fetch: (u, i) => fetch(u, i), now: () => Date.now(), readFile: (p) => readFileSync(p, 'utf8') }

const tokens = new Map<string, { token: string; expires: number }>()

/** Forget cached access tokens (tests, and a 401 from an API). */
export function clearGcpTokens(): void {
  tokens.clear()
}

/** A cached or fresh access token: the key file's when GOOGLE_APPLICATION_CREDENTIALS is set, else the metadata server's. */
export async function gcpAccessToken(env: NodeJS.ProcessEnv, deps: GcpDeps = realGcpDeps): Promise<string> {
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS
  const cacheKey = keyFile ? `key:${keyFile}` : `metadata:${env.GCP_METADATA_URL ?? METADATA_URL}`
  const hit = tokens.get(cacheKey)
  if (hit && hit.expires > deps.now()) return hit.token
  const got = keyFile ? await keyFileToken(keyFile, deps) : await metadataToken(env.GCP_METADATA_URL ?? METADATA_URL, deps)
  tokens.set(cacheKey, { token: got.access_token, expires: deps.now() + Math.max(0, got.expires_in * 1000 - EARLY_MS) })
  return got.access_token
}

interface TokenAnswer {
  access_token: string
  expires_in: number
}

async function metadataToken(base: string, deps: GcpDeps): Promise<TokenAnswer> {
  const url = `${base.replace(/\/$/, '')}${TOKEN_PATH}`
  const res = await deps.fetch(url, { headers: { 'Metadata-Flavor': 'Google' } }).catch((e: Error) => {
    throw new FactoryError('secret_unavailable', `no GCP access token: the metadata server at ${url} is unreachable (${e.message})`, {
      fix: 'run on Cloud Run/GCE with a service account, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file',
    })
  })
  return tokenAnswer(res, `the metadata server at ${url}`)
}

async function keyFileToken(path: string, deps: GcpDeps): Promise<TokenAnswer> {
  let key: { client_email?: string; private_key?: string; token_uri?: string; private_key_id?: string }
  try {
    key = JSON.parse(deps.readFile(path))
  } catch (e) {
    throw new FactoryError(
      'secret_unavailable',
      `GOOGLE_APPLICATION_CREDENTIALS=${path} is not a readable JSON key file (${(e as Error).message})`,
      {
        fix: 'point GOOGLE_APPLICATION_CREDENTIALS at a service-account key JSON (IAM > Service accounts > Keys)',
      },
    )
  }
  if (!key.client_email || !key.private_key || !key.token_uri)
    throw new FactoryError('secret_unavailable', `GOOGLE_APPLICATION_CREDENTIALS=${path} lacks client_email, private_key or token_uri`, {
      fix: 'use a service-account key file (type service_account), not user credentials',
    })
  const assertion = signJwt(key as { client_email: string; private_key: string; token_uri: string; private_key_id?: string }, deps.now())
  const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion })
  const res = await deps
    .fetch(key.token_uri, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
    .catch((e: Error) => {
      throw new FactoryError('secret_unavailable', `no GCP access token: ${key.token_uri} is unreachable (${e.message})`, {
        fix: 'check the network to the key file token_uri',
      })
    })
  return tokenAnswer(res, `${key.token_uri} (key of ${key.client_email})`)
}

/** An RS256 JWT asking for the cloud-platform scope, signed with the service account's private key. */
export function signJwt(
  key: { client_email: string; private_key: string; token_uri: string; private_key_id?: string },
  nowMs: number,
): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const iat = Math.floor(nowMs / 1000)
  const header = b64({ alg: 'RS256', typ: 'JWT', ...(key.private_key_id ? { kid: key.private_key_id } : {}) })
  const claims = b64({ iss: key.client_email, scope: CLOUD_PLATFORM_SCOPE, aud: key.token_uri, iat, exp: iat + 3600 })
  const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key.private_key).toString('base64url')
  return `${header}.${claims}.${signature}`
}

async function tokenAnswer(res: Response, from: string): Promise<TokenAnswer> {
  const body = (await res.json().catch(() => ({}))) as Partial<TokenAnswer> & { error?: string; error_description?: string }
  if (!res.ok || typeof body.access_token !== 'string')
    throw new FactoryError(
      'secret_unavailable',
      `no GCP access token from ${from}: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim(),
      {
        fix: 'check the service account (its key is valid and not disabled) or the metadata server of this instance',
      },
    )
  return { access_token: body.access_token, expires_in: Number(body.expires_in) || 300 }
}
