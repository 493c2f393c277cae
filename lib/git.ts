/**
 * git through argv arrays (never a shell string). Tokens never reach .git/config or remote URLs
 * (invariant "no-secrets-in-reach"): an authenticated push gets the token through GIT_ASKPASS for that
 * one command.
 * The environment and the redactor come from the caller (an agent's context), never from
 * process.env.
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
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

/** Env for git built on `base`: no prompts, no pager, a fixed identity for commits, no user config surprises. */
export function gitEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v
  return {
    ...env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    GIT_AUTHOR_NAME: env.GIT_AUTHOR_NAME ?? 'rose-factory',
    GIT_AUTHOR_EMAIL: env.GIT_AUTHOR_EMAIL ?? 'rose-factory@localhost',
    GIT_COMMITTER_NAME: env.GIT_COMMITTER_NAME ?? 'rose-factory',
    GIT_COMMITTER_EMAIL: env.GIT_COMMITTER_EMAIL ?? 'rose-factory@localhost',
    ...extra,
  }
}

/**
 * Run git with the caller's env (`opts.env`, e.g. authEnv, replaces it for network commands); a
 * non-zero exit is a git_failed error carrying the stderr, redacted by the caller's redactor (or
 * the deny-listed values of that env) and without the askpass token.
 */
export async function git(
  args: string[],
  caller: GitCaller,
  opts: { cwd?: string; env?: Record<string, string>; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const env = opts.env ?? gitEnv(caller.env)
  const timeoutMs = opts.timeoutMs ?? gitTimeoutMs(caller.env)
  const res = await run(['git', ...args], { cwd: opts.cwd, env, timeoutMs, signal: caller.signal })
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
 * Write (once) an askpass helper that answers git's prompts from env vars set only on the push
 * command: the token lives in that process's env, not in any file or URL.
 */
export function askpassScript(home: string): string {
  const dir = join(home, 'bin')
  const path = join(dir, 'git-askpass.sh')
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      path,
      '#!/bin/sh\ncase "$1" in\n  Username*) printf "%s\\n" "${ROSE_GIT_USERNAME:-x-access-token}" ;;\n  *) printf "%s\\n" "$ROSE_GIT_PASSWORD" ;;\nesac\n',
    )
    chmodSync(path, 0o700)
  }
  return path
}

/** Env (built on `base`) for an authenticated git network command (https remotes with a token). */
export function authEnv(home: string, token: string | undefined, base: NodeJS.ProcessEnv): Record<string, string> {
  if (!token) return gitEnv(base)
  return gitEnv(base, { GIT_ASKPASS: askpassScript(home), ROSE_GIT_PASSWORD: token, ROSE_GIT_USERNAME: 'x-access-token' })
}
