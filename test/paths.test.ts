import { afterAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { assertUnder, ensureHome, layout, safeJoin, sanitizeBranch, sanitizeKey } from '../lib/paths.ts'
import { tempDir, failure } from './helpers.ts'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
function scratch(): string {
  const d = realpathSync(tempDir('rose-paths-'))
  dirs.push(d)
  return d
}

const HOSTILE_KEYS = [
  '../../etc',
  '..',
  '.',
  '...',
  'a/b',
  'a\\b',
  '/abs/path',
  'ENG-1/../../x',
  '',
  ' ',
  'x'.repeat(300),
  `${'y'.repeat(80)}-tail-one`,
  `${'y'.repeat(80)}-tail-two`,
  'ÉNG-1',
  'ENG-1\u202e',
  '工単-7',
  'e\u0301',
  '\u00e9',
  'name with spaces',
  '$(rm -rf ~)',
  '`id`',
  'a\nb',
  'a\u0000b',
  '-rf',
  '--force',
  '.git',
  '.hidden',
  'ENG_1',
  'ENG-1',
]

describe('sanitizeKey', () => {
  test('an ordinary Linear identifier is kept as it is', () => {
    expect(sanitizeKey('ENG-123')).toBe('ENG-123')
    expect(sanitizeKey('web.app_2-9')).toBe('web.app_2-9')
  })

  test('every hostile identifier becomes one safe path segment', () => {
    for (const key of HOSTILE_KEYS) {
      const out = sanitizeKey(key)
      expect(out, JSON.stringify(key)).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/)
      expect(out.length, JSON.stringify(key)).toBeLessThanOrEqual(100)
      expect(out, JSON.stringify(key)).not.toMatch(/^\.+$/)
    }
  })

  test('different hostile identifiers never share a key', () => {
    const keys = HOSTILE_KEYS.map(sanitizeKey)
    expect(new Set(keys).size).toBe(HOSTILE_KEYS.length)
  })

  test('a changed identifier does not collide with the identifier it looks like', () => {
    expect(sanitizeKey('ENG 1')).not.toBe(sanitizeKey('ENG_1'))
    expect(sanitizeKey('a/b')).not.toBe(sanitizeKey('a_b'))
  })

  test('the same identifier always gives the same key', () => {
    for (const key of HOSTILE_KEYS) expect(sanitizeKey(key)).toBe(sanitizeKey(key))
  })

  test('a changed identifier stays recognisable in worktrees/: odd characters become _, leading dots one _, then an 8-hex hash', () => {
    const cases: [string, RegExp][] = [
      ['ENG 12', /^ENG_12-[0-9a-f]{8}$/],
      ['a/b', /^a_b-[0-9a-f]{8}$/],
      ['..ENG-1', /^_ENG-1-[0-9a-f]{8}$/],
      ['.hidden', /^_hidden-[0-9a-f]{8}$/],
      ['工単-7', /^__-7-[0-9a-f]{8}$/],
    ]
    for (const [key, shape] of cases) expect(sanitizeKey(key), JSON.stringify(key)).toMatch(shape)
  })

  test('an empty identifier still gets a named directory, issue-<hash>', () => {
    expect(sanitizeKey('')).toMatch(/^issue-[0-9a-f]{8}$/)
  })
})

describe('safeJoin', () => {
  test('every hostile identifier lands in its own directory directly under the root', () => {
    const root = join(scratch(), 'worktrees')
    const seen = new Set<string>()
    for (const key of HOSTILE_KEYS) {
      const p = safeJoin(root, key)
      expect(dirname(p), JSON.stringify(key)).toBe(root)
      expect(relative(root, p).startsWith('..')).toBe(false)
      mkdirSync(p)
      seen.add(p)
    }
    expect(seen.size).toBe(HOSTILE_KEYS.length)
  })

  test('several hostile segments nest under the root and nowhere else', () => {
    const root = scratch()
    const p = safeJoin(root, '../../etc', '..', 'ENG-1/../../x')
    expect(p.startsWith(`${root}/`)).toBe(true)
    expect(relative(root, p).split('/')).toHaveLength(3)
  })

  test('creates the root when it does not exist yet', () => {
    const root = join(scratch(), 'a', 'b')
    const p = safeJoin(root, 'ENG-1')
    expect(existsSync(root)).toBe(true)
    expect(p).toBe(join(root, 'ENG-1'))
  })

  test('a symlink inside the root that points outside is refused', () => {
    const base = scratch()
    const root = join(base, 'root')
    const outside = join(base, 'outside')
    mkdirSync(root)
    mkdirSync(outside)
    symlinkSync(outside, join(root, 'ENG-9'))
    const err = failure(() => safeJoin(root, 'ENG-9'))
    expect(err.code).toBe('workspace_outside_root')
    expect(err.message).toContain(outside)
    expect(err.fix).toContain('remove the symlink')
    expect(err.exitCode).toBe(1)
  })
})

