/**
 * The Linear app's install routes as Fetch handlers (the server wires them): GET /oauth/authorize
 * redirects to Linear's consent page with `actor=app` and a signed state; GET /oauth/callback
 * checks the state, exchanges the code and stores the install (tokens sealed). Pages never show a
 * token, a code or the client secret.
 */
import { FactoryError } from '../errors.ts'
import { logger } from '../log.ts'
import { signState, stateKey, verifyState } from './oauth-state.ts'
import { APP_SCOPES, type LinearAppSettings } from './app-settings.ts'
import type { TokenKeeper } from './tokens.ts'

const log = logger('relay-oauth')

/** The URL of Linear's consent page for this app, with a fresh state. */
export function authorizeUrl(settings: LinearAppSettings, now: number = Date.now()): string {
  if (!settings.redirectUri)
    throw new FactoryError('relay_config_invalid', 'RELAY_PUBLIC_URL is not set: the OAuth install cannot redirect back')
  const url = new URL(settings.authorizeUrl)
  url.search = new URLSearchParams({
    client_id: settings.clientId,
    redirect_uri: settings.redirectUri,
    response_type: 'code',
    scope: APP_SCOPES,
    actor: 'app',
    state: signState(stateKey(settings.clientSecret), now),
  }).toString()
  return url.toString()
}

/** GET /oauth/authorize: 302 to Linear's consent page. */
export function authorizeResponse(settings: LinearAppSettings, now: number = Date.now()): Response {
  return new Response(null, { status: 302, headers: { location: authorizeUrl(settings, now), 'cache-control': 'no-store' } })
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(status: number, title: string, text: string): Response {
  const body = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>\n`
  return new Response(body, { status, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } })
}

const STATE_PROBLEM = {
  missing: 'the request has no state parameter',
  malformed: 'the state parameter is malformed',
  forged: 'the state parameter was not signed by this relay',
  expired: 'the state parameter expired (an install must finish within 10 minutes)',
} as const

/** GET /oauth/callback: verify the state, exchange the code, store the install, answer "Installed in <org>". */
export async function callbackResponse(
  request: Request,
  ctx: { settings: LinearAppSettings; keeper: TokenKeeper; now?: number },
): Promise<Response> {
  const params = new URL(request.url).searchParams
  const now = ctx.now ?? Date.now()
  const denied = params.get('error')
  if (denied) {
    const description = params.get('error_description')
    return page(
      400,
      'Not installed',
      `Linear did not authorize the app: ${denied}${description ? ` (${description})` : ''}. Start again at /oauth/authorize.`,
    )
  }
  const state = verifyState(stateKey(ctx.settings.clientSecret), params.get('state'), now)
  if (!state.ok) {
    log.warn(`oauth callback refused: ${STATE_PROBLEM[state.reason]}`)
    return page(400, 'Not installed', `${STATE_PROBLEM[state.reason]}. Start again at /oauth/authorize.`)
  }
  const code = params.get('code')
  if (!code) return page(400, 'Not installed', 'the callback has no code parameter. Start again at /oauth/authorize.')
  try {
    const install = await ctx.keeper.installFromCode(code)
    return page(200, `Installed in ${install.orgName}`, `The app is installed in ${install.orgName}. You can close this page.`)
  } catch (err) {
    const e = err instanceof FactoryError ? err : new FactoryError('relay_oauth_failed', (err as Error).message, { cause: err })
    log.error(`oauth callback failed: ${e.message}`)
    const status = e.details?.reason === 'invalid_grant' ? 400 : 502
    return page(status, 'Not installed', `${e.message}. Start again at /oauth/authorize.`)
  }
}
