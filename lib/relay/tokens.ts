/**
 * The one way anything in the relay gets a Linear app token for a workspace. Invariants:
 * - refresh early: a token with less than REFRESH_MARGIN_MS left (~20 h into Linear's 24 h) is
 *   renewed before it is handed out;
 * - refresh is serialized across every process sharing the store (store.withInstallLock), and
 *   inside the lock the install is RE-READ: if someone renewed it meanwhile, theirs is used;
 * - the new pair is persisted (putInstall) before the token is used or returned, so a crash after
 *   Linear rotated the refresh token leaves at worst the old refresh token, which Linear replays
 *   (same new pair) within 30 minutes;
 * - a lost refresh reply is replayed with the same refresh token; a refused one (invalid_grant)
 *   is a `refresh_failed` note and a clear error;
 * - a 401 on use leads to one forced renewal (refresh, or re-mint for client_credentials) and one retry.
 */
import { FactoryError } from '../errors.ts'
import { logger } from '../log.ts'
import type { Sealer } from './seal.ts'
import { APP_SCOPES, type LinearAppSettings } from './app-settings.ts'
import type { Install, RelayNote, RelayStore } from './store.ts'
import { defaultEndpointDeps, postGrant, readIdentity, type EndpointDeps, type TokenReply } from './token-endpoint.ts'

/** Renew a token when less than this is left (Linear's access tokens last 24 h: renewed after ~20 h). */
export const REFRESH_MARGIN_MS = 4 * 3600_000

export interface TokenDeps extends EndpointDeps {
  now: () => number
  sleep: (ms: number) => Promise<void>
  /** Sends of one refresh request before giving up (a lost reply is replayed with the same refresh token). */
  refreshAttempts: number
}

export interface TokenKeeper {
  /** A valid access token for `orgId` (renewed first when it is close to expiry). */
  accessToken(orgId: string): Promise<string>
  /** Linear answered 401 to `rejected`: renew once (unless another caller already did) and return the new token. */
  renewAfterUnauthorized(orgId: string, rejected: string): Promise<string>
  /** Call `send` with the org's token; on a 401, renew once and call it again. */
  callWithToken(orgId: string, send: (token: string) => Promise<Response>): Promise<Response>
  /** Exchange an authorization code (the OAuth callback) and store the install. */
  installFromCode(code: string): Promise<Install>
  /** Mint a client_credentials app token (single workspace) and store the install. */
  mintClientCredentials(): Promise<Install>
}

const log = logger('relay-oauth')

