/**
 * Engine isolation (invariant "no-secrets-in-reach"): under `isolation: namespace` the engine CLI
 * runs inside bubblewrap with its own PID and IPC namespaces, a new session (no TIOCSTI), the
 * system directories read-only, a filtered /etc, a private /tmp, a private HOME holding only its
 * own CLI login, and, read-write, only its worktree (plus the git objects and refs a commit
 * needs: the repository's config, hooks and info/ stay read-only). The network is kept (the
 * model API must be reachable) and the uid is kept. FACTORY_HOME, the real HOME and every other
 * process are out of sight. planIsolation is pure; prepareIsolation gathers the facts it needs.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import type { AgentConfig } from '../config.ts'
import { FactoryError } from '../errors.ts'
import { safeJoin } from '../paths.ts'

export type IsolationMode = 'none' | 'namespace'

/** What the engine step hands the CLI runner (EngineRunInput.isolation). */
export interface IsolationRequest {
  mode: IsolationMode
  agent: string
  factoryHome: string
  /** The bwrap binary (namespace only). */
  bwrap?: string
}

/** The facts planIsolation needs, gathered by prepareIsolation. */
export interface IsolationPaths {
  factoryHome: string
  /** The engine's private HOME ($FACTORY_HOME/engine-home/<agent>), bound read-write as $HOME. */
  engineHome: string
  bwrap: string
  /** The repository's common git dir and this worktree's own git dir, when the worktree is a linked one. */
  git?: { common: string; own: string }
  /** Top-level system entries that are symlinks on this host (`/bin` -> `usr/bin`). */
  symlinks?: Record<string, string>
}

export interface IsolationPlan {
  /** Put before the engine's argv (empty under `none`). */
  argvPrefix: string[]
  /** Human lines for the transcript. */
  notes: string[]
  /** The binary to exec inside (its real path: only that is bound). */
  bin?: string
}

/** System entries bound read-only when present (`/usr` always). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']
/** The parts of /etc a CLI needs (names, TLS, users, time, dynamic linker); nothing else of /etc is visible. */
const ETC_ENTRIES = [
  'alternatives', 'ca-certificates', 'ca-certificates.conf', 'crypto-policies', 'gai.conf', 'gitconfig', 'group', 'host.conf',
  'hostname', 'hosts', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'localtime', 'mime.types', 'nsswitch.conf', 'os-release',
  'passwd', 'pki', 'protocols', 'resolv.conf', 'services', 'ssl', 'timezone',
]
/** Variables that would point the engine back at the real home. */
const HOME_VARS = ['XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME', 'XDG_RUNTIME_DIR', 'CLAUDE_CONFIG_DIR']

