import { afterAll, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { agentState, type FactoryState, readState, updateState } from '../lib/state.ts'
import { ROOT, tempDir, failure } from './helpers.ts'

const dir = tempDir('rose-state-')
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
/** A fresh state.json path in its own directory. */
function statePath(): string {
  const d = join(dir, `s${++n}`)
  mkdirSync(d)
  return join(d, 'state.json')
}

const SNAPSHOT = { id: 'i1', identifier: 'ENG-1', title: 'Add a health check' }

function addIssue(s: FactoryState, agent: string, id: string) {
  agentState(s, agent).issues[id] = {
    id,
    identifier: 'ENG-1',
    title: 'Add a health check',
    phase: 'queued',
    snapshot: SNAPSHOT as never,
    runs: [{ n: 1, startedAt: '2025-01-01T00:00:00.000Z', status: 'success', summary: 'done', costUsd: 0.12 }],
    attempts: 1,
    recoveries: 0,
    updatedAt: '2025-01-01T00:00:00.000Z',
  }
}

describe('readState', () => {
  test('a missing file is an empty state', () => {
    expect(readState(join(dir, 'nowhere', 'state.json'))).toEqual({ version: 1, agents: {} })
  })

  test('bad JSON is state_corrupt naming the file and pointing at its .bak', () => {
    for (const body of ['{"version": 1, "agents": {', '', 'not json at all']) {
      const path = statePath()
      writeFileSync(path, body)
      const err = failure(() => readState(path))
      expect(err.code).toBe('state_corrupt')
      expect(err.message).toContain(path)
      expect(err.message).toContain('not valid JSON')
      expect(err.fix).toContain(`${path}.bak`)
      expect(err.exitCode).toBe(1)
    }
  })

  test('valid JSON of the wrong shape is state_corrupt naming the file and the bad key', () => {
    const cases: [unknown, string][] = [
      [{ version: 2, agents: {} }, 'version'],
      [null, '(top)'],
      [[], '(top)'],
      [{ version: 1, agents: { tester: { issues: { i1: { id: 'i1', phase: 'sideways' } } } } }, 'agents.tester.issues.i1'],
      [{ version: 1, agents: { tester: { cursor: 42 } } }, 'agents.tester.cursor'],
    ]
    for (const [body, where] of cases) {
      const path = statePath()
      writeFileSync(path, JSON.stringify(body))
      const err = failure(() => readState(path))
      expect(err.code).toBe('state_corrupt')
      expect(err.message).toContain(path)
      expect(err.message, JSON.stringify(body)).toContain(where)
      expect(err.fix).toContain('.bak')
    }
  })
})

describe('updateState', () => {
  test('what an update writes is what the next read returns', () => {
    const path = statePath()
    const out = updateState(path, (s) => {
      agentState(s, 'tester').cursor = '2025-01-02T03:04:05.000Z'
      addIssue(s, 'tester', 'i1')
      return 'returned'
    })
    expect(out).toBe('returned')
    const s = readState(path)
    expect(s.agents.tester!.cursor).toBe('2025-01-02T03:04:05.000Z')
    expect(s.agents.tester!.issues.i1!.runs[0]).toEqual({
      n: 1,
      startedAt: '2025-01-01T00:00:00.000Z',
      status: 'success',
      summary: 'done',
      costUsd: 0.12,
    })
    expect(s.agents.tester!.issues.i1!.snapshot).toEqual(SNAPSHOT as never)
    updateState(path, (d) => {
      d.agents.tester!.issues.i1!.phase = 'done'
    })
    expect(readState(path).agents.tester!.issues.i1!.phase).toBe('done')
    expect(readState(path).agents.tester!.cursor).toBe('2025-01-02T03:04:05.000Z')
  })

  test('leaves no temp or lock files behind', () => {
    const path = statePath()
    updateState(path, (s) => void agentState(s, 'a'))
    updateState(path, (s) => void agentState(s, 'b'))
    expect(readdirSync(join(path, '..')).sort()).toEqual(['state.json', 'state.json.bak'])
  })

  test('keeps the previous good copy as state.json.bak', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'first'))
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'second'))
    expect(readState(path).agents.tester!.cursor).toBe('second')
    expect(readState(`${path}.bak`).agents.tester!.cursor).toBe('first')
  })

  test('a corrupt file is reported, not reset, and neither it nor the .bak is touched', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'good'))
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'better'))
    writeFileSync(path, '{"version": 1, "agents": {"tester": {"cur')
    const bak = readFileSync(`${path}.bak`, 'utf8')
    let called = false
    const err = failure(() =>
      updateState(path, () => {
        called = true
      }),
    )
    expect(err.code).toBe('state_corrupt')
    expect(called).toBe(false)
    expect(readFileSync(path, 'utf8')).toBe('{"version": 1, "agents": {"tester": {"cur')
    expect(readFileSync(`${path}.bak`, 'utf8')).toBe(bak)
    expect(readState(`${path}.bak`).agents.tester!.cursor).toBe('good')
  })

  test('an update that throws writes nothing and frees the lock for the next one', () => {
    const path = statePath()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'kept'))
    expect(() =>
      updateState(path, (s) => {
        agentState(s, 'tester').cursor = 'lost'
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(readState(path).agents.tester!.cursor).toBe('kept')
    const t0 = Date.now()
    updateState(path, (s) => void (agentState(s, 'tester').cursor = 'next'))
    expect(Date.now() - t0).toBeLessThan(1_000)
    expect(existsSync(`${path}.lock`)).toBe(false)
  })
})

