/** The steps run by hand, one script at a time, as a user debugging would: same result as start. */
import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { readState } from '../lib/state.ts'
import { type Fixture, fixture, gitSync, runScript } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

const ONE = [
  {
    team: 'ENG',
    title: 'Add a health check',
    description: 'GET /healthz',
    assignee: 'agent@rose.test',
    comments: [{ user: 'riley@rose.test', body: 'Use the router.' }],
  },
]

describe('steps by hand', () => {
  test('poll, claim, worktree, run-engine and report one after another take the issue to In Review', async () => {
    fx = await fixture({ issues: ONE })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    const poll = await fx.script('poll', a)
    expect(poll.code, poll.stderr).toBe(0)
    const item = JSON.parse(poll.stdout.trim().split('\n')[0]!)
    expect(item).toMatchObject({ identifier: 'ENG-1', action: 'queue', reason: 'new' })

    const claim = await fx.script('claim', [...a, '--issue', 'ENG-1', '--json'])
    expect(claim.code, claim.stderr).toBe(0)
    expect(JSON.parse(claim.stdout)).toMatchObject({ issue: 'ENG-1', run: 1, moveTo: 'In Progress' })
    expect(fx.issue('ENG-1').state).toBe('In Progress')

    const wt = await fx.script('worktree', [...a, '--issue', 'ENG-1', '--json'])
    expect(wt.code, wt.stderr).toBe(0)
    const { path, branch } = JSON.parse(wt.stdout)
    expect(existsSync(path)).toBe(true)

    const dry = await fx.script('run-engine', [...a, '--issue', 'ENG-1', '--dry-run'])
    expect(dry.code).toBe(0)
    expect(dry.stdout).toContain('--- prompt ---')
    expect(dry.stdout).toContain('Use the router.')
    expect(existsSync(join(path, 'FACTORY_NOTES.md'))).toBe(false)

    const eng = await fx.script('run-engine', [...a, '--issue', 'ENG-1'])
    expect(eng.code, eng.stderr).toBe(0)
    expect(existsSync(join(path, 'FACTORY_NOTES.md'))).toBe(true)

    const mutationsBefore = fx.sandbox.stats().mutations
    const planned = await fx.script('report', [...a, '--issue', 'ENG-1', '--dry-run'])
    expect(planned.code, planned.stderr).toBe(0)
    expect(planned.stdout).toContain('move to: In Review')
    expect(fx.sandbox.stats().mutations).toBe(mutationsBefore)
    expect(fx.originBranches()).toEqual(['main'])

    const rep = await fx.script('report', [...a, '--issue', 'ENG-1'])
    expect(rep.code, rep.stderr).toBe(0)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(fx.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))).toHaveLength(1)
    expect(gitSync(['log', '-1', '--format=%s', branch], fx.origin)).toBe('ENG-1: Add a health check')
    // The loop afterwards finds nothing to do.
    const after = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(after.code).toBe(0)
    expect(Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.runs).toHaveLength(1)
  }, 60_000)

  test('a step on an issue another process holds refuses with the owner, and usage mistakes exit 2', async () => {
    fx = await fixture({ issues: ONE })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    // Usage mistakes run in-process (runCli, as the bin entry does); the rest spawn the script.
    const missing = await runScript('claim', a, fx.env)
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('missing --issue')
    const unknown = await runScript('claim', [...a, '--issue', 'ENG-1', '--frobnicate'], fx.env)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown option --frobnicate')
    const badAgent = await runScript('poll', ['--config', fx.configPath, '--agent', 'nobody'], fx.env)
    expect(badAgent.code).toBe(2)
    expect(badAgent.stderr).toContain('use one of: tester')
    const noIssue = await fx.script('claim', [...a, '--issue', 'ENG-99'])
    expect(noIssue.code).toBe(1)
    expect(noIssue.stderr).toContain('tracker_not_found')
    // A live owner (this test process) holds ENG-1.
    const now = new Date().toISOString()
    mkdirSync(join(fx.home, 'locks', 'tester'), { recursive: true })
    writeFileSync(
      join(fx.home, 'locks', 'tester', 'ENG-1.lock'),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: now, heartbeat: now }),
    )
    const held = await fx.script('claim', [...a, '--issue', 'ENG-1'])
    expect(held.code).toBe(1)
    expect(held.stderr).toContain(`ENG-1 is being worked on by pid ${process.pid}`)
    expect(fx.issue('ENG-1').state).toBe('Todo')
  }, 60_000)

  test('config check prints the resolved config with the token masked', async () => {
    fx = await fixture({ issues: [] })
    const res = await fx.script('config', ['check', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toContain('valid')
    expect(res.stdout).toContain('token: lin_***')
    expect(res.stdout).not.toContain(fx.env.ROSE_TEST_LINEAR_KEY!)
    expect(res.stdout).toContain('stall_seconds: 300')
  }, 30_000)
})

