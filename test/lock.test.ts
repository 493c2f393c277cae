import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { inspectLock, type LockOwner, lockSync, tryLock } from '../lib/lock.ts'
import { readState } from '../lib/state.ts'
import { fixture, ROOT, tempDir } from './helpers.ts'

const dir = tempDir('rose-lock-')
const live: ChildProcess[] = []
afterAll(() => {
  for (const c of live) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

let n = 0
const fresh = () => join(dir, `l${++n}`, 'ENG-1.lock')
const STALE_MS = 60_000

/** A pid that existed a moment ago and has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync('true')
  expect(r.status).toBe(0)
  return r.pid!
}

/** A live process that is not us. */
function livePid(): number {
  const c = spawn('sleep', ['30'], { stdio: 'ignore' })
  live.push(c)
  return c.pid!
}

function writeOwner(path: string, owner: Partial<LockOwner>): void {
  const now = new Date().toISOString()
  writeFileSync(path, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: now, heartbeat: now, ...owner }))
}

const readOwner = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as LockOwner
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

describe('tryLock', () => {
  test('records pid, host and a heartbeat in the lock file', () => {
    const path = fresh()
    const lock = tryLock(path, { staleMs: STALE_MS, note: 'claim' })
    expect(lock).not.toBeNull()
    const owner = readOwner(path)
    expect(owner.pid).toBe(process.pid)
    expect(owner.host).toBe(hostname())
    expect(owner.note).toBe('claim')
    expect(Math.abs(Date.parse(owner.heartbeat) - Date.now())).toBeLessThan(5_000)
    lock!.release()
  })

  test('a second tryLock on the same path gets nothing while the owner is live', () => {
    const path = fresh()
    const first = tryLock(path, { staleMs: STALE_MS })
    expect(first).not.toBeNull()
    expect(tryLock(path, { staleMs: STALE_MS })).toBeNull()
    expect(readOwner(path).startedAt).toBe(first!.owner.startedAt)
    first!.release()
  })

  test('a lock held by another live process on this host is not taken', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })
    const other = livePid()
    writeOwner(path, { pid: other })
    expect(tryLock(path, { staleMs: STALE_MS })).toBeNull()
    expect(readOwner(path).pid).toBe(other)
  })

  test('a lock whose owner pid on this host has exited is taken over', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })?.release()
    const dead = deadPid()
    writeOwner(path, { pid: dead })
    expect(inspectLock(path, STALE_MS).stale).toBe('dead_pid')
    const lock = tryLock(path, { staleMs: STALE_MS })
    expect(lock).not.toBeNull()
    expect(readOwner(path).pid).toBe(process.pid)
    lock!.release()
  })

  test('a lock from another host with an old heartbeat is taken over', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })?.release()
    writeOwner(path, { pid: deadPid(), host: 'other-host.example', heartbeat: ago(STALE_MS + 60_000) })
    expect(inspectLock(path, STALE_MS).stale).toBe('old_heartbeat')
    const lock = tryLock(path, { staleMs: STALE_MS })
    expect(lock).not.toBeNull()
    expect(readOwner(path).host).toBe(hostname())
    lock!.release()
  })

  test('a lock from another host with a fresh heartbeat is kept, even if its pid means nothing here', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })?.release()
    writeOwner(path, { pid: deadPid(), host: 'other-host.example', heartbeat: ago(1_000) })
    expect(inspectLock(path, STALE_MS).stale).toBeNull()
    expect(tryLock(path, { staleMs: STALE_MS })).toBeNull()
    expect(readOwner(path).host).toBe('other-host.example')
  })

  test('a live owner on this host whose heartbeat went silent is taken over', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })?.release()
    writeOwner(path, { pid: livePid(), heartbeat: ago(STALE_MS * 2) })
    const lock = tryLock(path, { staleMs: STALE_MS })
    expect(lock).not.toBeNull()
    lock!.release()
  })

  test('a torn or unreadable lock file left by a crash is taken over', () => {
    for (const body of ['', '{"pid": 12', 'garbage', '{"host":"x"}', 'null']) {
      const path = fresh()
      tryLock(path, { staleMs: STALE_MS })?.release()
      writeFileSync(path, body)
      const old = new Date(Date.now() - 10 * 60_000)
      utimesSync(path, old, old)
      expect(inspectLock(path, STALE_MS).stale, JSON.stringify(body)).toBe('unreadable')
      const lock = tryLock(path, { staleMs: STALE_MS })
      expect(lock, JSON.stringify(body)).not.toBeNull()
      expect(readOwner(path).pid).toBe(process.pid)
      lock!.release()
    }
  })

  test('a lock from another host without a readable heartbeat is taken over', () => {
    for (const heartbeat of [undefined, 'not a date']) {
      const path = fresh()
      tryLock(path, { staleMs: STALE_MS })?.release()
      writeFileSync(path, JSON.stringify({ pid: 4242, host: 'other-host.example', heartbeat }))
      const old = new Date(Date.now() - 10 * 60_000)
      utimesSync(path, old, old)
      expect(inspectLock(path, STALE_MS).stale, String(heartbeat)).not.toBeNull()
      expect(tryLock(path, { staleMs: STALE_MS }), String(heartbeat)).not.toBeNull()
    }
  })

  test('a breaker file left by a crashed process does not block the takeover', () => {
    const path = fresh()
    tryLock(path, { staleMs: STALE_MS })?.release()
    writeOwner(path, { pid: deadPid() })
    writeFileSync(`${path}.break`, String(deadPid()))
    const lock = tryLock(path, { staleMs: STALE_MS })
    expect(lock).not.toBeNull()
    expect(existsSync(`${path}.break`)).toBe(false)
    lock!.release()
  })

  test('no lock file at all means no owner and nothing stale', () => {
    expect(inspectLock(join(dir, 'never', 'x.lock'), STALE_MS)).toEqual({ owner: null, stale: null })
  })
})

