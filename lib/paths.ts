/**
 * Invariant "paths-under-root": worktree and lock paths come from a sanitized issue key and are proven to stay
 * under the factory root, symlinks resolved. Branch names from Linear are sanitized too.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, realpathSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { FactoryError } from './errors.ts'

/** A filesystem-safe key: anything outside [A-Za-z0-9._-] becomes `_`, plus a hash suffix when that changed it. */
export function sanitizeKey(key: string): string {
  const cleaned = key
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 80)
  if (cleaned === key && cleaned !== '' && cleaned !== '.' && cleaned !== '..') return cleaned
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 8)
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
 * A git-safe branch name from Linear's branchName (see cleanRef). Falls back to `rose/<key>`
 * (cleaned the same way, hashed when nothing usable remains).
 */
export function sanitizeBranch(branchName: string | undefined, issueKey: string): string {
  const out = branchName ? cleanRef(branchName) : ''
  if (out && /[A-Za-z0-9]/.test(out) && out !== 'HEAD') return out
  const key = cleanRef(issueKey.toLowerCase())
  return key && /[a-z0-9]/.test(key)
    ? cleanRef(`rose/${key}`)
    : `rose/issue-${createHash('sha256').update(issueKey).digest('hex').slice(0, 8)}`
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
