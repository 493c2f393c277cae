/**
 * One driver per agent per FACTORY_HOME, with real `start` processes on one sandbox home: a second
 * start is refused naming the first one's pid and how to stop it, unless their agents differ; a
 * lock left by a dead start is taken over; a stopped start leaves no lock.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fixture, type Fixture, ROOT, until } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

const TWO_AGENTS = (o: string) =>
  `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o} }\n  - name: other\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_SAM_KEY }\n    repo: { url: ${o} }\n`

const ISSUES = [
  { team: 'ENG', title: 'For tester', assignee: 'agent@rose.test' },
  { team: 'ENG', title: 'For other', assignee: 'sam@rose.test' },
]

/** `start` as a loop in its own process group, with its stderr collected. */
function loop(f: Fixture, args: string[]) {
  const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', f.configPath, ...args], {
    cwd: f.dir,
    env: { ...f.env, ROSE_SAM_KEY: 'lin_api_test_sam_key' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  return { pid: child.pid!, exited, stderr: () => stderr }
}

describe('one start per agent per FACTORY_HOME', () => {
  test('a second start on the same agents is refused with the first one’s pid; one on other agents runs; the first leaves no lock when stopped', async () => {
    fx = await fixture({ issues: ISSUES, agentYaml: TWO_AGENTS })
    const env = { ROSE_SAM_KEY: 'lin_api_test_sam_key' }
    const first = loop(fx, ['--agent', 'tester'])
    await until('the first start runs', () => first.stderr().includes('running tester'))
    await until('its issue is done', () => fx!.issue('ENG-1').state === 'In Review')

    const second = await fx.script('start', ['--once', '--config', fx.configPath], env)
    expect(second.code, second.stderr).toBe(1)
    expect(second.stderr).toContain(`lock_held: another start (pid ${first.pid} on ${hostname()}`)
    expect(second.stderr).toContain('already runs agent tester')
    expect(second.stderr).toContain(`fix: stop it first (kill -TERM ${first.pid}`)
    // Refused as a whole: it did not run the agent it could have had either.
    expect(fx.issue('ENG-2').state).toBe('Todo')
    expect(existsSync(join(fx.home, 'locks', 'driver-other.lock'))).toBe(false)

    const disjoint = await fx.script('start', ['--once', '--config', fx.configPath, '--agent', 'other'], env)
    expect(disjoint.code, disjoint.stderr).toBe(0)
    expect(fx.issue('ENG-2').state).toBe('In Review')

    process.kill(-first.pid, 'SIGTERM')
    expect(await first.exited, first.stderr()).toBe(0)
    expect(existsSync(join(fx.home, 'locks', 'driver-tester.lock'))).toBe(false)
    const after = await fx.script('start', ['--once', '--config', fx.configPath], env)
    expect(after.code, after.stderr).toBe(0)
  }, 90_000)

  test('the lock of a start that died (its pid gone on this host) is taken over', async () => {
    fx = await fixture({ issues: ISSUES.slice(0, 1), agentYaml: TWO_AGENTS })
    const dead = spawnSync('true').pid!
    mkdirSync(join(fx.home, 'locks'), { recursive: true })
    const at = new Date().toISOString()
    writeFileSync(
      join(fx.home, 'locks', 'driver-tester.lock'),
      JSON.stringify({ pid: dead, host: hostname(), startedAt: at, heartbeat: at }),
    )
    const res = await fx.script('start', ['--once', '--config', fx.configPath, '--agent', 'tester'])
    expect(res.code, res.stderr).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(existsSync(join(fx.home, 'locks', 'driver-tester.lock'))).toBe(false)
  }, 60_000)

  test('a dry run takes no lock and runs beside a live start', async () => {
    fx = await fixture({ issues: ISSUES.slice(0, 1), agentYaml: TWO_AGENTS })
    const first = loop(fx, ['--agent', 'tester'])
    await until('the first start runs', () => first.stderr().includes('running tester'))
    const dry = await fx.script('start', ['--once', '--dry-run', '--config', fx.configPath, '--agent', 'tester'])
    expect(dry.code, dry.stderr).toBe(0)
    process.kill(-first.pid, 'SIGTERM')
    expect(await first.exited).toBe(0)
  }, 60_000)
})
