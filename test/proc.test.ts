import { describe, expect, test } from 'bun:test'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, realpathSync, rmSync } from 'node:fs'
import { environClean } from '../lib/environ.ts'
import { FactoryError } from '../lib/errors.ts'
import { run, spawnScript } from '../lib/proc.ts'
import { descendants, killTree, pidAlive } from '../lib/signal.ts'
import { tempDir } from './helpers.ts'

/** Processes of group `pgid` that are still running (zombies already exited and do not count). */
function liveInGroup(pgid: number): string[] {
  const r = spawnSync('ps', ['-o', 'pid=,stat=,args=', '-g', String(pgid)], { encoding: 'utf8' })
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^\d+\s+Z/.test(l))
}

/** Wait until no process of the group runs, up to `ms`; returns what is still running. */
async function groupGone(pgid: number, ms = 1_000): Promise<string[]> {
  const deadline = Date.now() + ms
  for (;;) {
    const left = liveInGroup(pgid)
    if (left.length === 0 || Date.now() > deadline) return left
    await Bun.sleep(20)
  }
}

describe('run', () => {
  test('passes every argument verbatim, with no shell in between', async () => {
    const args = [
      '$(echo hi); rm -rf /',
      '`id`',
      'it\'s "quoted"',
      'two\nlines',
      '*',
      '~',
      '$HOME',
      'a && b | c > /tmp/x',
      '',
      ' spaced ',
      '-n',
      'ünï',
    ]
    const res = await run(['printf', '%s\\0', ...args])
    expect(res.exitCode).toBe(0)
    expect(res.stdout.split('\0').slice(0, -1)).toEqual(args)
    expect(res.argv).toEqual(['printf', '%s\\0', ...args])
  })

  test('a failing command comes back as a value with its exit code and stderr', async () => {
    const res = await run(['sh', '-c', 'echo partial; echo "no such file: x" >&2; exit 3'])
    expect(res.exitCode).toBe(3)
    expect(res.signal).toBeNull()
    expect(res.killed).toBeNull()
    expect(res.stdout).toBe('partial\n')
    expect(res.stderr).toBe('no such file: x\n')
    expect(res.durationMs).toBeGreaterThanOrEqual(0)
  })

  test('a missing binary rejects with engine_missing naming it', async () => {
    let err: unknown
    try {
      await run(['rose-factory-no-such-binary', '--version'])
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FactoryError)
    expect((err as FactoryError).code).toBe('engine_missing')
    expect((err as FactoryError).message).toContain('rose-factory-no-such-binary')
    expect((err as FactoryError).fix).toContain('rose-factory-no-such-binary')
  })

  test('runs in the given cwd with exactly the given env', async () => {
    const dir = realpathSync(tempDir('rose-proc-'))
    try {
      const res = await run(['sh', '-c', 'pwd; printf "%s|%s" "$ROSE_PROBE" "${HOME-unset}"'], {
        cwd: dir,
        env: { PATH: process.env.PATH, ROSE_PROBE: 'seen' },
      })
      expect(res.stdout).toBe(`${dir}\nseen|unset`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('input is written to stdin and then closed', async () => {
    const res = await run(['cat'], { input: 'line one\nline two\n' })
    expect(res.stdout).toBe('line one\nline two\n')
    const none = await run(['cat'], { timeoutMs: 2_000 })
    expect(none.stdout).toBe('')
    expect(none.killed).toBeNull()
  })

  test('onLine receives complete stdout lines, even when they arrive in pieces', async () => {
    const out: string[] = []
    const err: string[] = []
    const res = await run(
      ['sh', '-c', "printf 'one\\ntw'; sleep 0.05; printf 'o\\n'; sleep 0.05; printf 'thr'; printf 'ee'; printf 'oops\\nlast' >&2"],
      {
        onLine: (l) => out.push(l),
        onErrLine: (l) => err.push(l),
      },
    )
    expect(res.exitCode).toBe(0)
    expect(out).toEqual(['one', 'two', 'three'])
    expect(err).toEqual(['oops', 'last'])
  })

  test('a silent process is killed for stalling, quickly', async () => {
    const res = await run(['sleep', '30'], { stallMs: 150 })
    expect(res.killed).toBe('stall')
    expect(res.signal).toBe('SIGTERM')
    expect(res.durationMs).toBeLessThan(2_000)
  })

  test('a process that keeps printing is not stalled', async () => {
    const res = await run(['sh', '-c', 'for i in 1 2 3 4 5 6; do echo $i; sleep 0.06; done'], { stallMs: 250 })
    expect(res.killed).toBeNull()
    expect(res.exitCode).toBe(0)
    expect(res.stdout.trim().split('\n')).toHaveLength(6)
  })

  test('a chatty process that runs too long is killed for the hard timeout', async () => {
    const res = await run(['sh', '-c', 'while :; do echo tick; sleep 0.03; done'], { stallMs: 5_000, timeoutMs: 200 })
    expect(res.killed).toBe('timeout')
    expect(res.durationMs).toBeLessThan(2_000)
    expect(res.stdout).toContain('tick')
  })

  test('aborting the signal kills the process', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 100)
    const res = await run(['sleep', '30'], { signal: ac.signal })
    expect(res.killed).toBe('abort')
    expect(res.durationMs).toBeLessThan(2_000)
  })

  test('an already aborted signal kills the process at once', async () => {
    const res = await run(['sleep', '30'], { signal: AbortSignal.abort() })
    expect(res.killed).toBe('abort')
    expect(res.durationMs).toBeLessThan(1_000)
  })

  test('a kill takes the whole process group, not just the leader', async () => {
    const res = await run(['sh', '-c', 'sleep 30 & sleep 30 & wait'], { timeoutMs: 200 })
    expect(res.killed).toBe('timeout')
    expect(res.pid).toBeDefined()
    expect(await groupGone(res.pid!)).toEqual([])
  })

  test('children that ignore SIGTERM are killed after the grace period', async () => {
    const res = await run(['sh', '-c', 'trap "" TERM; sleep 30 & sleep 30 & wait'], { timeoutMs: 150, killGraceMs: 200 })
    expect(res.killed).toBe('timeout')
    expect(res.durationMs).toBeLessThan(2_000)
    expect(await groupGone(res.pid!)).toEqual([])
  })

  test('a leader that exits cleanly is not reported as stalled because a background child kept its output open', async () => {
    const res = await run(['sh', '-c', 'sleep 5 & echo finished'], { stallMs: 1_000 })
    expect(res.exitCode).toBe(0)
    expect(res.killed).toBeNull()
    expect(res.stdout).toBe('finished\n')
    expect(res.durationMs).toBeLessThan(1_000)
    expect(await groupGone(res.pid!)).toEqual([])
  })

  test('a child that ignores SIGTERM and closed its output does not outlive a kill', async () => {
    const res = await run(['sh', '-c', '(trap "" TERM; exec sleep 30) >/dev/null 2>&1 </dev/null & sleep 30'], {
      timeoutMs: 150,
      killGraceMs: 5_000,
    })
    expect(res.killed).toBe('timeout')
    expect(res.durationMs).toBeLessThan(2_000)
    expect(await groupGone(res.pid!)).toEqual([])
  })
})

describe('pidAlive', () => {
  test('is true for a running process and false once it has exited', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' })
    const pid = child.pid!
    expect(pidAlive(pid)).toBe(true)
    const exited = new Promise((r) => child.on('exit', r))
    child.kill('SIGKILL')
    await exited
    expect(pidAlive(pid)).toBe(false)
    const done = spawnSync('true')
    expect(pidAlive(done.pid!)).toBe(false)
  })
})

describe('killTree', () => {
  test('kills a process with everything it started, even in other process groups (engines run detached)', async () => {
    // sh starts two sleeps: one in its own session and group (like an engine), one in sh's group.
    const child = spawn('sh', ['-c', 'setsid sleep 30 & sleep 30 & wait'], { stdio: 'ignore' })
    const exited = new Promise((r) => child.on('exit', r))
    const deadline = Date.now() + 5_000
    // Until both run and setsid has made its own group (it forks, then calls setsid(2), then execs).
    const ready = () => descendants(child.pid!).filter((d) => d.pgid === d.pid).length === 1 && descendants(child.pid!).length === 2
    while (!ready() && Date.now() < deadline) await Bun.sleep(20)
    const below = descendants(child.pid!)
    expect(below).toHaveLength(2)
    // One of them leads a group of its own: killing sh (or sh's group) alone would leave it running.
    const detached = below.find((d) => d.pgid === d.pid)
    expect(detached).toBeDefined()

    expect(killTree(child.pid!)).toBe(2)
    await exited
    const gone = Date.now() + 2_000
    while (below.some((d) => pidAlive(d.pid)) && Date.now() < gone) await Bun.sleep(20)
    expect(below.filter((d) => pidAlive(d.pid))).toEqual([])
  })

  test('with self: false leaves the process itself alive', async () => {
    const child = spawn('sh', ['-c', 'sleep 30 & wait; sleep 30'], { stdio: 'ignore' })
    const deadline = Date.now() + 5_000
    while (descendants(child.pid!).length < 1 && Date.now() < deadline) await Bun.sleep(20)
    const [sleeper] = descendants(child.pid!)
    expect(killTree(child.pid!, { self: false })).toBe(1)
    await Bun.sleep(100)
    expect(pidAlive(sleeper!.pid)).toBe(false)
    expect(pidAlive(child.pid!)).toBe(true)
    const exited = new Promise((r) => child.on('exit', r))
    killTree(child.pid!)
    await exited
  })
})

describe('secrets handed on file descriptors, never in an environ', () => {
  test('run gives the child each text on fd 3, 4, ... as a real pipe: read once, then empty even through /proc', async () => {
    const r = await run(['sh', '-c', 'readlink /proc/self/fd/3; cat <&3; echo; cat <&4; echo; cat /proc/self/fd/3; echo "[again]"'], {
      fds: ['first-secret', 'second-secret'],
    })
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^pipe:/)
    expect(lines.slice(1, 3)).toEqual(['first-secret', 'second-secret'])
    // A pipe, not a file: what was read is gone, so another process of the user cannot reread it through /proc/<pid>/fd.
    expect(lines[3]).toBe('[again]')
  })

  test('spawnScript puts no secret in the child environ and hands every one on fd 3, where the child reads them', async () => {
    const dir = tempDir()
    try {
      const script = `${dir}/child.ts`
      await Bun.write(
        script,
        `import { readFileSync } from 'node:fs'\nimport { processEnv } from '${process.cwd()}/lib/secret-channel.ts'\n` +
          `const environ = readFileSync('/proc/self/environ', 'utf8')\nconst env = processEnv()\n` +
          `await Bun.write('${dir}/out.json', JSON.stringify({ environ, token: env.GITHUB_TOKEN, custom: env.MY_AGENT_KEY, plain: env.PLAIN, fdVarLeft: process.env.ROSE_SECRET_FD ?? null }))\n`,
      )
      const child = spawnScript(script, [], {
        env: { PATH: process.env.PATH, GITHUB_TOKEN: 'ghp_handed_on_fd3', MY_AGENT_KEY: 'lin_api_custom_fd3', PLAIN: 'in-env' },
        secretNames: ['MY_AGENT_KEY'],
      })
      expect(await child.exited).toBe(0)
      const seen = JSON.parse(readFileSync(`${dir}/out.json`, 'utf8'))
      expect(seen.environ).not.toContain('ghp_handed_on_fd3')
      expect(seen.environ).not.toContain('lin_api_custom_fd3')
      expect(seen.environ).toContain('PLAIN=in-env')
      expect(seen).toMatchObject({ token: 'ghp_handed_on_fd3', custom: 'lin_api_custom_fd3', plain: 'in-env', fdVarLeft: null })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  test('a process started with tokens in its env clears their values from its environ in place: one start, the tokens kept in memory', async () => {
    const dir = tempDir()
    try {
      const script = `${dir}/by-hand.ts`
      await Bun.write(
        script,
        `import { appendFileSync, readFileSync } from 'node:fs'\nimport { cleanOwnEnviron, processEnv } from '${process.cwd()}/lib/secret-channel.ts'\n` +
          `appendFileSync('${dir}/starts', 'x')\nconst how = await cleanOwnEnviron(['MY_AGENT_KEY'])\nconst env = processEnv()\n` +
          `await Bun.write('${dir}/out.json', JSON.stringify({ how, environ: readFileSync('/proc/self/environ', 'latin1'), token: env.GITHUB_TOKEN, custom: env.MY_AGENT_KEY, left: process.env.MY_AGENT_KEY ?? null }))\n`,
      )
      const child = Bun.spawnSync([process.execPath, script], {
        env: { PATH: process.env.PATH!, GITHUB_TOKEN: 'ghp_wiped_in_place', MY_AGENT_KEY: 'lin_api_wiped_in_place', PLAIN: 'in-env' },
      })
      expect(child.exitCode, child.stderr.toString()).toBe(0)
      const seen = JSON.parse(readFileSync(`${dir}/out.json`, 'utf8'))
      expect(seen.environ).not.toContain('ghp_wiped_in_place')
      expect(seen.environ).not.toContain('lin_api_wiped_in_place')
      expect(seen.environ.split('\0')).toEqual(expect.arrayContaining(['PLAIN=in-env', 'GITHUB_TOKEN=', 'MY_AGENT_KEY=']))
      expect(seen).toMatchObject({ how: 'wiped', token: 'ghp_wiped_in_place', custom: 'lin_api_wiped_in_place', left: null })
      // No second start (a re-exec would have run the script's first line again).
      expect(readFileSync(`${dir}/starts`, 'utf8')).toBe('x')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('an environ is clean when no secret entry has a value; an empty or non-secret one is fine', () => {
    const isSecret = (n: string) => n === 'KEY'
    expect(environClean(isSecret, 'PATH=/bin\0KEY=\0\0\0HOME=/h\0')).toBe(true)
    expect(environClean(isSecret, 'PATH=/bin\0KEY=lin_x\0')).toBe(false)
    // A second entry of the same name counts too.
    expect(environClean(isSecret, 'KEY=\0PATH=/bin\0KEY=lin_x\0')).toBe(false)
  })
})