describe('assertUnder', () => {
  test('a path below a symlink that leaves the root is caught even before it exists', () => {
    const base = scratch()
    const root = join(base, 'root')
    mkdirSync(root)
    mkdirSync(join(base, 'elsewhere'))
    symlinkSync(join(base, 'elsewhere'), join(root, 'escape'))
    expect(failure(() => assertUnder(root, join(root, 'escape', 'not-yet', 'deeper'))).code).toBe('workspace_outside_root')
  })

  test('a symlinked file pointing outside is caught', () => {
    const base = scratch()
    const root = join(base, 'root')
    mkdirSync(root)
    writeFileSync(join(base, 'secret'), 'x')
    symlinkSync(join(base, 'secret'), join(root, 'innocent'))
    expect(failure(() => assertUnder(root, join(root, 'innocent'))).code).toBe('workspace_outside_root')
  })

  test('the root itself and its parents are not inside it', () => {
    const root = scratch()
    expect(failure(() => assertUnder(root, root)).code).toBe('workspace_outside_root')
    expect(failure(() => assertUnder(root, join(root, '..'))).code).toBe('workspace_outside_root')
    expect(failure(() => assertUnder(root, join(root, 'a', '..', '..', 'b'))).code).toBe('workspace_outside_root')
  })

  test('a root reached through a symlink still accepts its own children, resolved', () => {
    const base = scratch()
    mkdirSync(join(base, 'real-root'))
    symlinkSync(join(base, 'real-root'), join(base, 'alias'))
    const out = assertUnder(join(base, 'alias'), join(base, 'alias', 'ENG-1'))
    expect(out).toBe(join(base, 'real-root', 'ENG-1'))
  })

  test('a symlink inside the root pointing elsewhere inside the root is allowed', () => {
    const root = scratch()
    mkdirSync(join(root, 'a'))
    symlinkSync(join(root, 'a'), join(root, 'b'))
    expect(assertUnder(root, join(root, 'b', 'c'))).toBe(join(root, 'a', 'c'))
  })
})

/** The names among `names` that git refuses as branch names. */
function refusedByGit(names: string[]): string[] {
  return names.filter((n) => spawnSync('git', ['check-ref-format', '--branch', n], { stdio: 'ignore' }).status !== 0)
}

const HOSTILE_BRANCHES = [
  'benoit/eng-1-add-health-check',
  '-rf',
  '--force',
  '..',
  '../../etc/passwd',
  'a..b',
  '@{',
  '@{-1}',
  'x@{u}',
  '@',
  'a.lock',
  'a.lock.lock',
  'feature/a.lock/b',
  'x//y',
  'x///y',
  'trailing/',
  'trailing.',
  'trailing./',
  '/leading',
  '.hidden/.dir',
  'ctrl\u0001char\u007f',
  'tab\there',
  'new\nline',
  'sp ace',
  'colon:tilde~caret^',
  'q?star*bracket[',
  'back\\slash',
  'HEAD',
  'refs/heads/main',
  'unicode/ünïcødé/分支',
  '$(echo pwned)',
  '`id`',
  'x'.repeat(500),
  `feature/${'a'.repeat(300)}`,
  `${'a'.repeat(95)}.lockzz`,
  `${'a'.repeat(94)}.lock.b`,
  `${'a'.repeat(99)}/b`,
  `${'a'.repeat(98)}/.b`,
  '-/-/-',
  'a/-/b',
  '.-.',
]

