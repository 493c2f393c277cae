/**
 * The sandbox's `/oauth/token`: the client_credentials grant Linear offers a single-workspace app
 * (form-encoded client_id + client_secret -> a 30-day app token), so a relay can mint its token
 * from the sandbox as from Linear. The token is the app user's own sandbox key, so everything it
 * does is done as that app user. Other grants are refused as Linear refuses an unknown grant.
 */
import type { SandboxStore } from './store.ts'

const THIRTY_DAYS_S = 30 * 24 * 3600 - 1

/** The answer to one POST /oauth/token. */
export function oauthToken(method: string, raw: string, store: SandboxStore): { status: number; body: unknown } {
  if (method !== 'POST') return { status: 405, body: { error: 'invalid_request', error_description: 'POST form-encoded parameters' } }
  const form = new URLSearchParams(raw)
  const grant = form.get('grant_type')
  if (grant !== 'client_credentials')
    return {
      status: 400,
      body: { error: 'unsupported_grant_type', error_description: `the sandbox supports client_credentials only (got ${grant ?? 'none'})` },
    }
  const app = store.data.users.find((u) => u.app && u.app.clientId === form.get('client_id'))
  if (!app?.app?.clientSecret || app.app.clientSecret !== form.get('client_secret'))
    return { status: 401, body: { error: 'invalid_client', error_description: 'unknown client_id or wrong client_secret' } }
  return {
    status: 200,
    body: { access_token: app.apiKey, token_type: 'Bearer', expires_in: THIRTY_DAYS_S, scope: 'read write app:assignable app:mentionable' },
  }
}
