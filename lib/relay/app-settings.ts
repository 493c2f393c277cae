/**
 * The relay's Linear app settings, read from the environment through one zod schema; every
 * missing or malformed variable is reported in one error (exit 2), never one at a time.
 */
import { z } from '../zod.ts'
import { FactoryError } from '../errors.ts'

/** The scopes an agent app asks for: read/write, and to be assignable and @-mentionable. */
export const APP_SCOPES = 'read,write,app:assignable,app:mentionable'

const url = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })

const envSchema = z.strictObject({
  LINEAR_CLIENT_ID: z.string({ error: 'is not set' }).min(1, 'is empty'),
  LINEAR_CLIENT_SECRET: z.string({ error: 'is not set' }).min(1, 'is empty'),
  RELAY_PUBLIC_URL: url.optional(),
  LINEAR_OAUTH_URL: url.optional(),
  LINEAR_API_URL: url.default('https://api.linear.app/graphql'),
})

export interface LinearAppSettings {
  clientId: string
  clientSecret: string
  /** `${RELAY_PUBLIC_URL}/oauth/callback`; null when the relay only mints client_credentials tokens. */
  redirectUri: string | null
  /** Where the browser goes to install the app. */
  authorizeUrl: string
  /** POST endpoint of the token grants. */
  tokenUrl: string
  /** Linear's GraphQL endpoint. */
  apiUrl: string
}

const OPTIONAL = new Set(['RELAY_PUBLIC_URL', 'LINEAR_OAUTH_URL', 'LINEAR_API_URL'])

const trim = (u: string) => u.replace(/\/+$/, '')

/**
 * Settings from `env` (names the relay reads: LINEAR_CLIENT_ID, LINEAR_CLIENT_SECRET,
 * RELAY_PUBLIC_URL, LINEAR_OAUTH_URL, LINEAR_API_URL). RELAY_PUBLIC_URL is required unless
 * `clientCredentials` (no browser install, so no redirect).
 */
export function appSettings(env: NodeJS.ProcessEnv = process.env, opts: { clientCredentials?: boolean } = {}): LinearAppSettings {
  // An empty optional variable counts as unset (a blank line in an env file is not a URL).
  const picked: Record<string, string> = {}
  for (const name of Object.keys(envSchema.shape)) {
    const value = env[name]
    if (value !== undefined && (value !== '' || !OPTIONAL.has(name))) picked[name] = value
  }
  const parsed = envSchema.safeParse(picked)
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${String(i.path[0])} ${i.message}`)
  if (!opts.clientCredentials && !picked.RELAY_PUBLIC_URL)
    problems.push('RELAY_PUBLIC_URL is not set (the OAuth redirect is built from it)')
  if (!parsed.success || problems.length) {
    throw new FactoryError('relay_config_invalid', `Linear app settings: ${problems.join('; ')}`, {
      fix: "set them in the relay's environment: LINEAR_CLIENT_ID and LINEAR_CLIENT_SECRET from the Linear app's settings, RELAY_PUBLIC_URL the relay's public https URL",
    })
  }
  const e = parsed.data
  const oauthBase = e.LINEAR_OAUTH_URL ? trim(e.LINEAR_OAUTH_URL) : undefined
  return {
    clientId: e.LINEAR_CLIENT_ID,
    clientSecret: e.LINEAR_CLIENT_SECRET,
    redirectUri: e.RELAY_PUBLIC_URL ? `${trim(e.RELAY_PUBLIC_URL)}/oauth/callback` : null,
    authorizeUrl: oauthBase ? `${oauthBase}/oauth/authorize` : 'https://linear.app/oauth/authorize',
    tokenUrl: `${oauthBase ?? 'https://api.linear.app'}/oauth/token`,
    apiUrl: e.LINEAR_API_URL,
  }
}
