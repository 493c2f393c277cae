/**
 * The one place that spawns processes. node:child_process works under both Bun and Node, so the
 * scripts also run under tsx. Argv arrays only (invariant "paths-under-root"): never a shell string built from
 * issue text. Failures come back as values (exitCode, signal, timedOut), never as throws,
 * except when the binary itself is missing.
 */
import type { ChildProcess } from 'node:child_process'
import { closeSync } from 'node:fs'
import type { Writable } from 'node:stream'
import { FactoryError } from './errors.ts'
import { killTree, signalGroup } from './signal.ts'
import { loadFfi, pipeHolding, processEnv, secretStdio, sendSecrets } from './secret-channel.ts'

/** node:child_process, loaded on first use: an idle tick spawns nothing, and under Bun the module costs ~5 ms to load. */
const childProcess = () => process.getBuiltinModule('node:child_process')

export interface RunOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  /** Text written to stdin, then stdin is closed. Without it stdin is /dev/null. */
  input?: string
  /** Kill the process group after this long with no output on stdout/stderr. */
  stallMs?: number
  /** Kill the process group after this long in all. */
  timeoutMs?: number
  /** Kill the process group when aborted. */
  signal?: AbortSignal
  /** SIGTERM first, SIGKILL after this grace. */
  killGraceMs?: number
  /** Called with each complete stdout line. */
  onLine?: (line: string) => void
  /** Called with each complete stderr line. */
  onErrLine?: (line: string) => void
  /** Keep at most this many bytes of stdout/stderr in the result (default 1 MiB each). */
  maxBuffer?: number
  /**
   * Texts handed to the child on extra file descriptors: the first on fd 3, the next on fd 4, ...
   * (each a pipe written then closed). For credentials a child reads from an fd, never from its env.
   */
  fds?: string[]
  /** Called once the process exists, with its pid (= its process group id: it leads its own group). */
  onSpawn?: (pid: number) => void
}

export interface RunResult {
  argv: string[]
  exitCode: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Why we killed it, if we did. */
  killed: 'stall' | 'timeout' | 'abort' | null
  pid: number | undefined
  durationMs: number
}

