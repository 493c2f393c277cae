/** rose-factory retry and cancel, by hand, against the real loop, the sandbox and real processes. */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { readState, updateState } from '../lib/state.ts'
import { fixture, type Fixture, ROOT, until } from './helpers.ts'

let fx: Fixture | undefined
let loop: { pid: number; exited: Promise<number | null> } | undefined
afterEach(async () => {
  if (loop) {
    try {
      process.kill(-loop.pid, 'SIGKILL')
    } catch {}
    await loop.exited
    loop = undefined
  }
  await fx?.cleanup()
  fx = undefined
})

const ONE = [{ team: 'ENG', title: 'Add a health check', assignee: 'agent@rose.test' }]
const record = (f: Fixture, key = 'ENG-1') =>
  Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {}).find((r) => r.identifier === key)

/** The loop in its own process group (so the test can stop everything it started). */
function startLoop(f: Fixture, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', f.configPath], {
    cwd: f.dir,
    env: { ...f.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  loop = { pid: child.pid!, exited }
  return { pid: child.pid!, exited, stderr: () => stderr }
}

describe('cancel', () => {
  test('stops a running engine, keeps the worktree, and holds the issue: the next ticks leave it alone until retry queues it', async () => {
    fx = await fixture({ issues: ONE })
    const driver = startLoop(fx, { ROSE_CONSOLE_DELAY_MS: '60000' })
    await until('the engine runs', () => driver.stderr().includes('engine started'))
    const lock = join(fx.home, 'locks', 'tester', 'ENG-1.lock')
    expect(existsSync(lock)).toBe(true)

    const res = await fx.script('cancel', ['--issue', 'ENG-1'])
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toMatch(/^ENG-1 \(tester\): running -> cancelled; its run \(pid \d+\) stopped its engine and let go\./)
    expect(res.stdout).toContain('Nothing runs it again until a human comment on the issue in Linear, or rose-factory retry --issue ENG-1')
    expect(existsSync(lock)).toBe(false)
    const held = record(fx)!
    expect(held).toMatchObject({ phase: 'released', releasedReason: expect.stringContaining('cancelled by') })
    expect(held.cancelledAt).toBeDefined()
    expect(held.runs.at(-1)).toMatchObject({ status: 'cancelled', errorCode: 'engine_cancelled' })
    expect(existsSync(join(fx.home, 'worktrees', 'tester', 'ENG-1'))).toBe(true)

    // The loop goes on ticking (poll_interval_seconds 1) and does not take it again.
    await until('two more ticks', () => (driver.stderr().match(/\[start\]/g) ?? []).length > 0)
    await Bun.sleep(2500)
    expect(record(fx)!.phase).toBe('released')
    process.kill(-driver.pid, 'SIGTERM')
    expect(await driver.exited).toBe(0)
    loop = undefined

    const again = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(again.code, again.stderr).toBe(0)
    expect(record(fx)!.phase).toBe('released')
    expect(fx.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))).toHaveLength(0)

    const retry = await fx.script('retry', ['--issue', 'ENG-1'])
    expect(retry.code, retry.stderr).toBe(0)
    expect(retry.stdout).toStartWith('ENG-1 (tester): released -> queued')
    const run = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(run.code, run.stderr).toBe(0)
    expect(record(fx)!.phase).toBe('done')
    expect(fx.issue('ENG-1').state).toBe('In Review')
  }, 90_000)

  test('of an issue nothing runs is refused with exit 1 and the reason; an unknown key exits 2', async () => {
    fx = await fixture({ issues: ONE })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const done = await fx.script('cancel', ['--issue', 'ENG-1'])
    expect(done.code).toBe(1)
    expect(done.stderr).toContain('phase_conflict: cannot cancel ENG-1: done: nothing queued or running to cancel')
    const unknown = await fx.script('cancel', ['--issue', 'ENG-99'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('issue_unknown: no issue ENG-99 on record')
    const agent = await fx.script('retry', ['--issue', 'ENG-1', '--agent', 'nope'])
    expect(agent.code).toBe(2)
    expect(agent.stderr).toContain('unknown agent "nope"')
    expect(agent.stderr).toContain('use one of: tester')
  }, 60_000)
})

describe('retry', () => {
  test('un-escalates an escalated issue with a fresh budget of attempts, and the next tick runs it to In Review', async () => {
    fx = await fixture({ issues: ONE })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    updateState(join(fx.home, 'state.json'), (d) => {
      const r = Object.values(d.agents.tester!.issues)[0]!
      Object.assign(r, { phase: 'escalated', attempts: 3, lastError: { code: 'engine_stalled', message: 'no output for 300 s' } })
    })
    const res = await fx.script('retry', ['--issue', 'ENG-1', '--json'])
    expect(res.code, res.stderr).toBe(0)
    expect(JSON.parse(res.stdout)).toEqual({ agent: 'tester', identifier: 'ENG-1', before: 'escalated', phase: 'queued' })
    expect(record(fx)).toMatchObject({ phase: 'queued', attempts: 0 })
    expect(record(fx)!.lastError).toBeUndefined()
    const run = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(run.code, run.stderr).toBe(0)
    expect(record(fx)).toMatchObject({ phase: 'done' })
    expect(record(fx)!.runs).toHaveLength(2)
  }, 60_000)

  test('of a done issue is refused with exit 1 and says a comment in Linear asks for changes', async () => {
    fx = await fixture({ issues: ONE })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const res = await fx.script('retry', ['--issue', 'ENG-1'])
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('cannot retry ENG-1: done: nothing failed; a comment on the issue in Linear asks for changes')
  }, 60_000)
})
