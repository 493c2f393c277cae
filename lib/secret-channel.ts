/**
 * Secrets travel between the factory's own processes on a pipe, never in an environ (invariant
 * "no-secrets-in-reach"). On Linux /proc/<pid>/environ is the env block a process started with, and
 * any process of the same user (an engine's shell) can read it; deleting from process.env does not
 * change it. So:
 * - a process started by hand with tokens in its env overwrites their values in its environ block
 *   (lib/environ.ts), or where that cannot be verified re-executes itself (same pid, execve) with
 *   the env minus the secrets and the secrets on an inherited pipe (`cleanOwnEnviron`);
 * - a parent hands a child its secrets on fd 3 (`secretStdio` + `sendSecrets`), the child's env clean;
 * - the receiving process reads the pipe once at start (`channelSecrets`) and merges the values into
 *   the in-memory env its context uses (`processEnv`); process.env itself stays clean, so anything
 *   spawned with process.env gets no token.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { wipeEnvironSecrets } from './environ.ts'
import { isDeniedEnv, isPublicEndpoint } from './secrets.ts'

/** Names the fd a process reads its secrets from (the name is not secret; the pipe's content is). */
export const SECRET_FD_ENV = 'ROSE_SECRET_FD'
/** The fd a child started by spawnScript reads its secrets from. */
export const CHILD_SECRET_FD = 3

let received: Record<string, string> | undefined

/** Read `fd` to its end. */
function readAll(fd: number): string {
  const chunks: Buffer[] = []
  const buf = Buffer.alloc(65536)
  for (;;) {
    let n: number
    try {
      n = readSync(fd, buf, 0, buf.length, null)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue
      throw err
    }
    if (n <= 0) break
    chunks.push(Buffer.from(buf.subarray(0, n)))
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * The secrets this process was handed on its channel, read once (the first call reads the fd named
 * by ROSE_SECRET_FD to its end, closes it and removes ROSE_SECRET_FD from process.env); {} without one.
 */
export function channelSecrets(): Record<string, string> {
  if (received) return received
  received = {}
  const fd = Number(process.env[SECRET_FD_ENV])
  delete process.env[SECRET_FD_ENV]
  if (!Number.isInteger(fd) || fd < 3) return received
  try {
    const parsed = JSON.parse(readAll(fd) || '{}') as unknown
    if (parsed && typeof parsed === 'object') for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') received[k] = v
  } finally {
    try {
      closeSync(fd)
    } catch {}
  }
  return received
}

/** The env this process works with: its own (clean) env plus the secrets of its channel. In memory only. */
export function processEnv(): NodeJS.ProcessEnv {
  return { ...process.env, ...channelSecrets() }
}

/** True when `name` holds a secret: deny-listed, or one of `names` (every agent's token_env). */
export function isSecretName(name: string, names: readonly string[] = []): boolean {
  const upper = name.toUpperCase()
  return isDeniedEnv(name) || names.some((n) => n.toUpperCase() === upper)
}

/** `env` split in two: what may sit in an environ, and the secrets (deny-listed names and `names`). */
export function splitSecrets(
  env: NodeJS.ProcessEnv,
  names: readonly string[] = [],
): { clean: Record<string, string>; secrets: Record<string, string> } {
  const clean: Record<string, string> = {}
  const secrets: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || k === SECRET_FD_ENV) continue
    // A public endpoint (LINEAR_API_URL) is no secret: it may stay in an environ.
    if (isSecretName(k, names) && !isPublicEndpoint(k, v)) secrets[k] = v
    else clean[k] = v
  }
  return { clean, secrets }
}

/** The child's env and stdio for spawn: `env` without secrets plus ROSE_SECRET_FD=3, fd 3 a pipe. */
export function secretStdio(
  env: NodeJS.ProcessEnv,
  names: readonly string[] = [],
): { env: Record<string, string>; secrets: Record<string, string> } {
  const { clean, secrets } = splitSecrets(env, names)
  return { env: { ...clean, [SECRET_FD_ENV]: String(CHILD_SECRET_FD) }, secrets }
}

/** Write `secrets` to the child's fd-3 pipe and close it. */
export function sendSecrets(pipe: Writable | null | undefined, secrets: Record<string, string>): void {
  if (!pipe) return
  pipe.on('error', () => {}) // a child that died at once: nothing to hand over
  pipe.end(JSON.stringify(secrets))
}

/**
 * If this process's own environ holds a secret (deny-listed or one of `names`), take the secrets
 * into memory (processEnv) and out of process.env, and make /proc/self/environ clean: first by
 * wiping their values in the environ block in place (lib/environ.ts; 'wiped', checked by reading
 * /proc/self/environ back: no second start, ~20 ms saved), else by replacing the process image
 * with the same command, the env minus the secrets, and the secrets on an inherited pipe (same
 * pid, same stdio). Bun on Linux only (bun:ffi); elsewhere (Node/tsx) it returns 'unsupported' and
 * the secrets stay in this process's environ (the engine's PID namespace still hides it). Returns
 * 'clean' when there was nothing to do.
 */