describe('sanitizeBranch', () => {
  test('keeps a normal Linear branchName as it is', () => {
    expect(sanitizeBranch('benoit/eng-1-add-health-check', 'ENG-1')).toBe('benoit/eng-1-add-health-check')
    expect(sanitizeBranch('feature/v1.2-fix', 'ENG-1')).toBe('feature/v1.2-fix')
    expect(sanitizeBranch('hotfix', 'ENG-1')).toBe('hotfix')
  })

  test('a title-like branch name reads as words joined by one dash per gap', () => {
    expect(sanitizeBranch('benoit/eng-1 fix: crash on  "save"!', 'ENG-1')).toBe('benoit/eng-1-fix-crash-on-save')
  })

  test('runs of dots shrink to one dot instead of vanishing', () => {
    expect(sanitizeBranch('v1..2/a...b', 'ENG-1')).toBe('v1.2/a.b')
  })

  test('.lock is removed only at the end of a segment, not where a name merely contains it', () => {
    expect(sanitizeBranch('chore/bump-yarn.lock-deps', 'ENG-1')).toBe('chore/bump-yarn.lock-deps')
    expect(sanitizeBranch('feature/a.lockfile', 'ENG-1')).toBe('feature/a.lockfile')
  })

  test('every hostile branch name becomes one that git accepts', () => {
    const out = HOSTILE_BRANCHES.map((b) => sanitizeBranch(b, 'ENG-1'))
    const refused = refusedByGit(out)
    expect(refused.map((r) => `${JSON.stringify(HOSTILE_BRANCHES[out.indexOf(r)])} -> ${JSON.stringify(r)}`)).toEqual([])
  })

  test('the result uses only safe characters and at most 100 of them', () => {
    for (const b of HOSTILE_BRANCHES) {
      const out = sanitizeBranch(b, 'ENG-1')
      expect(out, JSON.stringify(b)).toMatch(/^[A-Za-z0-9._/-]+$/)
      expect(out.length, JSON.stringify(b)).toBeLessThanOrEqual(100)
      expect(out.startsWith('-'), JSON.stringify(b)).toBe(false)
    }
  })

  test('falls back to rose/<key> when nothing usable remains', () => {
    for (const b of [undefined, '', '..', '/', '-', '@', '@{', '...', '-/-/-', '.-.', '分支', '\u0001\u0002', '_', '_._', 'HEAD']) {
      expect(sanitizeBranch(b, 'ENG-7'), JSON.stringify(b)).toBe('rose/eng-7')
    }
  })

  test('an issue key of letters and digits only makes rose/<key>', () => {
    expect(sanitizeBranch(undefined, 'ENG7')).toBe('rose/eng7')
  })

  test('an issue key with no letter or digit falls back to rose/issue-<hash>, one per key', () => {
    const out = ['___', '-', '工単'].map((k) => sanitizeBranch(undefined, k))
    for (const o of out) expect(o).toMatch(/^rose\/issue-[0-9a-f]{8}$/)
    expect(new Set(out).size).toBe(3)
  })

  test('the fallback branch is valid for hostile issue keys too', () => {
    const keys = [...HOSTILE_KEYS, 'a.lock', 'x..y', 'x.', 'ENG-1.lock']
    const out = keys.map((k) => sanitizeBranch(undefined, k))
    for (const o of out) expect(o.startsWith('rose/')).toBe(true)
    const refused = refusedByGit(out)
    expect(refused.map((r) => `${JSON.stringify(keys[out.indexOf(r)])} -> ${JSON.stringify(r)}`)).toEqual([])
  })
})

describe('layout', () => {
  test('puts state, locks, repos, worktrees and logs under the factory home', () => {
    const l = layout('/srv/factory')
    expect(l.state).toBe('/srv/factory/state.json')
    for (const p of [l.locks, l.repos, l.worktrees, l.logs]) expect(dirname(p)).toBe('/srv/factory')
    expect(new Set([l.locks, l.repos, l.worktrees, l.logs].map((p) => basename(p))).size).toBe(4)
  })
})

describe('ensureHome', () => {
  test('creates a missing FACTORY_HOME, nested, and returns it', () => {
    const home = join(scratch(), 'a', 'b', 'home')
    expect(ensureHome(home)).toBe(home)
    expect(existsSync(home)).toBe(true)
  })

  test('an existing directory is accepted as it is', () => {
    const home = scratch()
    writeFileSync(join(home, 'keep'), 'x')
    expect(ensureHome(home)).toBe(home)
    expect(existsSync(join(home, 'keep'))).toBe(true)
  })

  test('a FACTORY_HOME that is a file, or under one, is home_unusable naming the file and the fix', () => {
    const dir = scratch()
    const file = join(dir, 'plain-file')
    writeFileSync(file, 'x')
    for (const home of [file, join(file, 'home'), join(file, 'deeper', 'home')]) {
      const e = failure(() => ensureHome(home))
      expect(e.code).toBe('home_unusable')
      expect(e.exitCode).toBe(2)
      expect(e.message).toBe(`FACTORY_HOME ${home} cannot be a directory: ${file} is a file`)
      expect(e.fix).toContain(`remove or rename ${file}`)
      expect(e.fix).toContain('set FACTORY_HOME to a directory you can write')
    }
  })

  test('a FACTORY_HOME under /proc (not creatable even by root) is home_unusable with the errno', () => {
    const home = '/proc/rose-factory-home'
    const e = failure(() => ensureHome(home))
    expect(e.code).toBe('home_unusable')
    expect(e.message).toMatch(/^FACTORY_HOME \/proc\/rose-factory-home is not writable \((ENOENT|EACCES|EPERM|EROFS)\)$/)
    expect(e.fix).toContain('fix the permissions of /proc/rose-factory-home')
  })
})
