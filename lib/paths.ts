/**
 * Invariant "paths-under-root": worktree and lock paths come from a sanitized issue key and are proven to stay
 * under the factory root, symlinks resolved. Branch names from Linear are sanitized too.
 */
import { accessSync, constants, existsSync, mkdirSync, realpathSync, statSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { FactoryError } from './errors.ts'
import { sha256Hex } from './hash.ts'

/** A filesystem-safe key: anything outside [A-Za-z0-9._-] becomes `_`, plus a hash suffix when that changed it. */
export function sanitizeKey(key: string): string {
  const cleaned = key
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 80)
  if (cleaned === key && cleaned !== '' && cleaned !== '.' && cleaned !== '..') return cleaned
  const hash = sha256Hex(key).slice(0, 8)
  return `${cleaned || 'issue'}-${hash}`
}

/** Resolve the deepest existing ancestor through symlinks, then re-append the rest. */
function realish(path: string): string {
  let cur = resolve(path)
  const rest: string[] = []
  while (!existsSync(cur)) {
    const parent = dirname(cur)
    if (parent === cur) break
    rest.unshift(cur.slice(parent.length + (parent.endsWith('/') ? 0 : 1)))
    cur = parent
  }
  return join(realpathSync(cur), ...rest)
}

/** Throw workspace_outside_root unless `path` (symlinks resolved) is strictly inside `root`. */
export function assertUnder(root: string, path: string): string {
  const realRoot = realish(root)
  const real = realish(path)
  const rel = relative(realRoot, real)
  if (!rel || rel.startsWith('..') || isAbsolute(rel)) {
    throw new FactoryError('workspace_outside_root', `path ${real} is not inside ${realRoot}`, {
      fix: 'remove the symlink or the odd identifier that points outside the factory root',
    })
  }
  return real
}

/** A child path of `root` built from sanitized segments, proven to stay inside it. */
export function safeJoin(root: string, ...segments: string[]): string {
  mkdirSync(root, { recursive: true })
  return assertUnder(root, join(root, ...segments.map(sanitizeKey)))
}

const BRANCH_MAX = 100

/** Only [A-Za-z0-9._/-]; per segment no `..`, no leading `.`/`-`, no trailing `.`/`-`/`.lock`. */
function cleanRef(name: string): string {
  const out = name
    .replace(/[^A-Za-z0-9._/-]+/g, '-')
    .split('/')
    .map((seg) => {
      let s = seg.replace(/\.{2,}/g, '.').replace(/^[.-]+/, '')
      for (let prev = ''; prev !== s;) {
        prev = s
        s = s.replace(/[.-]+$/, '').replace(/\.lock$/i, '')
      }
      return s
    })
    .filter(Boolean)
    .join('/')
  // Cutting to length can expose a new bad ending: clean the cut result again.
  return out.length > BRANCH_MAX ? cleanRef(out.slice(0, BRANCH_MAX)) : out
}

/**
 * A git-safe branch name from Linear's branchName (see cleanRef). Never a ref path (`refs/...`),
 * never the base branch (`base`, `main`, `master`) nor `HEAD`: the factory pushes this name, and
 * a branchName of `refs/heads/main` must not become a push to main. Anything else falls back to
 * `rose/<key>` (cleaned the same way, hashed when nothing usable remains).
 */
export function sanitizeBranch(branchName: string | undefined, issueKey: string, base = 'main'): string {
  const out = branchName ? cleanRef(branchName) : ''
  const reserved = new Set(['head', 'main', 'master', base.toLowerCase()])
  const first = out.split('/')[0]!.toLowerCase()
  const usable =
    out && /[A-Za-z0-9]/.test(out) && !reserved.has(out.toLowerCase()) && !['refs', 'heads', 'remotes', 'tags', 'origin'].includes(first)
  if (usable) return out
  const key = cleanRef(issueKey.toLowerCase())
  return key && /[a-z0-9]/.test(key) ? cleanRef(`rose/${key}`) : `rose/issue-${sha256Hex(issueKey).slice(0, 8)}`
}

/** Directory layout under FACTORY_HOME. */
export function layout(home: string) {
  return {
    home,
    state: join(home, 'state.json'),
    locks: join(home, 'locks'),
    repos: join(home, 'repos'),
    worktrees: join(home, 'worktrees'),
    logs: join(home, 'logs'),
  }
}

/** The first existing ancestor of `path` that is not a directory, if any (FACTORY_HOME under a file). */
function fileAncestor(path: string): string | undefined {
  for (let cur = resolve(path); ; cur = dirname(cur)) {
    try {
      return statSync(cur).isDirectory() ? undefined : cur
    } catch {
      if (dirname(cur) === cur) return undefined
    }
  }
}

/**
 * Make sure FACTORY_HOME is a directory this process can write (creating it if needed), or fail
 * with home_unusable (exit 2) naming the path and the fix, instead of a bare EACCES/ENOTDIR later.
 */
export function ensureHome(home: string): string {
  const fix = `set FACTORY_HOME to a directory you can write (e.g. export FACTORY_HOME=$HOME/rose-factory), or fix the permissions of ${home}`
  const blocker = fileAncestor(home)
  if (blocker)
    throw new FactoryError('home_unusable', `FACTORY_HOME ${home} cannot be a directory: ${blocker} is a file`, {
      fix: `remove or rename ${blocker}, or ${fix}`,
    })
  try {
    mkdirSync(home, { recursive: true })
    accessSync(home, constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new FactoryError('home_unusable', `FACTORY_HOME ${home} is not writable (${code})`, { fix, cause: err })
  }
  return home
}
