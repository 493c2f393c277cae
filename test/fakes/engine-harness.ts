/**
 * Shared set-up for the tests that run the real engine CLIs: a temp git repo as cwd, a private
 * HOME / CODEX_HOME (nothing of the user's home is touched), binary discovery with the CI rule,
 * and process-group inspection for the kill tests.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveEngineBin, type EngineBinName } from '../../lib/engines/resolve.ts'
import type { EngineEvent } from '../../lib/engines/types.ts'

/** The engine binary, or undefined when it is not installed. */
export function engineBin(name: EngineBinName): string | undefined {
  try {
    return resolveEngineBin(name)
  } catch {
    return undefined
  }
}

/** Describe-block title: says how to get the CLI when it is missing (CI fails instead of skipping). */
export function suiteTitle(name: EngineBinName, title: string, bin: string | undefined): string {
  return bin ? title : `${title} (skipped: the ${name} CLI is not installed, run \`make engines\`)`
}

export interface Workspace {
  root: string
  /** A git repo with one commit (README.md): the engine's cwd. */
  repo: string
  home: string
  logPath: string
  /** A minimal environment: PATH, HOME, CODEX_HOME and XDG dirs under the temp dir, plus `extra`. */
  env(extra?: Record<string, string>): Record<string, string>
  cleanup(): void
}

/** A fresh directory in /var/tmp (not the temp dir Codex checks), or undefined where that cannot be made. */
function outsideTemp(prefix: string): string | undefined {
  try {
    return mkdtempSync(join('/var/tmp', `${prefix}home-`))
  } catch {
    return undefined
  }
}

/** A fresh workspace under the system temp dir (its HOME in /var/tmp where possible). */
export function makeWorkspace(prefix = 'rose-engine-'): Workspace {
  const root = mkdtempSync(join(tmpdir(), prefix))
  const repo = join(root, 'repo')
  // HOME (and CODEX_HOME) outside the temp dir: Codex refuses to create its sandbox helper
  // (codex-linux-sandbox) under it, and with bwrap installed every sandboxed command then fails.
  const home = outsideTemp(prefix) ?? join(root, 'home')
  mkdirSync(repo)
  mkdirSync(join(home, '.codex'), { recursive: true })
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], {
      cwd: repo,
      stdio: 'ignore',
    })
  git('init', '-q')
  writeFileSync(join(repo, 'README.md'), '# sample\n')
  git('add', '.')
  git('commit', '-q', '-m', 'initial')
  let runs = 0
  return {
    root,
    repo,
    home,
    get logPath() {
      return join(root, 'logs', `run-${++runs}.log`)
    },
    env: (extra = {}) => ({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: home,
      CODEX_HOME: join(home, '.codex'),
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      XDG_STATE_HOME: join(home, '.local', 'state'),
      ...extra,
    }),
    cleanup: () => {
      rmSync(root, { recursive: true, force: true })
      rmSync(home, { recursive: true, force: true })
    },
  }
}

/** Collects the events of a run. */
export function eventLog(): { events: EngineEvent[]; onEvent: (e: EngineEvent) => void } {
  const events: EngineEvent[] = []
  return { events, onEvent: (e) => events.push(e) }
}

interface PsRow {
  pid: number
  pgid: number
  args: string
}

function ps(args: string[]): PsRow[] {
  let out = ''
  try {
    out = execFileSync('ps', args, { encoding: 'utf8' })
  } catch {
    return [] // ps exits 1 when nothing matched
  }
  return out
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), pgid: Number(m[2]), args: m[3]! }))
}

/** The process group of the (first) process whose command line contains `token`. */
export function groupOf(token: string): number | undefined {
  return ps(['-eo', 'pid=,pgid=,args=']).find((r) => r.args.includes(token) && !r.args.startsWith('ps '))?.pgid
}

/** Live members of process group `pgid` (zombies waiting for their reaper do not count). */
export function groupMembers(pgid: number): PsRow[] {
  return ps(['-o', 'pid=,pgid=,stat=', '-g', String(pgid)]).filter((r) => !r.args.startsWith('Z'))
}

/** Processes anywhere whose command line contains `token`. */
export function processesWith(token: string): PsRow[] {
  return ps(['-eo', 'pid=,pgid=,args=']).filter((r) => r.args.includes(token) && !r.args.startsWith('ps '))
}

/** Poll `check` until it returns true or `ms` pass. */
export async function eventually(check: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return check()
}

/** A value that exists only in this test run, for env and marker checks. */
export function unique(label: string): string {
  return `${label}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
}

/** A prompt of `lines` lines (about 50 bytes each) between two unique markers: too big for argv, found by its marker. */
export function megabytePrompt(lines = 10_000): { prompt: string; marker: string } {
  const marker = unique('bigprompt')
  const body = Array.from({ length: lines }, (_, i) => `line ${i}: the private issue text goes on and on.`).join('\n')
  return { prompt: `${marker} start\n${body}\n${marker} end`, marker }
}

/** Pids of processes on this machine whose command line contains `needle` (what `ps` would show anyone). */
export function cmdlinesWith(needle: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readFileSync(`/proc/${n}/cmdline`, 'latin1').includes(needle)
      } catch {
        return false
      }
    })
    .map(Number)
}