describe('Lock', () => {
  test('release() removes our own lock so the next tryLock succeeds', () => {
    const path = fresh()
    const lock = tryLock(path, { staleMs: STALE_MS })!
    lock.release()
    expect(existsSync(path)).toBe(false)
    const again = tryLock(path, { staleMs: STALE_MS })
    expect(again).not.toBeNull()
    again!.release()
  })

  test('release() leaves a lock that another owner has taken since', () => {
    const path = fresh()
    const lock = tryLock(path, { staleMs: STALE_MS })!
    const other = livePid()
    writeOwner(path, { pid: other, note: 'someone else' })
    lock.release()
    expect(existsSync(path)).toBe(true)
    expect(readOwner(path).pid).toBe(other)
  })

  test('beat() refreshes the heartbeat so the lock is no longer stale', () => {
    const path = fresh()
    const lock = tryLock(path, { staleMs: STALE_MS })!
    writeOwner(path, { startedAt: lock.owner.startedAt, heartbeat: ago(STALE_MS * 2) })
    expect(inspectLock(path, STALE_MS).stale).toBe('old_heartbeat')
    lock.beat('running run #2')
    const owner = readOwner(path)
    expect(inspectLock(path, STALE_MS).stale).toBeNull()
    expect(Date.now() - Date.parse(owner.heartbeat)).toBeLessThan(5_000)
    expect(owner.note).toBe('running run #2')
    expect(owner.pid).toBe(process.pid)
    lock.release()
  })

  test('beat() does not overwrite a lock that another owner has taken', () => {
    const path = fresh()
    const lock = tryLock(path, { staleMs: STALE_MS })!
    const other = livePid()
    writeOwner(path, { pid: other, heartbeat: ago(1_000) })
    const before = readFileSync(path, 'utf8')
    lock.beat('late')
    expect(readFileSync(path, 'utf8')).toBe(before)
  })
})

describe('lockSync', () => {
  test('waits for a holder to release, and gives up after waitMs when it does not', async () => {
    const path = fresh()
    const held = tryLock(path, { staleMs: STALE_MS })!
    const t0 = Date.now()
    expect(lockSync(path, { staleMs: STALE_MS, waitMs: 150 })).toBeNull()
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    held.release()
    const got = lockSync(path, { staleMs: STALE_MS, waitMs: 150 })
    expect(got).not.toBeNull()
    got!.release()
  })
})

// N real processes race for the same locks, round after round, at the same instant. Even rounds
// race for a free path; odd rounds race to take over a lock left by a dead pid. Every process
// stays alive until all of them are done, so a winner's lock is never legitimately stale.
const RACERS = 8
const ROUNDS = 500
const SLOT_MS = 3
const RACER = `
import { readdirSync, writeFileSync } from 'node:fs'
import { tryLock } from ${JSON.stringify(join(ROOT, 'lib', 'lock.ts'))}
const [dir, startAtArg, rounds, slot, racers] = process.argv.slice(2)
const startAt = Number(startAtArg)
const won = []
for (let r = 0; r < Number(rounds); r++) {
  const at = startAt + r * Number(slot)
  while (Date.now() < at) {}
  if (tryLock(dir + '/round-' + r + '.lock', { staleMs: 60000 })) won.push(r)
}
console.log(JSON.stringify({ pid: process.pid, won }))
writeFileSync(dir + '/done-' + process.pid, '')
const giveUp = Date.now() + 8000
while (readdirSync(dir).filter((f) => f.startsWith('done-')).length < Number(racers) && Date.now() < giveUp) await Bun.sleep(10)
`

