/**
 * git through argv arrays (never a shell string), trusting nothing in the repository it runs in
 * (invariant 10 "the engine is hostile"): every command gets the one HARDENED `-c` list (hooks,
 * fsmonitor, credential helpers, askpass, ssh command, external diff... off) and an allow-listed
 * env (PATH, HOME, locale, TMPDIR, the commit identity; no system or global config). Tokens never
 * reach .git/config or remote URLs (invariant "no-secrets-in-reach"): an authenticated fetch or
 * push gets the token through GIT_ASKPASS for that one command, and the helper answers only for
 * the configured host. Config that `-c` cannot switch off (filters under any name,
 * url.*.insteadOf, include.path) is caught by lib/tamper.ts before any command of ours runs.
 * The redactor comes from the caller (an agent's context), never from process.env.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FactoryError } from './errors.ts'
import { run, type RunResult } from './proc.ts'
import { type Redactor, redactorFor } from './log.ts'

/** What a git call takes from its caller (an AgentContext is one): the env to start from and the redactor for its messages. */
export interface GitCaller {
  env: NodeJS.ProcessEnv
  redact?: Redactor
  /** Aborting it kills a git command under way (the driver's stop: a hung remote must not hold it up). */
  signal?: AbortSignal
}

/** Default deadline of one git command: 5 min (a hung remote), or ROSE_GIT_TIMEOUT_MS from the caller's env. */
export const GIT_TIMEOUT_MS = 5 * 60_000

/** The one place the git deadline is read: ROSE_GIT_TIMEOUT_MS when it is a positive number, else GIT_TIMEOUT_MS. */
export function gitTimeoutMs(env: NodeJS.ProcessEnv): number {
  const ms = Number(env.ROSE_GIT_TIMEOUT_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : GIT_TIMEOUT_MS
}

/**
 * The one list of config overrides every git command of the factory runs with: a planted value
 * of any of these keys in the repository's config has no effect. (Command-line config is read
 * last, so it wins; an empty credential.helper empties the helper list.)
 */
export const HARDENED: readonly (readonly [string, string])[] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', ''],
  ['core.askPass', ''],
  ['core.sshCommand', 'ssh'],
  ['core.editor', 'true'],
  ['core.pager', 'cat'],
  ['credential.helper', ''],
  ['credential.useHttpPath', 'false'],
  ['protocol.ext.allow', 'never'],
  ['commit.gpgSign', 'false'],
  ['tag.gpgSign', 'false'],
  ['rebase.autoStash', 'false'],
  ['rebase.autoSquash', 'false'],
  ['rebase.updateRefs', 'false'],
  ['merge.autoStash', 'false'],
  ['sequence.editor', 'true'],
  ['submodule.recurse', 'false'],
  ['fetch.recurseSubmodules', 'false'],
  ['push.recurseSubmodules', 'no'],
  ['gc.auto', '0'],
  ['maintenance.auto', 'false'],
]

/** HARDENED as git arguments (`-c key=value` pairs, before the subcommand). */
export const HARDENED_ARGS: readonly string[] = HARDENED.flatMap(([k, v]) => ['-c', `${k}=${v}`])

/** What git may see of the caller's env: names and prefixes (nothing else, tokens least of all). */
const ALLOWED = [
  'PATH',
  'HOME',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'GIT_AUTHOR_NAME',
  'GIT_AUTHOR_EMAIL',
  'GIT_COMMITTER_NAME',
  'GIT_COMMITTER_EMAIL',
]
const ALLOWED_PREFIXES = ['LC_']
/** Added for network commands only: proxies, CA bundles and the ssh agent of the operator. */
const NETWORK = [
  'SSH_AUTH_SOCK',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'GIT_SSL_CAINFO',
]

function pick(base: NodeJS.ProcessEnv, names: readonly string[], prefixes: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && (names.includes(k) || prefixes.some((p) => k.startsWith(p)))) out[k] = v
  }
  return out
}

/**
 * Env for git built from an allow-list of `base` (never a token): no prompts, no pager or editor,
 * no system or global config, a fixed identity for commits unless the caller sets one.
 */
export function gitEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env = pick(base, ALLOWED, ALLOWED_PREFIXES)
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    GIT_EDITOR: 'true',
    GIT_SEQUENCE_EDITOR: 'true',
    GIT_AUTHOR_NAME: env.GIT_AUTHOR_NAME ?? 'rose-factory',
    GIT_AUTHOR_EMAIL: env.GIT_AUTHOR_EMAIL ?? 'rose-factory@localhost',
    GIT_COMMITTER_NAME: env.GIT_COMMITTER_NAME ?? 'rose-factory',
    GIT_COMMITTER_EMAIL: env.GIT_COMMITTER_EMAIL ?? 'rose-factory@localhost',
    ...extra,
  }
}

