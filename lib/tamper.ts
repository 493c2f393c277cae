/**
 * Detecting and undoing what an engine changed in a repository's git machinery (invariant 10 "the
 * engine is hostile"). Config that `-c` cannot switch off (a clean/smudge filter under any name,
 * url.*.pushInsteadOf, include.path, a remote named like our URL) would run code or redirect a
 * push, so the factory keeps a fingerprint of the base clone's `config`, `config.worktree`,
 * `hooks/` and `info/` (content, under FACTORY_HOME/fingerprints, outside any worktree) and
 * compares it, reading the files directly (never running git in that repository), before its
 * own git commands touch the repository after an engine ran. A worktree's `.git` link (its
 * gitdir, commondir and back link) is checked the same way. Pure helpers + small file I/O.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { FactoryError } from './errors.ts'
import { sha256Hex } from './hash.ts'

/** The paths (relative to the common git dir) whose content is fingerprinted: files, and every file under the dirs. */
const FILES = ['config', 'config.worktree']
const DIRS = ['hooks', 'info']
const MAX_REPAIRS = 50
/** At most this many files, and keys a file, are named in a message (an engine could plant thousands). */
const MAX_NAMED = 20

export interface Fingerprint {
  gitDir: string
  recordedAt: string
  /** Relative path -> content (base64), or `symlink:<target>` for a symlink. */
  files: Record<string, string>
  /** Repairs made since (newest last): when, by whom (an issue or the driver), what was changed. */
  repairs?: { at: string; by: string; changes: string[]; reported?: boolean }[]
}

export interface Change {
  /** Relative to the common git dir (`config`, `hooks/pre-push`), or `.git` for the worktree's link. */
  file: string
  kind: 'added' | 'removed' | 'changed'
  /** For config files: the keys added, removed or changed (names only, never values). */
  keys?: string[]
}

function walk(root: string, rel: string, out: Record<string, string>): void {
  const abs = join(root, rel)
  let st
  try {
    st = lstatSync(abs)
  } catch {
    return
  }
  if (st.isSymbolicLink()) out[rel] = `symlink:${readlinkSync(abs)}`
  else if (st.isDirectory()) for (const name of readdirSync(abs).sort()) walk(root, `${rel}/${name}`, out)
  else if (st.isFile()) out[rel] = readFileSync(abs).toString('base64')
  else out[rel] = `special:${st.mode}`
}

/** What the fingerprinted files of `gitDir` hold now. */
export function snapshot(gitDir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of [...FILES, ...DIRS]) walk(gitDir, f, out)
  return out
}

/** Where the fingerprint of a git dir lives (keyed by its real path). */
export function fingerprintPath(home: string, gitDir: string): string {
  const key = sha256Hex(realpathSync(gitDir)).slice(0, 20)
  return join(home, 'fingerprints', `${key}.json`)
}

export function readFingerprint(home: string, gitDir: string): Fingerprint | null {
  try {
    return JSON.parse(readFileSync(fingerprintPath(home, gitDir), 'utf8')) as Fingerprint
  } catch {
    return null
  }
}

function writeFingerprint(home: string, fp: Fingerprint): void {
  const path = fingerprintPath(home, fp.gitDir)
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(fp), { mode: 0o600 })
  renameSync(tmp, path)
}

/** Record what `gitDir` holds now as known-good (right after the factory cloned or configured it). */
export function recordFingerprint(home: string, gitDir: string): Fingerprint {
  const fp: Fingerprint = { gitDir: realpathSync(gitDir), recordedAt: new Date().toISOString(), files: snapshot(gitDir) }
  writeFingerprint(home, fp)
  return fp
}