/** True when `inner` is `outer` or below it. */
export function within(outer: string, inner: string): boolean {
  const rel = relative(resolve(outer), resolve(inner))
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

/** The directory to expose read-only for the engine binary: its package's node_modules, else the binary alone. */
export function engineRoot(realBin: string, factoryHome: string, worktree: string): string {
  const parts = realBin.split(sep)
  const i = parts.lastIndexOf('node_modules')
  const root = i > 0 ? parts.slice(0, i + 1).join(sep) : realBin
  // Never widen the view to a directory that holds FACTORY_HOME or the worktree.
  return within(root, factoryHome) || within(root, worktree) ? realBin : root
}

/**
 * The bwrap argv prefix for one engine run. `readOnlyWorktree` binds the worktree read-only
 * (Codex's `read-only` sandbox, enforced by us instead of Codex's own nested bwrap).
 */
export function planIsolation(
  agent: { name: string; engine: AgentConfig['engine']; readOnlyWorktree?: boolean },
  worktree: string,
  paths: IsolationPaths,
  engineBin: string,
  env: Record<string, string | undefined>,
): IsolationPlan {
  const a = [paths.bwrap, '--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--share-net']
  for (const dir of SYSTEM_DIRS) {
    const link = paths.symlinks?.[dir]
    if (link !== undefined) a.push('--symlink', link, dir)
    else a.push(dir === '/usr' ? '--ro-bind' : '--ro-bind-try', dir, dir)
  }
  for (const e of ETC_ENTRIES) a.push('--ro-bind-try', `/etc/${e}`, `/etc/${e}`)
  // resolv.conf may be a symlink into /run (systemd-resolved).
  a.push('--ro-bind-try', '/run/systemd/resolve', '/run/systemd/resolve')
  a.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp')
  a.push('--ro-bind', engineRoot(engineBin, paths.factoryHome, worktree), engineRoot(engineBin, paths.factoryHome, worktree))
  a.push('--bind', paths.engineHome, paths.engineHome)
  const notes = [`engine isolation: namespace (${paths.bwrap}): own PID namespace, HOME=${paths.engineHome}, read-write only the worktree`]
  if (paths.git) {
    // Objects and refs so the engine can commit; config, hooks and info/ stay read-only (nothing planted there runs later).
    const c = paths.git.common
    a.push('--ro-bind', c, c)
    for (const sub of ['objects', 'refs', 'logs']) a.push('--bind-try', join(c, sub), join(c, sub))
    a.push('--bind', paths.git.own, paths.git.own)
  }
  a.push(agent.readOnlyWorktree ? '--ro-bind' : '--bind', worktree, worktree)
  if (agent.readOnlyWorktree) notes.push('worktree bound read-only (codex sandbox read-only)')
  // The skeleton bwrap built the mount points in (parents of FACTORY_HOME paths...) becomes read-only too.
  a.push('--remount-ro', '/')
  a.push('--chdir', worktree, '--setenv', 'HOME', paths.engineHome, '--setenv', 'TMPDIR', '/tmp')
  if (agent.engine === 'codex') a.push('--setenv', 'CODEX_HOME', join(paths.engineHome, '.codex'))
  for (const v of HOME_VARS) if (env[v] !== undefined) a.push('--unsetenv', v)
  a.push('--')
  return { argvPrefix: a, notes }
}

/** The login files each CLI needs in its private HOME, relative to the real home (Codex: to CODEX_HOME). */
const LOGIN_FILES: Record<'claude' | 'codex', string[]> = {
  claude: ['.claude.json', '.claude/.credentials.json', '.claude/settings.json'],
  codex: ['auth.json', 'config.toml'],
}

/** Copy the CLI's login into the private HOME (only when missing there or older than the user's). */
export function copyLogin(engine: 'claude' | 'codex', engineHome: string, env: Record<string, string | undefined>, realHome = homedir()): string[] {
  const from = engine === 'codex' ? env.CODEX_HOME || join(realHome, '.codex') : realHome
  const to = engine === 'codex' ? join(engineHome, '.codex') : engineHome
  mkdirSync(to, { recursive: true, mode: 0o700 })
  const copied: string[] = []
  for (const rel of LOGIN_FILES[engine]) {
    const src = join(from, rel)
    const dst = join(to, rel)
    try {
      if (!statSync(src).isFile()) continue
      if (existsSync(dst) && statSync(dst).mtimeMs >= statSync(src).mtimeMs) continue
      mkdirSync(dirname(dst), { recursive: true, mode: 0o700 })
      copyFileSync(src, dst)
      copied.push(rel)
    } catch {}
  }
  return copied
}

/** The common and own git dirs of a linked worktree (its `.git` is a `gitdir:` file), if it is one. */
export function worktreeGitDirs(worktree: string): { common: string; own: string } | undefined {
  try {
    const m = readFileSync(join(worktree, '.git'), 'utf8').match(/^gitdir:\s*(.+?)\s*$/m)
    if (!m) return undefined
    const own = realpathSync(resolve(worktree, m[1]!))
    const common = realpathSync(resolve(own, readFileSync(join(own, 'commondir'), 'utf8').trim()))
    return { common, own }
  } catch {
    return undefined
  }
}

/** Everything impure before planIsolation: the private HOME (0700) and its login, git dirs, host symlinks. */
export function prepareIsolation(
  req: IsolationRequest,
  engine: 'claude' | 'codex',
  worktree: string,
  bin: string,
  env: Record<string, string | undefined>,
  opts: { readOnlyWorktree?: boolean } = {},
): IsolationPlan {
  if (req.mode !== 'namespace' || !req.bwrap) return { argvPrefix: [], notes: [`engine isolation: none`] }
  const engineHome = safeJoin(join(req.factoryHome, 'engine-home'), req.agent)
  mkdirSync(engineHome, { recursive: true, mode: 0o700 })
  const copied = copyLogin(engine, engineHome, env)
  const symlinks: Record<string, string> = {}
  for (const dir of SYSTEM_DIRS) {
    try {
      if (lstatSync(dir).isSymbolicLink()) symlinks[dir] = readlinkSync(dir)
    } catch {}
  }
  const git = worktreeGitDirs(worktree)
  if (git) mkdirSync(join(git.common, 'logs'), { recursive: true })
  const real = realpathSync(worktree)
  const realBin = realpathSync(bin)
  const paths = { factoryHome: realpathSync(req.factoryHome), engineHome: realpathSync(engineHome), bwrap: req.bwrap, git, symlinks }
  const plan = { ...planIsolation({ name: req.agent, engine, readOnlyWorktree: opts.readOnlyWorktree }, real, paths, realBin, env), bin: realBin }
  if (copied.length) plan.notes.push(`copied the ${engine} login into the engine home: ${copied.join(', ')}`)
  return plan
}

/** Which isolation is in force for an agent, and why (for `doctor` and the run's first log line). */
export interface IsolationStatus {
  mode: IsolationMode
  reason: string
  bwrap?: { path: string; version: string }
}

/** bwrap on PATH (or /usr/bin), tried once: can it make a PID namespace here? */
export interface BwrapProbe {
  path?: string
  version?: string
  /** Why it cannot be used (absent, or namespaces refused). */
  problem?: string
}

const probes = new Map<string, BwrapProbe>()

/** Find and try bwrap (cached per PATH). */
export function probeBwrap(env: Record<string, string | undefined> = process.env): BwrapProbe {
  const key = env.PATH ?? ''
  const hit = probes.get(key)
  if (hit) return hit
  let probe: BwrapProbe
  const path = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'].map((d) => join(d, 'bwrap')).find((p) => existsSync(p))
  if (process.platform !== 'linux') probe = { problem: `${process.platform} has no bwrap (Linux only)` }
  else if (!path) probe = { problem: 'bwrap is not installed' }
  else {
    try {
      // node:child_process loaded here, not at import: most processes never probe (~5 ms under Bun).
      const { execFileSync } = process.getBuiltinModule('node:child_process')
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 }).trim().replace(/^bubblewrap\s*/, '')
      execFileSync(path, ['--die-with-parent', '--unshare-pid', '--ro-bind', '/', '/', '--proc', '/proc', '--', 'true'], { stdio: 'pipe', timeout: 5000 })
      probe = { path, version }
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim() || (err as Error).message
      probe = { path, problem: `bwrap at ${path} cannot create a namespace here: ${stderr.split('\n')[0]}` }
    }
  }
  probes.set(key, probe)
  return probe
}