describe('limits from agents.yaml', () => {
  test('stall_seconds: 1 ends a silent engine as stalled within seconds, not as a timeout', async () => {
    fx = await fixture({ issues: ONE })
    // An engine that prints nothing for 12 s, then exits as if it had succeeded.
    const bin = join(fx.dir, 'silent-engine')
    writeFileSync(bin, '#!/bin/sh\nsleep 12\n')
    chmodSync(bin, 0o755)
    writeFileSync(
      fx.configPath,
      `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${fx.origin}, base: main }\n    limits: { stall_seconds: 1, timeout_minutes: 1, max_attempts: 1 }\n    claude: { bin: ${bin} }\n`,
    )
    const t0 = Date.now()
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    const took = Date.now() - t0
    expect(res.code).toBe(1)
    const run = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.runs[0]!
    expect(run).toMatchObject({ status: 'stalled', errorCode: 'engine_stalled' })
    expect(took).toBeLessThan(9_000)
  }, 60_000)
})

describe('each step --dry-run prints what the real step then does, and writes nothing', () => {
  test('claim, worktree and run-engine: the planned state, worktree, bootstrap and prompt are the ones the real steps produce', async () => {
    fx = await fixture({
      issues: ONE,
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main, bootstrap: "echo ready > .bootstrapped" }\n`,
    })
    const a = ['--config', fx.configPath, '--agent', 'tester', '--issue', 'ENG-1']
    expect((await fx.script('poll', ['--config', fx.configPath, '--agent', 'tester'])).code).toBe(0)
    const statePath = join(fx.home, 'state.json')
    // Each dry run: state.json byte for byte, no Linear mutation, no file written under
    // FACTORY_HOME (no lock, log, clone or worktree; safeJoin may create an empty layout directory).
    const files = () =>
      readdirSync(fx!.home, { recursive: true, withFileTypes: true })
        .filter((e) => !e.isDirectory())
        .map((e) => join(e.parentPath, e.name))
        .sort()
    const unchanged = async (step: string, args: string[]) => {
      const bytes = readFileSync(statePath)
      const mutations = fx!.sandbox.stats().mutations
      const homeBefore = files()
      const res = await fx!.script(step, [...args, '--dry-run', '--json'])
      expect(res.code, res.stderr).toBe(0)
      expect(readFileSync(statePath).equals(bytes)).toBe(true)
      expect(fx!.sandbox.stats().mutations).toBe(mutations)
      expect(files()).toEqual(homeBefore)
      return JSON.parse(res.stdout)
    }

    const claimPlan = await unchanged('claim', a)
    expect(claimPlan).toEqual({ issue: 'ENG-1', run: 1, resumesRun: false, moveTo: 'In Progress', dryRun: true })
    expect(fx.issue('ENG-1').state).toBe('Todo')
    const claim = await fx.script('claim', [...a, '--json'])
    expect(claim.code, claim.stderr).toBe(0)
    expect(JSON.parse(claim.stdout)).toEqual({ ...claimPlan, dryRun: false })
    expect(fx.issue('ENG-1').state).toBe(claimPlan.moveTo)
    expect(Object.values(readState(statePath).agents.tester!.issues)[0]!.runs.map((r) => r.n)).toEqual([claimPlan.run])

    const wtPlan = await unchanged('worktree', a)
    expect(wtPlan).toMatchObject({ created: true, clone: true, bootstrap: 'echo ready > .bootstrapped', dryRun: true })
    expect(existsSync(wtPlan.path)).toBe(false)
    const wtRes = await fx.script('worktree', [...a, '--json'])
    expect(wtRes.code, wtRes.stderr).toBe(0)
    const wt = JSON.parse(wtRes.stdout)
    expect(wt).toEqual({ path: wtPlan.path, branch: wtPlan.branch, startPoint: wtPlan.startPoint, created: true })
    expect(gitSync(['rev-parse', '--abbrev-ref', 'HEAD'], wt.path)).toBe(wtPlan.branch)
    expect(existsSync(join(wt.path, '.bootstrapped'))).toBe(true)
    // Run again, the step finds the worktree and skips the bootstrap: the dry run says so.
    expect(await unchanged('worktree', a)).toMatchObject({ path: wt.path, created: false, clone: false, bootstrap: null })
    expect(JSON.parse((await fx.script('worktree', [...a, '--json'])).stdout)).toMatchObject({ path: wt.path, created: false })

    const enginePlan = await unchanged('run-engine', a)
    expect(enginePlan).toMatchObject({ engine: 'console', cwd: wt.path, dryRun: true })
    expect(enginePlan.prompt).toContain('Use the router.')
    expect(existsSync(join(wt.path, 'FACTORY_NOTES.md'))).toBe(false)
    const eng = await fx.script('run-engine', [...a, '--json'])
    expect(eng.code, eng.stderr).toBe(0)
    expect(JSON.parse(eng.stdout)).toMatchObject({ status: 'success', logPath: enginePlan.logPath })
    // The console engine writes the prompt it was given: the planned one, byte for byte.
    expect(readFileSync(join(wt.path, 'FACTORY_NOTES.md'), 'utf8')).toBe(`# Notes from the console engine\n\n${enginePlan.prompt}`)
  }, 60_000)

  test('a dry run on an issue another live process holds refuses like the real step', async () => {
    fx = await fixture({ issues: ONE })
    const a = ['--config', fx.configPath, '--agent', 'tester', '--issue', 'ENG-1']
    const now = new Date().toISOString()
    mkdirSync(join(fx.home, 'locks', 'tester'), { recursive: true })
    writeFileSync(
      join(fx.home, 'locks', 'tester', 'ENG-1.lock'),
      JSON.stringify({ pid: process.pid, host: hostname(), startedAt: now, heartbeat: now }),
    )
    for (const step of ['claim', 'worktree']) {
      const dry = await fx.script(step, [...a, '--dry-run'])
      const real = await fx.script(step, a)
      expect(dry.code, step).toBe(1)
      expect(real.code, step).toBe(1)
      expect(dry.stderr).toContain(`ENG-1 is being worked on by pid ${process.pid}`)
      expect(real.stderr).toContain(`ENG-1 is being worked on by pid ${process.pid}`)
    }
    expect(fx.issue('ENG-1').state).toBe('Todo')
  }, 60_000)
})

// Issue 7: claim only what is ours.
describe('claim by hand', () => {
  test('on an issue not assigned or delegated to the agent exits 1 with not_assigned and leaves it in Todo', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'Nobody has it', description: 'unassigned' },
        { team: 'ENG', title: 'Riley has it', assignee: 'riley@rose.test' },
      ],
    })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    for (const id of ['ENG-1', 'ENG-2']) {
      const res = await fx.script('claim', [...a, '--issue', id])
      expect(res.code, id).toBe(1)
      expect(res.stderr).toContain(`not_assigned: ${id} is not assigned or delegated to this agent's Linear user`)
      expect(res.stderr).toContain(`fix: assign or delegate ${id} to the agent user in Linear`)
      expect(fx.issue(id).state).toBe('Todo')
      expect(fx.issue(id).comments).toEqual([])
    }
    expect(fx.sandbox.stats().mutations).toBe(0)
    // No run was opened for it.
    expect(Object.values(readState(join(fx.home, 'state.json')).agents.tester?.issues ?? {})).toEqual([])
  }, 60_000)

  test('on an issue unassigned since the last poll exits 1 with not_assigned, though state.json still has it queued', async () => {
    fx = await fixture({ issues: [{ team: 'ENG', title: 'Mine, then not', assignee: 'agent@rose.test' }] })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    expect((await fx.script('poll', a)).code).toBe(0)
    fx.sandbox.store.updateIssue('ENG-1', { assigneeId: null })
    const mutations = fx.sandbox.stats().mutations
    const res = await fx.script('claim', [...a, '--issue', 'ENG-1'])
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('not_assigned: ENG-1 is not assigned or delegated')
    expect(fx.issue('ENG-1').state).toBe('Todo')
    expect(fx.sandbox.stats().mutations).toBe(mutations)
    expect(Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.runs).toEqual([])
  }, 60_000)
})