/** A TokenKeeper over `store`; tokens are sealed with `sealer` before they reach it. */
export function tokenKeeper(opts: {
  store: RelayStore
  settings: LinearAppSettings
  sealer: Sealer
  deps?: Partial<TokenDeps>
}): TokenKeeper {
  const { store, settings, sealer } = opts
  const deps: TokenDeps = {
    ...defaultEndpointDeps,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    refreshAttempts: 3,
    ...opts.deps,
  }
  const note = (kind: RelayNote['kind'], orgId: string, detail: string) => store.recordNote({ kind, orgId, detail, at: deps.now() })
  const fresh = (install: Install) => install.expiresAt - deps.now() > REFRESH_MARGIN_MS

  async function usable(orgId: string): Promise<Install> {
    const install = await store.getInstall(orgId)
    if (!install)
      throw new FactoryError('relay_not_installed', `the Linear app is not installed in organization ${orgId}`, {
        details: { reason: 'unknown' },
      })
    if (install.revokedAt !== null)
      throw new FactoryError(
        'relay_not_installed',
        `the Linear app's access to organization ${orgId} (${install.orgName}) was revoked at ${new Date(install.revokedAt).toISOString()}`,
        { fix: 'reinstall the app in that workspace via /oauth/authorize', details: { reason: 'revoked' } },
      )
    return install
  }

  /** Send the refresh request, replaying it with the same refresh token while the reply is lost. */
  async function refreshWithReplay(orgId: string, refreshToken: string): Promise<TokenReply> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await postGrant(settings, { grant_type: 'refresh_token', refresh_token: refreshToken }, deps)
      } catch (err) {
        const lost = err instanceof FactoryError && err.details?.reason === 'unreachable'
        if (!lost || attempt >= deps.refreshAttempts) throw err
        log.warn(
          `org ${orgId}: the refresh reply was lost (${err.message}); replaying the same refresh request (${attempt + 1}/${deps.refreshAttempts})`,
        )
        await deps.sleep(500 * attempt)
      }
    }
  }

  /** Holding the install lock: re-read, renew only if `stillNeeded`, persist, then return the token. */
  async function renewLocked(orgId: string, stillNeeded: (install: Install, token: string) => boolean): Promise<string> {
    const current = await usable(orgId)
    const token = sealer.open(current.accessTokenSealed)
    if (!stillNeeded(current, token)) return token
    let reply: TokenReply
    try {
      if (current.kind === 'client_credentials')
        reply = await postGrant(settings, { grant_type: 'client_credentials', scope: APP_SCOPES }, deps)
      else if (current.refreshTokenSealed === null) {
        throw new FactoryError('relay_oauth_failed', `organization ${orgId}: the token expired and the install has no refresh token`, {
          fix: 'reinstall the app in that workspace via /oauth/authorize',
          details: { reason: 'invalid_grant' },
        })
      } else reply = await refreshWithReplay(orgId, sealer.open(current.refreshTokenSealed))
    } catch (err) {
      const reason = err instanceof FactoryError ? err.details?.reason : undefined
      if (reason === 'invalid_grant') {
        const detail = `Linear refused to renew the token of ${current.orgName} (${orgId}): ${(err as Error).message}`
        await note('refresh_failed', orgId, detail)
        log.error(detail)
        throw new FactoryError('relay_oauth_failed', detail, {
          fix: 'reinstall the app in that workspace via /oauth/authorize',
          details: { reason: 'invalid_grant' },
          cause: err,
        })
      }
      // Linear did not answer: a token that is still valid keeps serving; the next call tries again with the same refresh token.
      if (current.expiresAt > deps.now() && reason === 'unreachable') {
        log.warn(`org ${orgId}: could not renew the token yet (${(err as Error).message}); using the current one`)
        return token
      }
      throw err
    }
    const now = deps.now()
    const next: Install = {
      ...current,
      accessTokenSealed: sealer.seal(reply.accessToken),
      refreshTokenSealed: reply.refreshToken
        ? sealer.seal(reply.refreshToken)
        : current.kind === 'oauth'
          ? current.refreshTokenSealed
          : null,
      expiresAt: now + reply.expiresInMs,
      scope: reply.scope || current.scope,
      updatedAt: now,
    }
    // Persisted before anyone uses the new token: the old refresh token is retired at Linear now.
    await store.putInstall(next)
    log.info(`org ${orgId}: renewed the ${current.kind} token (valid until ${new Date(next.expiresAt).toISOString()})`)
    return reply.accessToken
  }

  async function storeNew(reply: TokenReply, kind: Install['kind']): Promise<Install> {
    const who = await readIdentity(settings.apiUrl, reply.accessToken, deps)
    const now = deps.now()
    const install: Install = {
      orgId: who.orgId,
      orgName: who.orgName,
      appUserId: who.appUserId,
      kind,
      accessTokenSealed: sealer.seal(reply.accessToken),
      refreshTokenSealed: reply.refreshToken ? sealer.seal(reply.refreshToken) : null,
      expiresAt: now + reply.expiresInMs,
      scope: reply.scope,
      updatedAt: now,
      revokedAt: null,
    }
    // Under the lock: a refresh of the previous install in flight must not overwrite this one.
    await store.withInstallLock(install.orgId, () => store.putInstall(install))
    log.info(`installed in ${who.orgName} (${who.orgId}) as app user ${who.appUserId} (${kind})`)
    return install
  }

  const keeper: TokenKeeper = {
    async accessToken(orgId) {
      const install = await usable(orgId)
      if (fresh(install)) return sealer.open(install.accessTokenSealed)
      return store.withInstallLock(orgId, () => renewLocked(orgId, (i) => !fresh(i)))
    },
    renewAfterUnauthorized(orgId, rejected) {
      // Renew only if the stored token is still the one Linear rejected (else another caller already did).
      return store.withInstallLock(orgId, () => renewLocked(orgId, (_, token) => token === rejected))
    },
    async callWithToken(orgId, send) {
      const token = await keeper.accessToken(orgId)
      const res = await send(token)
      if (res.status !== 401) return res
      await res.body?.cancel()
      log.warn(`org ${orgId}: Linear answered 401 to the current token; renewing it once`)
      return send(await keeper.renewAfterUnauthorized(orgId, token))
    },
    async installFromCode(code) {
      if (!settings.redirectUri)
        throw new FactoryError('relay_config_invalid', 'RELAY_PUBLIC_URL is not set: the OAuth callback cannot be used')
      const reply = await postGrant(settings, { grant_type: 'authorization_code', code, redirect_uri: settings.redirectUri }, deps)
      return storeNew(reply, 'oauth')
    },
    async mintClientCredentials() {
      return storeNew(await postGrant(settings, { grant_type: 'client_credentials', scope: APP_SCOPES }, deps), 'client_credentials')
    },
  }
  return keeper
}

/** Record that the app lost access to `orgId` (OAuth revoke, PermissionChange): revokedAt set, a note for /status. */
export async function markRevoked(
  store: RelayStore,
  orgId: string,
  detail: string,
  opts: { kind?: 'oauth_revoked' | 'permission_change'; now?: number } = {},
): Promise<void> {
  const now = opts.now ?? Date.now()
  await store.withInstallLock(orgId, async () => {
    const install = await store.getInstall(orgId)
    if (install && install.revokedAt === null) await store.putInstall({ ...install, revokedAt: now, updatedAt: now })
  })
  await store.recordNote({ kind: opts.kind ?? 'oauth_revoked', orgId, detail, at: now })
}