/** Spawn `bun -e code` and resolve with its exit code and stderr. */
function bunEval(code: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', code, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    c.stderr!.on('data', (d) => (stderr += d))
    c.on('close', (code) => resolve({ code, stderr }))
  })
}

const INCREMENT = `
const { updateState, agentState } = await import(${JSON.stringify(join(ROOT, 'lib', 'state.ts'))})
const path = process.argv.at(-2), times = Number(process.argv.at(-1))
for (let i = 0; i < times; i++) {
  updateState(path, (s) => {
    const a = agentState(s, 'counter')
    a.cursor = String(Number(a.cursor ?? '0') + 1)
  })
}
`

describe('concurrent updates', () => {
  test('several processes incrementing a counter lose no increment', async () => {
    const path = statePath()
    const PROCS = 6
    const TIMES = 20
    const results = await Promise.all(Array.from({ length: PROCS }, () => bunEval(INCREMENT, [path, String(TIMES)])))
    for (const r of results) expect(r.code, r.stderr).toBe(0)
    expect(readState(path).agents.counter!.cursor).toBe(String(PROCS * TIMES))
  }, 20_000)

  test('a reader never finds state.json missing or empty while another process rewrites it', async () => {
    const path = statePath()
    const TIMES = 80
    updateState(path, (s) => void (agentState(s, 'counter').cursor = '0'))
    const writer = bunEval(INCREMENT, [path, String(TIMES)])
    let reads = 0
    const glitches = new Map<string, number>()
    const deadline = Date.now() + 8_000
    for (;;) {
      let cursor: string | null | undefined
      try {
        cursor = readState(path).agents.counter?.cursor
      } catch (err) {
        const what = `threw ${(err as Error).message.slice(0, 60)}`
        glitches.set(what, (glitches.get(what) ?? 0) + 1)
        continue
      }
      reads++
      if (cursor === undefined) glitches.set('missing, read as empty', (glitches.get('missing, read as empty') ?? 0) + 1)
      if (cursor === String(TIMES) || Date.now() > deadline) break
    }
    const w = await writer
    expect(w.code, w.stderr).toBe(0)
    expect(reads).toBeGreaterThan(TIMES)
    expect(Object.fromEntries(glitches)).toEqual({})
  }, 20_000)
})
