/**
 * A fake GCP metadata server, OAuth token endpoint and Secret Manager on 127.0.0.1, answering on
 * the real REST paths with the real JSON shapes:
 * - `GET /computeMetadata/v1/instance/service-accounts/default/token` (header `Metadata-Flavor: Google`
 *   required, 403 without): `{access_token, expires_in, token_type}`;
 * - `POST /oauth2/token` (a service-account key's token_uri): the RS256 JWT-bearer grant, signature checked;
 * - `GET /v1/projects/{project}/secrets/{name}/versions/latest:access` with `Bearer` auth (401
 *   UNAUTHENTICATED otherwise): `{name, payload: {data (base64), dataCrc32c (a decimal string)}}`.
 *
 * Refusals are Google's error envelope `{error: {code, message, status}}`:
 * - no such secret: 404 NOT_FOUND;
 * - no access: 403 PERMISSION_DENIED "Permission 'secretmanager.versions.access' denied for resource ...";
 * - newest version disabled or destroyed: 400 FAILED_PRECONDITION "Secret Version
 *   [projects/<number>/secrets/<id>/versions/<n>] is in DISABLED state." (DESTROYED alike). `latest`
 *   is "an alias to the most recently created SecretVersion" (Secret Manager REST reference,
 *   projects.secrets.versions/access), so an older enabled version is not used; the message and
 *   status are as quoted from the API in github.com/google-github-actions/get-secretmanager-secrets
 *   issue 268 and external-secrets/external-secrets issues 1951 and 4042. Google names the project
 *   by its number there, not its id.
 */
import { createVerify, type KeyObject } from 'node:crypto'
import { crc32c } from '../../lib/gcp-secrets.ts'

/** What a project holds under a name: the value of its newest version, or how access is refused. */
export type FakeSecret = string | { refuse: 403 | 'disabled' | 'destroyed' }

export interface FakeGcp {
  url: string
  /** GCP_METADATA_URL and GCP_SECRETMANAGER_URL pointed at this fake. */
  env: { GCP_METADATA_URL: string; GCP_SECRETMANAGER_URL: string }
  calls: { metadata: number; token: number; access: { path: string; auth: string | null }[] }
  jwtClaims: Record<string, unknown>[]
  reset(): void
  stop(): void
}

const PROJECT_NUMBER = '123456'

const googleError = (code: number, status: string, message: string) => Response.json({ error: { code, message, status } }, { status: code })

/** Start the fake; `secrets` by project id, then name. `publicKey` verifies service-account JWTs. */
export function startFakeGcp(secrets: Record<string, Record<string, FakeSecret>>, publicKey?: KeyObject): FakeGcp {
  const calls: FakeGcp['calls'] = { metadata: 0, token: 0, access: [] }
  const jwtClaims: Record<string, unknown>[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url)
      if (url.pathname === '/computeMetadata/v1/instance/service-accounts/default/token') {
        if (req.headers.get('metadata-flavor') !== 'Google') return new Response('Missing Metadata-Flavor', { status: 403 })
        calls.metadata++
        return Response.json({ access_token: `meta-token-${calls.metadata}`, expires_in: 3599, token_type: 'Bearer' })
      }
      if (url.pathname === '/oauth2/token' && req.method === 'POST') {
        const form = new URLSearchParams(await req.text())
        const [h, c, sig] = (form.get('assertion') ?? '').split('.')
        const signed =
          !!publicKey &&
          createVerify('RSA-SHA256')
            .update(`${h}.${c}`)
            .verify(publicKey, Buffer.from(sig ?? '', 'base64url'))
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer' || !signed)
          return Response.json({ error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }, { status: 400 })
        jwtClaims.push(JSON.parse(Buffer.from(c!, 'base64url').toString()))
        calls.token++
        return Response.json({ access_token: 'sa-token', expires_in: 3599, token_type: 'Bearer' })
      }
      const m = url.pathname.match(/^\/v1\/projects\/([^/]+)\/secrets\/([^/]+)\/versions\/latest:access$/)
      if (m && req.method === 'GET') {
        calls.access.push({ path: url.pathname, auth: req.headers.get('authorization') })
        if (!/^Bearer (meta-token-\d+|sa-token)$/.test(req.headers.get('authorization') ?? ''))
          return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.')
        const [, project, name] = m
        const held = secrets[project!]?.[name!]
        if (held === undefined)
          return googleError(404, 'NOT_FOUND', `Secret [projects/${PROJECT_NUMBER}/secrets/${name}] not found or has no versions.`)
        if (typeof held === 'object' && held.refuse === 403)
          return googleError(
            403,
            'PERMISSION_DENIED',
            `Permission 'secretmanager.versions.access' denied for resource 'projects/${project}/secrets/${name}/versions/latest' (or it may not exist).`,
          )
        if (typeof held === 'object')
          return googleError(
            400,
            'FAILED_PRECONDITION',
            `Secret Version [projects/${PROJECT_NUMBER}/secrets/${name}/versions/2] is in ${String(held.refuse).toUpperCase()} state.`,
          )
        const data = Buffer.from(held)
        return Response.json({
          name: `projects/${PROJECT_NUMBER}/secrets/${name}/versions/3`,
          payload: { data: data.toString('base64'), dataCrc32c: String(crc32c(data)) },
        })
      }
      return new Response('not found', { status: 404 })
    },
  })
  const url = `http://127.0.0.1:${server.port}`
  return {
    url,
    env: { GCP_METADATA_URL: url, GCP_SECRETMANAGER_URL: url },
    calls,
    jwtClaims,
    reset() {
      calls.metadata = calls.token = 0
      calls.access = []
    },
    stop: () => void server.stop(true),
  }
}