describe('racing processes', () => {
  const raceDir = join(dir, 'race')
  const results: { pid: number; won: number[] }[] = []
  const owners: (number | null)[] = []

  beforeAll(async () => {
    const script = join(dir, 'racer.ts')
    writeFileSync(script, RACER)
    mkdirSync(raceDir, { recursive: true })
    const dead = deadPid()
    for (let r = 1; r < ROUNDS; r += 2) writeOwner(join(raceDir, `round-${r}.lock`), { pid: dead })
    const startAt = Date.now() + 700
    const outs = await Promise.all(
      Array.from({ length: RACERS }, () => {
        return new Promise<string>((resolve) => {
          const c = spawn(process.execPath, [script, raceDir, String(startAt), String(ROUNDS), String(SLOT_MS), String(RACERS)], {
            stdio: ['ignore', 'pipe', 'inherit'],
          })
          let out = ''
          c.stdout!.on('data', (d) => (out += d))
          c.on('close', () => resolve(out))
        })
      }),
    )
    for (const o of outs) results.push(JSON.parse(o))
    for (let r = 0; r < ROUNDS; r++) {
      const p = join(raceDir, `round-${r}.lock`)
      owners.push(existsSync(p) ? readOwner(p).pid : null)
    }
  }, 15_000)

  /** Rounds (even from 0, or odd from 1) that did not end with exactly one winner named in the file. */
  function badRounds(first: number): string[] {
    const bad: string[] = []
    for (let r = first; r < ROUNDS; r += 2) {
      const winners = results.filter((x) => x.won.includes(r)).map((x) => x.pid)
      if (winners.length !== 1) bad.push(`round ${r}: ${winners.length} winners`)
      else if (owners[r] !== winners[0]) bad.push(`round ${r}: the file names ${owners[r]}, not the winner ${winners[0]}`)
    }
    return bad
  }

  test('exactly one of several processes racing for a free lock wins it', () => {
    expect(results).toHaveLength(RACERS)
    expect(badRounds(0)).toEqual([])
  })

  test("exactly one of several processes racing to take over a dead owner's lock wins it", () => {
    expect(results).toHaveLength(RACERS)
    expect(badRounds(1)).toEqual([])
  })
})

describe('the issue lock of a running issue', () => {
  test('keeps beating while the engine works, so a long run never looks abandoned to a second driver', async () => {
    const fx = await fixture({ issues: [{ team: 'ENG', title: 'A long task', assignee: 'agent@rose.test' }] })
    try {
      // The engine works for 3 s; the heartbeat (15 s in production) is set to 200 ms here.
      const done = fx.script('start', ['--once', '--config', fx.configPath], { ROSE_CONSOLE_DELAY_MS: '3000', ROSE_HEARTBEAT_MS: '200' })
      let finished = false
      void done.then(() => (finished = true))
      const lockPath = join(fx.home, 'locks', 'tester', 'ENG-1.lock')
      const phase = () => {
        try {
          return Object.values(readState(join(fx.home, 'state.json')).agents.tester?.issues ?? {})[0]?.phase
        } catch {
          return undefined
        }
      }
      const beats = new Set<string>()
      while (!finished) {
        if (phase() === 'running' && existsSync(lockPath)) {
          try {
            beats.add(readOwner(lockPath).heartbeat)
          } catch {}
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      const res = await done
      expect(res.code, res.stderr).toBe(0)
      const times = [...beats].map(Date.parse).sort((a, b) => a - b)
      // Without the periodic beat, the heartbeat would stand still for the whole engine run.
      expect(times.length).toBeGreaterThanOrEqual(5)
      expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(2_000)
    } finally {
      await fx.cleanup()
    }
  }, 60_000)
})

/** A tmpfs of `size` on a fresh directory (the tests run as root in CI), or why it cannot be mounted. */
function tinyDisk(size: string): { dir: string; umount: () => void } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root: cannot mount a tmpfs' }
  const mnt = tempDir('rose-tinydisk-')
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' })
  if (r.status !== 0) return { skip: `mount -t tmpfs not allowed here: ${(r.stderr || r.error?.message || '').trim()}` }
  return { dir: mnt, umount: () => void spawnSync('umount', ['-l', mnt]) }
}

const disk = tinyDisk('1m')
afterAll(() => 'umount' in disk && disk.umount())
const diskSkip = 'skip' in disk ? ` (skipped: ${disk.skip})` : ''

describe('a full disk', () => {
  test.skipIf(!!diskSkip)(
    `a heartbeat that cannot be written keeps the last one, and a new lock fails whole, leaving no file${diskSkip}`,
    () => {
      const mnt = (disk as { dir: string }).dir
      const path = join(mnt, 'ENG-1.lock')
      const lock = tryLock(path, { staleMs: STALE_MS, note: 'engine' })!
      expect(lock).not.toBeNull()
      const before = readFileSync(path, 'utf8')
      const filler = join(mnt, 'filler')
      try {
        writeFileSync(filler, Buffer.alloc(64 * 1024 * 1024, 1))
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC')
      }
      expect(() => lock.beat('report')).toThrow(/ENOSPC/)
      expect(readFileSync(path, 'utf8')).toBe(before)
      expect(inspectLock(path, STALE_MS).owner?.note).toBe('engine')
      expect(() => tryLock(join(mnt, 'ENG-2.lock'), { staleMs: STALE_MS })).toThrow(/ENOSPC/)
      expect(readdirSync(mnt).sort()).toEqual(['ENG-1.lock', 'filler'])
      rmSync(filler)
      lock.beat('report')
      expect(inspectLock(path, STALE_MS).owner?.note).toBe('report')
      lock.release()
    },
  )
})
