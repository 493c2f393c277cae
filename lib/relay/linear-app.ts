/**
 * The relay's Linear side assembled from the environment, in the shape the server wires
 * (authorize, callback, graphql, installs): settings, the encryption key, the token keeper and
 * the pass-through over one store. `keeper` is exported for the rest of the relay (the first
 * thought): it is the one way to a token.
 */
import { appSettings, type LinearAppSettings } from './app-settings.ts'
import { authorizeResponse, callbackResponse } from './oauth.ts'
import { graphqlPassthrough, type Passthrough, type RateView } from './passthrough.ts'
import { loadEncryptionKey, sealer } from './seal.ts'
import type { Install, RelayStore } from './store.ts'
import { markRevoked, tokenKeeper, type TokenKeeper } from './tokens.ts'
import { firstThoughtPoster } from './first-thought.ts'
import type { RelayLinear } from './server.ts'

/** An install as /status shows it: no token, sealed or not. */
export type InstallView = Omit<Install, 'accessTokenSealed' | 'refreshTokenSealed'> & { rateLimit: RateView | null }

export interface LinearApp {
  settings: LinearAppSettings
  keeper: TokenKeeper
  passthrough: Passthrough
  authorize(req: Request): Promise<Response>
  callback(req: Request): Promise<Response>
  graphql(req: Request, orgId: string | null): Promise<Response>
  installs(): Promise<InstallView[]>
  /** client_credentials mode: mint the app token at start unless a live one is stored. */
  ensureClientCredentials(): Promise<Install>
}

/**
 * Build the Linear side for `store`. `storeDir` is the local store's directory (its
 * encryption.key is used when RELAY_ENCRYPTION_KEY is unset); omit it for a shared store.
 * Throws relay_config_invalid naming every missing variable.
 */
export function linearApp(opts: {
  store: RelayStore
  env?: NodeJS.ProcessEnv
  storeDir?: string
  clientCredentials?: boolean
  now?: () => number
}): LinearApp {
  const env = opts.env ?? process.env
  const now = opts.now ?? Date.now
  const settings = appSettings(env, { clientCredentials: opts.clientCredentials })
  const seal = sealer(loadEncryptionKey({ env, storeDir: opts.storeDir }).key)
  const keeper = tokenKeeper({ store: opts.store, settings, sealer: seal, deps: { now } })
  const passthrough = graphqlPassthrough({ keeper, settings, deps: { now } })
  return {
    settings,
    keeper,
    passthrough,
    authorize: async () => (settings.redirectUri ? authorizeResponse(settings, now()) : installOff()),
    callback: async (req) => (settings.redirectUri ? callbackResponse(req, { settings, keeper, now: now() }) : installOff()),
    // A worker that does not name the workspace gets the relay's only one (one-workspace set-ups).
    graphql: async (req, orgId) => {
      const live = orgId ? [] : (await opts.store.listInstalls()).filter((i) => i.revokedAt === null)
      const org = orgId || (live.length === 1 ? live[0]!.orgId : null)
      return passthrough.handle(req, org ? { orgId: org } : {})
    },
    async installs() {
      const limits = passthrough.rateLimits()
      return (await opts.store.listInstalls()).map(({ accessTokenSealed: _a, refreshTokenSealed: _r, ...rest }) => ({
        ...rest,
        rateLimit: limits[rest.orgId] ?? null,
      }))
    },
    async ensureClientCredentials() {
      const live = (await opts.store.listInstalls()).find((i) => i.kind === 'client_credentials' && i.revokedAt === null)
      return live ?? keeper.mintClientCredentials()
    },
  }
}

const installOff = () =>
  new Response('The OAuth install is off on this relay: it uses a client_credentials token (RELAY_PUBLIC_URL is not set).\n', {
    status: 404,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  })

/**
 * The server's Linear side for this environment, or undefined when no app is configured
 * (LINEAR_CLIENT_ID unset): the relay then only queues. client_credentials mints its token now.
 */
export async function relayLinear(opts: {
  store: RelayStore
  env: NodeJS.ProcessEnv
  storeDir?: string
  clientCredentials: boolean
}): Promise<RelayLinear | undefined> {
  if (!opts.env.LINEAR_CLIENT_ID && !opts.clientCredentials) return undefined
  const app = linearApp({ store: opts.store, env: opts.env, storeDir: opts.storeDir, clientCredentials: opts.clientCredentials })
  if (opts.clientCredentials) await app.ensureClientCredentials()
  return {
    authorize: (req) => app.authorize(req),
    callback: (req) => app.callback(req),
    graphql: (req, orgId) => app.graphql(req, orgId),
    installs: () => app.installs(),
    firstThought: firstThoughtPoster({ keeper: app.keeper, apiUrl: app.settings.apiUrl }),
    revoked: (orgId, detail) => markRevoked(opts.store, orgId, detail),
  }
}