/**
 * The isolation in force for `agent`: its `isolation` key, else `namespace` when bwrap works here,
 * else `none`. An explicit `namespace` that cannot be had is config_invalid (exit 2) naming the fix.
 */
export function isolationStatus(
  agent: Pick<AgentConfig, 'name' | 'engine'> & { isolation?: IsolationMode },
  env: Record<string, string | undefined> = process.env,
  probe: (env: Record<string, string | undefined>) => BwrapProbe = probeBwrap,
): IsolationStatus {
  if (agent.engine === 'console') return { mode: 'none', reason: 'the console engine runs in-process (no CLI to isolate)' }
  if (agent.isolation === 'none') return { mode: 'none', reason: 'isolation: none in agents.yaml' }
  const p = probe(env)
  if (p.path && p.version && !p.problem) {
    const why = agent.isolation === 'namespace' ? 'isolation: namespace in agents.yaml' : 'default on Linux with bwrap'
    return { mode: 'namespace', reason: `${why} (bwrap ${p.version})`, bwrap: { path: p.path, version: p.version } }
  }
  if (agent.isolation === 'namespace')
    throw new FactoryError('config_invalid', `agent ${agent.name}: isolation: namespace, but ${p.problem}`, {
      fix: 'apt-get install bubblewrap (and allow user namespaces), or set isolation: none for this agent',
    })
  return { mode: 'none', reason: `default without a usable bwrap: ${p.problem}` }
}

/** The line a run logs once: `engine isolation: namespace (bwrap 0.8.0)`. */
export function describeIsolation(s: IsolationStatus): string {
  return s.mode === 'namespace' ? `engine isolation: namespace (bwrap ${s.bwrap?.version})` : `engine isolation: none (${s.reason})`
}