export async function cleanOwnEnviron(names: readonly string[] = []): Promise<'clean' | 'wiped' | 'unsupported'> {
  const { clean, secrets } = splitSecrets(process.env, names)
  if (Object.keys(secrets).length === 0) return 'clean'
  const ffi = await loadFfi()
  if (!ffi) return 'unsupported'
  if (wipeEnvironSecrets((name) => Object.hasOwn(secrets, name), ffi)) {
    received = { ...channelSecrets(), ...secrets }
    for (const name of Object.keys(secrets)) delete process.env[name]
    return 'wiped'
  }
  const { ptr } = ffi
  const readFd = pipeHolding(JSON.stringify({ ...channelSecrets(), ...secrets }), ffi)
  const libc = ffi.dlopen('libc.so.6', { execve: { args: ['ptr', 'ptr', 'ptr'], returns: 'i32' } })
  const keep: Buffer[] = []
  const cstr = (s: string) => {
    const b = Buffer.from(`${s}\0`)
    keep.push(b)
    return BigInt(ptr(b))
  }
  const cArray = (xs: string[]) => {
    const a = new BigUint64Array(xs.length + 1)
    xs.forEach((x, i) => (a[i] = cstr(x)))
    return a
  }
  const argv = cArray([process.execPath, ...process.execArgv, ...process.argv.slice(1)])
  const envp = cArray(Object.entries({ ...clean, [SECRET_FD_ENV]: String(readFd) }).map(([k, v]) => `${k}=${v}`))
  libc.symbols.execve(ptr(keep[0]!), ptr(argv), ptr(envp))
  // Only reached when execve failed: keep going with the secrets where they were.
  closeSync(readFd)
  return 'unsupported'
}

/**
 * What an entry that can start engines (start, run, run-engine) does first: take the secrets a
 * parent handed on the channel, then, if its own environ still holds a token (started by hand),
 * clean it (in place, else by re-executing itself; Bun on Linux). Names are the deny-list plus the token_env
 * of every agent in the config the arguments point at.
 */
export async function enterWithoutSecrets(rawArgs: readonly string[] = process.argv.slice(2)): Promise<'clean' | 'wiped' | 'unsupported'> {
  channelSecrets()
  if (printsOnly(rawArgs)) return 'clean'
  // Imported here: an entry that stops before this (--version, --help) reads no config.
  const { configSecretNames } = await import('./config-path.ts')
  return cleanOwnEnviron(await configSecretNames(rawArgs, processEnv()))
}

/**
 * True for a command line that only prints and exits, so no engine can start and cleaning the
 * environ would be wasted start-up time: --help/-h/--version/-v among the flags (before `--`), or `help`, `version`,
 * `completion` as the verb.
 */
export function printsOnly(rawArgs: readonly string[]): boolean {
  const end = rawArgs.indexOf('--')
  const flags = end >= 0 ? rawArgs.slice(0, end) : rawArgs
  return (
    flags.some((a) => a === '--help' || a === '-h' || a === '--version' || a === '-v') ||
    ['help', 'version', 'completion'].includes(rawArgs[0]!)
  )
}

const PIPE_MAX = 60_000

/**
 * A file descriptor to read `text` from, to hand a child (proc.run `fds`, execve): a real pipe
 * (pipe(2) through bun:ffi: no O_CLOEXEC, and once read it is empty, so nobody can read it again
 * through /proc/<pid>/fd); without bun:ffi (Node) an unlinked 0600 file. The caller closes it once
 * the child has it. Bun's and Node's own `stdio: 'pipe'` are socket pairs, which Claude Code
 * cannot read its token from.
 */
export function pipeHolding(text: string, ffi?: typeof import('bun:ffi')): number {
  const data = Buffer.from(text)
  if (data.length > PIPE_MAX) throw new Error(`a secret handed on a pipe must be under ${PIPE_MAX} bytes (got ${data.length})`)
  if (ffi) {
    const libc = ffi.dlopen('libc.so.6', { pipe: { args: ['ptr'], returns: 'i32' } })
    const fds = new Int32Array(2)
    if (libc.symbols.pipe(ffi.ptr(fds)) === 0) {
      writeSync(fds[1]!, data)
      closeSync(fds[1]!)
      return fds[0]!
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'rose-fd-'))
  try {
    const path = join(dir, 'v')
    const fd = openSync(path, 'w+', 0o600)
    unlinkSync(path)
    // pwrite at 0: the shared offset stays at 0 for the child's read.
    writeSync(fd, data, 0, data.length, 0)
    return fd
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** bun:ffi when running on Bun on Linux, else undefined. */
export async function loadFfi(): Promise<typeof import('bun:ffi') | undefined> {
  if (!process.versions.bun || process.platform !== 'linux') return undefined
  try {
    return await import('bun:ffi')
  } catch {
    return undefined
  }
}