/** The `section[.subsection].key` names of a git config text with their values (a small reader, for naming changes). */
export function configEntries(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let section = ''
  for (const raw of text.split('\n')) {
    let line = raw.trim()
    const head = /^\[\s*([^\]\s"]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\](.*)$/.exec(line)
    if (head) {
      const [name, sub] = [head[1]!.toLowerCase(), head[2]]
      section = sub !== undefined ? `${name}.${sub.replace(/\\(.)/g, '$1')}` : name
      line = head[3]!.trim()
    }
    if (!line || line.startsWith('#') || line.startsWith(';')) continue
    const kv = /^([A-Za-z][\w-]*)\s*(?:=\s*(.*))?$/.exec(line)
    if (!kv) continue
    const key = `${section}.${kv[1]!.toLowerCase()}`
    out.set(key, [...(out.get(key) ?? []), kv[2] ?? 'true'])
  }
  return out
}

function configKeys(before: string, after: string): string[] {
  const [a, b] = [configEntries(before), configEntries(after)]
  const keys: string[] = []
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const [x, y] = [a.get(k), b.get(k)]
    if (!x) keys.push(`+${k}`)
    else if (!y) keys.push(`-${k}`)
    else if (JSON.stringify(x) !== JSON.stringify(y)) keys.push(`~${k}`)
  }
  return keys.sort()
}

const text = (v: string | undefined) =>
  v && !v.startsWith('symlink:') && !v.startsWith('special:') ? Buffer.from(v, 'base64').toString('utf8') : ''

/** What differs between the fingerprint and the files now. */
export function diffSnapshots(known: Record<string, string>, now: Record<string, string>): Change[] {
  const changes: Change[] = []
  for (const file of [...new Set([...Object.keys(known), ...Object.keys(now)])].sort()) {
    const [a, b] = [known[file], now[file]]
    if (a === b) continue
    const kind = a === undefined ? 'added' : b === undefined ? 'removed' : 'changed'
    const change: Change = { file, kind }
    if (FILES.includes(file)) change.keys = configKeys(text(a), text(b))
    changes.push(change)
  }
  return changes
}

/** Changes of `gitDir` against its fingerprint; null when the factory never recorded one. */
export function compareToFingerprint(home: string, gitDir: string): { fingerprint: Fingerprint; changes: Change[] } | null {
  const fingerprint = readFingerprint(home, gitDir)
  if (!fingerprint) return null
  return { fingerprint, changes: diffSnapshots(fingerprint.files, snapshot(gitDir)) }
}

/** One line per change, without any local path: `config (+filter.x.clean, ~remote.origin.url)`, `hooks/pre-push added`. */
export function describeChanges(changes: Change[]): string {
  const more = (n: number, what: string) => (n > 0 ? [`${n} more ${what}`] : [])
  const one = (c: Change) => {
    if (!c.keys?.length) return `${c.file} ${c.kind}`
    const keys = [...c.keys.slice(0, MAX_NAMED).map((k) => k.slice(0, 120)), ...more(c.keys.length - MAX_NAMED, 'keys')]
    return `${c.file} ${c.kind === 'changed' ? '' : `${c.kind} `}(${keys.join(', ')})`
  }
  return [...changes.slice(0, MAX_NAMED).map(one), ...more(changes.length - MAX_NAMED, 'files')].join('; ')
}

/** Put the fingerprinted files back as recorded (extra files removed); the repair is logged in the fingerprint. */
export function repairToFingerprint(home: string, gitDir: string, by: string, reported = false): Change[] {
  const cmp = compareToFingerprint(home, gitDir)
  if (!cmp || cmp.changes.length === 0) return []
  const { fingerprint, changes } = cmp
  // A symlinked or replaced hooks/ or info/ goes first, whole.
  for (const d of DIRS) {
    const abs = join(gitDir, d)
    const st = existsOrNull(abs)
    if (st && !st.isDirectory()) rmSync(abs, { force: true })
  }
  for (const c of changes) {
    const abs = join(gitDir, c.file)
    const want = fingerprint.files[c.file]
    rmSync(abs, { recursive: true, force: true })
    if (want === undefined) continue
    mkdirSync(dirname(abs), { recursive: true })
    if (want.startsWith('symlink:')) continue // never recreate a link: absent is safe
    const tmp = `${abs}.rose-repair`
    writeFileSync(tmp, Buffer.from(want, 'base64'), { mode: c.file.startsWith('hooks/') ? 0o755 : 0o644 })
    renameSync(tmp, abs)
  }
  const repairs = [
    ...(fingerprint.repairs ?? []),
    { at: new Date().toISOString(), by, changes: changes.map((c) => describeChanges([c])), ...(reported ? { reported } : {}) },
  ]
  writeFingerprint(home, { ...fingerprint, repairs: repairs.slice(-MAX_REPAIRS) })
  return changes
}

function existsOrNull(path: string) {
  try {
    return lstatSync(path)
  } catch {
    return null
  }
}

function readTrim(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return null
  }
}

const real = (p: string) => {
  try {
    return realpathSync(p)
  } catch {
    return resolve(p)
  }
}

/**
 * Follow a worktree's `.git` link as git wrote it, checking each hop without running git: a
 * regular `.git` file `gitdir: <common>/worktrees/<name>`, whose `commondir` is `../..`, whose
 * `gitdir` points back at this worktree, with no `config.worktree`. Returns the common git dir,
 * or the problems.
 */