/**
 * Run git (HARDENED first) with the allow-listed env of the caller (`opts.env`, e.g. authEnv,
 * replaces it for network commands); a non-zero exit is a git_failed error carrying the stderr,
 * redacted by the caller's redactor (or the deny-listed values of its env) and without the
 * askpass token.
 */
export async function git(
  args: string[],
  caller: GitCaller,
  opts: { cwd?: string; env?: Record<string, string>; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const env = opts.env ?? gitEnv(caller.env)
  const timeoutMs = opts.timeoutMs ?? gitTimeoutMs(caller.env)
  const res = await run(['git', ...HARDENED_ARGS, ...args], { cwd: opts.cwd, env, timeoutMs, signal: caller.signal })
  if (res.exitCode !== 0 && !opts.allowFail) {
    const hide = caller.redact ?? redactorFor(caller.env)
    const scrub = (text: string) => hide(redactorFor(env, ['ROSE_GIT_PASSWORD'])(text))
    throw new FactoryError(
      'git_failed',
      scrub(
        `git ${args.join(' ')} failed (exit ${res.exitCode}${res.killed === 'timeout' ? `, no answer within ${timeoutMs} ms (ROSE_GIT_TIMEOUT_MS)` : res.killed ? `, ${res.killed}` : ''}): ${(res.stderr.trim() || res.stdout.trim()).slice(0, 2000)}`,
      ),
      {
        fix: 'see the git message; check the repo URL, base branch and credentials',
      },
    )
  }
  return res
}

/** Trimmed stdout of a git command. */
export async function gitOut(args: string[], caller: GitCaller, cwd: string): Promise<string> {
  return (await git(args, caller, { cwd })).stdout.trim()
}

/** True when the remote URL is a local path or file:// URL (no auth, no PR). */
export function isLocalRemote(url: string): boolean {
  return url.startsWith('/') || url.startsWith('./') || url.startsWith('../') || url.startsWith('file://')
}

/**
 * The askpass helper: it answers only the two prompts git shows for the configured host
 * (ROSE_GIT_HOST, https only), byte for byte, with the username and the token set on that one
 * command; any other prompt (another host, plain http, a rewritten URL) gets nothing and exit 1.
 * git's prompts read "Username for 'https://<host>': " and "Password for 'https://<user>@<host>': ".
 */
export const ASKPASS_SCRIPT = `#!/bin/sh
# rose-factory askpass: answers only for the configured host (see lib/git.ts).
[ -n "$ROSE_GIT_HOST" ] || exit 1
user="\${ROSE_GIT_USERNAME:-x-access-token}"
if [ "$1" = "Username for 'https://$ROSE_GIT_HOST': " ]; then
  printf '%s\\n' "$user"
elif [ "$1" = "Password for 'https://$user@$ROSE_GIT_HOST': " ] && [ -n "$ROSE_GIT_PASSWORD" ]; then
  printf '%s\\n' "$ROSE_GIT_PASSWORD"
else
  exit 1
fi
`

/** Write the askpass helper (rewritten whenever its content differs: an old or altered copy is replaced). */
export function askpassScript(home: string): string {
  const dir = join(home, 'bin')
  const path = join(dir, 'git-askpass.sh')
  let current = ''
  try {
    current = readFileSync(path, 'utf8')
  } catch {}
  if (current !== ASKPASS_SCRIPT) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const tmp = `${path}.${process.pid}.tmp`
    writeFileSync(tmp, ASKPASS_SCRIPT, { mode: 0o700 })
    chmodSync(tmp, 0o700)
    renameSync(tmp, path)
  }
  return path
}

/** The host (with its port) and user of an https URL, or null for any other URL. */
export function httpsHost(url: string): { host: string; user?: string } | null {
  if (!/^https:\/\//i.test(url)) return null
  try {
    const u = new URL(url)
    return { host: u.host, user: u.username ? decodeURIComponent(u.username) : undefined }
  } catch {
    return null
  }
}

/**
 * Env for the one authenticated git network command against `url` (the agents.yaml repo URL):
 * the allow-listed env plus the operator's proxies and ssh agent, and, for an https URL with a
 * token, the askpass helper bound to that URL's host.
 */
export function authEnv(home: string, token: string | undefined, base: NodeJS.ProcessEnv, url: string): Record<string, string> {
  const network = pick(base, NETWORK)
  const https = httpsHost(url)
  if (!token || !https) return gitEnv(base, network)
  return gitEnv(base, {
    ...network,
    GIT_ASKPASS: askpassScript(home),
    ROSE_GIT_HOST: https.host,
    ROSE_GIT_PASSWORD: token,
    ROSE_GIT_USERNAME: https.user ?? 'x-access-token',
  })
}
