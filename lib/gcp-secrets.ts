/**
 * Secrets resolve env first, then GCP Secret Manager: the variable of that name when set; else, when
 * a GCP project is configured, the `latest` version of the secret of the same name. Values are held
 * in memory with a TTL (never written to disk or logged) and land only in the in-memory env object
 * the process works with, so they travel to children on the secret channel like any other token.
 */
import { FactoryError } from './errors.ts'
import { type GcpDeps, clearGcpTokens, gcpAccessToken, realGcpDeps } from './gcp-token.ts'

const SECRET_MANAGER_URL = 'https://secretmanager.googleapis.com'
/** How long a fetched value is reused before Secret Manager is asked again. */
export const SECRET_TTL_MS = 5 * 60_000

/** Where a secret came from, for `config check` and `doctor` (never its value). */
export type SecretSource = 'env' | 'gcp' | 'missing'

const cache = new Map<string, { value: string; expires: number }>()

/** Forget cached secret values and access tokens. */
export function clearGcpSecrets(): void {
  cache.clear()
  clearGcpTokens()
}

/**
 * Fill the `names` unset in `env` (an in-memory env object, never process.env of a spawning
 * process) from Secret Manager in `project`, and say where each came from. `optional` names may be
 * absent (404/403 gives 'missing'); for the others any failure is a FactoryError naming the env
 * var, the secret and the project, thrown, or with `onError` reported and the name left 'missing'.
 * Without a project nothing is fetched.
 */
export async function resolveSecrets(
  names: readonly string[],
  env: NodeJS.ProcessEnv,
  project: string | undefined,
  opts: { optional?: readonly string[]; deps?: GcpDeps; onError?: (e: FactoryError, name: string) => void } = {},
): Promise<Record<string, SecretSource>> {
  const sources: Record<string, SecretSource> = {}
  for (const name of new Set(names)) {
    if (env[name]) sources[name] = 'env'
    else if (!project) sources[name] = 'missing'
    else {
      try {
        env[name] = await gcpSecret(name, project, env, opts.deps)
        sources[name] = 'gcp'
      } catch (e) {
        const absent = e instanceof FactoryError && /HTTP (403|404)\b/.test(e.message)
        sources[name] = 'missing'
        if (absent && opts.optional?.includes(name)) continue
        if (opts.onError && e instanceof FactoryError) opts.onError(e, name)
        else throw e
      }
    }
  }
  return sources
}

/** The `latest` version of secret `name` in `project`, from the cache or Secret Manager. */
export async function gcpSecret(name: string, project: string, env: NodeJS.ProcessEnv, deps: GcpDeps = realGcpDeps): Promise<string> {
  const base = (env.GCP_SECRETMANAGER_URL ?? SECRET_MANAGER_URL).replace(/\/$/, '')
  const key = `${base}|${project}|${name}`
  const hit = cache.get(key)
  if (hit && hit.expires > deps.now()) return hit.value
  const token = await gcpAccessToken(env, deps)
  const url = `${base}/v1/projects/${encodeURIComponent(project)}/secrets/${encodeURIComponent(name)}/versions/latest:access`
  const what = `${name} is not in the environment and GCP Secret Manager (project ${project}, secret ${name}, version latest)`
  const res = await deps.fetch(url, { headers: { authorization: `Bearer ${token}` } }).catch((e: Error) => {
    throw new FactoryError('secret_unavailable', `${what} is unreachable: ${e.message}`, {
      fix: `export ${name}, or check the network to ${base}`,
    })
  })
  const body = (await res.json().catch(() => ({}))) as AccessAnswer
  if (!res.ok) throw accessError(res.status, body, name, project, what)
  const data = body.payload?.data
  if (typeof data !== 'string')
    throw new FactoryError('secret_unavailable', `${what} answered without payload.data`, {
      fix: `export ${name}, or add a version to the secret`,
    })
  const bytes = Buffer.from(data, 'base64')
  if (body.payload?.dataCrc32c !== undefined && String(crc32c(bytes)) !== String(body.payload.dataCrc32c))
    throw new FactoryError('secret_unavailable', `${what} answered a payload whose CRC32C does not match (corrupted in transit)`, {
      fix: 'try again; if it persists, add a new version of the secret',
    })
  const value = bytes.toString('utf8')
  cache.set(key, { value, expires: deps.now() + SECRET_TTL_MS })
  return value
}

interface AccessAnswer {
  name?: string
  payload?: { data?: string; dataCrc32c?: string | number }
  error?: { code?: number; message?: string; status?: string }
}

/**
 * The FactoryError for a refused access: the env var, the secret, the project and the fix for each Google status.
 * A disabled or destroyed version: `versions/latest` is "an alias to the most recently created
 * SecretVersion" whatever its state (docs.cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access),
 * so an older enabled version does not help; Google answers HTTP 400
 * `{"error":{"code":400,"message":"Secret Version [projects/<number>/secrets/<id>/versions/<n>] is in DISABLED state.","status":"FAILED_PRECONDITION"}}`
 * (as reported verbatim in github.com/google-github-actions/get-secretmanager-secrets/issues/268 for DESTROYED,
 * and external-secrets/external-secrets issues 1951 and 4042 for DISABLED).
 */
function accessError(http: number, body: AccessAnswer, name: string, project: string, what: string): FactoryError {
  const status = body.error?.status ?? ''
  const said = `HTTP ${http} ${status}`.trim()
  const google = body.error?.message ? `: ${body.error.message}` : ''
  const state = /\b(DISABLED|DESTROYED)\b/.exec(body.error?.message ?? '')?.[1]
  const version = /\/versions\/(\d+)\]/.exec(body.error?.message ?? '')?.[1]
  const add = `gcloud secrets versions add ${name} --project ${project} --data-file=-`
  if (status === 'FAILED_PRECONDITION' || state) {
    const newest = version ? `; version ${version} is the newest, and latest never falls back to an older one` : ''
    const fix =
      state === 'DESTROYED'
        ? `export ${name}, or add a new version (a destroyed one cannot come back): ${add}`
        : `export ${name}, or enable it (gcloud secrets versions enable ${version ?? '<version>'} --secret ${name} --project ${project}) or add a new one (${add})`
    return new FactoryError(
      'secret_unavailable',
      `${what} refused: its latest version is ${state?.toLowerCase() ?? 'not enabled'}${newest} (${said}${google})`,
      { fix },
    )
  }
  if (http === 404)
    return new FactoryError('secret_unavailable', `${what} has no such secret or no version of it (${said}${google})`, {
      fix: `export ${name}, or create it: gcloud secrets create ${name} --project ${project} --data-file=-`,
    })
  if (http === 403 || http === 401)
    return new FactoryError('secret_unavailable', `${what} refused access (${said}${google})`, {
      fix: `export ${name}, or grant this service account roles/secretmanager.secretAccessor on secret ${name} in project ${project}`,
    })
  return new FactoryError('secret_unavailable', `${what} failed (${said}${google})`, { fix: `export ${name}, or try again` })
}

let table: Uint32Array | undefined

/** CRC32C (Castagnoli) of `bytes`, the checksum Secret Manager sends as payload.dataCrc32c. */
export function crc32c(bytes: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
      table[n] = c >>> 0
    }
  }
  let crc = 0xffffffff
  for (const b of bytes) crc = table[(crc ^ b) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}