export function followWorktreeLink(worktree: string): { commonDir: string; adminDir: string } | { problems: Change[] } {
  const dotGit = join(worktree, '.git')
  const bad = (what: string): { problems: Change[] } => ({ problems: [{ file: `.git (${what})`, kind: 'changed' }] })
  const st = existsOrNull(dotGit)
  if (!st) return { problems: [{ file: '.git', kind: 'removed' }] }
  if (!st.isFile()) return bad(st.isSymbolicLink() ? 'replaced by a symlink' : 'replaced by a directory')
  const m = /^gitdir: (.+)$/.exec(readTrim(dotGit) ?? '')
  if (!m || !isAbsolute(m[1]!)) return bad('not the gitdir link the factory wrote')
  const adminDir = m[1]!
  if (!existsOrNull(adminDir)?.isDirectory() || !real(dirname(adminDir)).endsWith('/worktrees'))
    return bad('points outside a worktrees/ directory')
  if (readTrim(join(adminDir, 'commondir')) !== '../..') return bad('commondir changed')
  if (real(readTrim(join(adminDir, 'gitdir')) ?? '') !== real(dotGit)) return bad('gitdir does not point back at the worktree')
  if (existsOrNull(join(adminDir, 'config.worktree'))) return { problems: [{ file: 'worktree config.worktree', kind: 'added' }] }
  return { commonDir: real(join(adminDir, '..', '..')), adminDir }
}

export interface GuardDeps {
  home: string
  log: { info(msg: string): void; warn(msg: string): void }
}

/**
 * Before the factory's first git command in a repository it manages: the first time, record its
 * fingerprint; when its config, hooks or info/ differ from it, put them back (logged, and noted
 * in the fingerprint so the run whose engine did it still fails). Returns what was repaired.
 */
export function guardRepository(deps: GuardDeps, gitDir: string, by: string): Change[] {
  const cmp = compareToFingerprint(deps.home, gitDir)
  if (!cmp) {
    recordFingerprint(deps.home, gitDir)
    deps.log.info(`${by}: recorded the git config, hooks and info/ of ${gitDir} as known-good`)
    return []
  }
  if (cmp.changes.length === 0) return []
  const fixed = repairToFingerprint(deps.home, gitDir, by)
  deps.log.warn(`${by}: ${gitDir} changed since the factory last wrote it (${describeChanges(fixed)}): restored before any git command`)
  return fixed
}

/**
 * After the engine ran, before any git command of ours in its worktree: the worktree's link and
 * the repository's config, hooks and info/ must be what the factory last wrote, and no other run
 * may have repaired them since `since` (the engine may have changed them meanwhile). Otherwise
 * worktree_tampered, naming the files and keys (never a local path). With `repair`, what changed
 * is restored at once (noted as reported, so no other run is blamed for it). Runs no git.
 */
export function assertUntampered(home: string, worktree: string, opts: { identifier: string; since?: string; repair?: boolean }): void {
  const link = followWorktreeLink(worktree)
  if ('problems' in link) throw tampered(opts.identifier, link.problems)
  const cmp = compareToFingerprint(home, link.commonDir)
  if (!cmp) throw tampered(opts.identifier, [{ file: '.git (points at a repository the factory never recorded)', kind: 'changed' }])
  const meanwhile = opts.since
    ? (cmp.fingerprint.repairs ?? []).filter((r) => !r.reported && r.at >= opts.since! && r.by !== opts.identifier)
    : []
  if (cmp.changes.length === 0 && meanwhile.length === 0) return
  if (opts.repair && cmp.changes.length) repairToFingerprint(home, link.commonDir, opts.identifier, true)
  const extra = meanwhile.map((r) => `${r.changes.join('; ')} (found and restored by ${r.by} while this run worked)`)
  throw tampered(opts.identifier, cmp.changes, extra, !!opts.repair)
}

function tampered(identifier: string, changes: Change[], extra: string[] = [], repaired = false): FactoryError {
  const what = [describeChanges(changes), ...extra].filter(Boolean).join('; ')
  return new FactoryError(
    'worktree_tampered',
    `${identifier}: the repository's git machinery changed while the engine ran: ${what}. Nothing was committed or pushed${changes.length && repaired ? '; the repository was restored to what the factory last wrote' : ''}`,
    {
      fix: 'a human checks what the engine did (its transcript); the factory restores the repository before the next run; comment on the issue to run it again',
      details: { changes, extra },
    },
  )
}