/** Spawn `argv[0]` with `argv[1..]` in its own process group and wait for it to end. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.fds?.length) return loadFfi().then((ffi) => runWith(argv, opts, ffi))
  return runWith(argv, opts, undefined)
}

function runWith(argv: string[], opts: RunOptions, ffi: Awaited<ReturnType<typeof loadFfi>>): Promise<RunResult> {
  const started = Date.now()
  const maxBuffer = opts.maxBuffer ?? 1024 * 1024
  return new Promise((resolve, reject) => {
    let child: ChildProcess
    // Real pipes (not the runtime's socket pairs), already written and closed on our side.
    const extra = (opts.fds ?? []).map((text) => pipeHolding(text, ffi))
    try {
      child = childProcess().spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: (opts.env ?? process.env) as NodeJS.ProcessEnv,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...extra],
        detached: true,
      })
    } catch (err) {
      reject(missingBinary(argv[0]!, err))
      return
    } finally {
      for (const fd of extra) {
        try {
          closeSync(fd)
        } catch {}
      }
    }
    try {
      if (child.pid) opts.onSpawn?.(child.pid)
    } catch {}
    let stdout = ''
    let stderr = ''
    let outRest = ''
    let errRest = ''
    let killed: RunResult['killed'] = null
    let killTimer: ReturnType<typeof setTimeout> | undefined
    let stallTimer: ReturnType<typeof setTimeout> | undefined
    let hardTimer: ReturnType<typeof setTimeout> | undefined
    let settled = false

    const killGroup = (why: NonNullable<RunResult['killed']>) => {
      if (killed || settled) return
      killed = why
      signalGroup(child.pid, 'SIGTERM')
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), opts.killGraceMs ?? 2000)
    }
    const armStall = () => {
      if (!opts.stallMs) return
      if (stallTimer) clearTimeout(stallTimer)
      stallTimer = setTimeout(() => killGroup('stall'), opts.stallMs)
    }
    armStall()
    if (opts.timeoutMs) hardTimer = setTimeout(() => killGroup('timeout'), opts.timeoutMs)
    const onAbort = () => killGroup('abort')
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(onAbort)
      else opts.signal.addEventListener('abort', onAbort, { once: true })
    }

    child.stdout!.setEncoding('utf8')
    child.stderr!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      armStall()
      if (stdout.length < maxBuffer) stdout += chunk
      if (opts.onLine) {
        const parts = (outRest + chunk).split('\n')
        outRest = parts.pop() ?? ''
        for (const p of parts) opts.onLine(p)
      }
    })
    child.stderr!.on('data', (chunk: string) => {
      armStall()
      if (stderr.length < maxBuffer) stderr += chunk
      if (opts.onErrLine) {
        const parts = (errRest + chunk).split('\n')
        errRest = parts.pop() ?? ''
        for (const p of parts) opts.onErrLine(p)
      }
    })
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {})
      child.stdin!.end(opts.input)
    }
    child.on('error', (err) => {
      if (settled) return
      settled = true
      cleanup()
      reject(missingBinary(argv[0]!, err))
    })
    // The leader exited but something it started still holds stdout/stderr open: give it a
    // moment, then kill the rest of the group so a clean exit is not mistaken for a stall.
    let exitTimer: ReturnType<typeof setTimeout> | undefined
    child.on('exit', () => {
      if (stallTimer) clearTimeout(stallTimer)
      if (hardTimer) clearTimeout(hardTimer)
      exitTimer = setTimeout(() => {
        signalGroup(child.pid, 'SIGKILL')
        child.stdout?.destroy()
        child.stderr?.destroy()
      }, 200)
    })
    child.on('close', (code, sig) => {
      if (exitTimer) clearTimeout(exitTimer)
      if (settled) return
      settled = true
      if (outRest && opts.onLine) opts.onLine(outRest)
      if (errRest && opts.onErrLine) opts.onErrLine(errRest)
      // The leader is gone; make sure nothing it started outlives it when we killed it.
      if (killed) signalGroup(child.pid, 'SIGKILL')
      cleanup()
      resolve({ argv, exitCode: code, signal: sig, stdout, stderr, killed, pid: child.pid, durationMs: Date.now() - started })
    })
    function cleanup() {
      if (stallTimer) clearTimeout(stallTimer)
      if (hardTimer) clearTimeout(hardTimer)
      if (killTimer) clearTimeout(killTimer)
      opts.signal?.removeEventListener('abort', onAbort)
    }
  })
}

function missingBinary(bin: string, err: unknown): FactoryError {
  const code = (err as NodeJS.ErrnoException)?.code
  if (code === 'ENOENT') {
    return new FactoryError('engine_missing', `cannot run "${bin}": not found on PATH`, {
      fix: `install ${bin} or put it on PATH`,
      cause: err,
    })
  }
  return new FactoryError('internal', `cannot spawn "${bin}": ${(err as Error)?.message ?? err}`, { cause: err })
}

export interface ChildHandle {
  pid: number | undefined
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>
  /** Send `sig` (default SIGTERM) to the child; SIGKILL kills it with everything it started (killTree). */
  kill(sig?: NodeJS.Signals): void
}

/**
 * Start another of our scripts as a child process with the same runtime (bun, or node with the
 * tsx loader flags in execArgv), inheriting stdio so its tagged log lines reach the terminal.
 * Invariant "no-secrets-in-reach": the secrets of `env` (deny-listed names and `secretNames`, e.g.
 * every agent's token_env) are not put in the child's environ; they go on its fd 3 (lib/secret-channel.ts).
 */
export function spawnScript(
  script: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; secretNames?: readonly string[] } = {},
): ChildHandle {
  const { env, secrets } = secretStdio(opts.env ?? processEnv(), opts.secretNames)
  const child = childProcess().spawn(process.execPath, [...process.execArgv, script, ...args], {
    cwd: opts.cwd,
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  })
  sendSecrets(child.stdio[3] as Writable | null, secrets)
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(1))
    child.on('exit', (code) => resolve(code))
  })
  return {
    pid: child.pid,
    exited,
    kill(sig = 'SIGTERM') {
      // SIGKILL is the last word: take what the script started in other process groups with it
      // (an engine, git), or they would run on, orphaned, in a worktree the next run uses.
      if (sig === 'SIGKILL' && child.pid && child.exitCode === null && child.signalCode === null) {
        killTree(child.pid)
        return
      }
      try {
        child.kill(sig)
      } catch {}
    },
  }
}
