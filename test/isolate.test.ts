/**
 * Engine isolation: the pure bwrap planner, which isolation is in force and why, and the whole
 * pipeline with a hostile stand-in engine (a shell script used as `claude: { bin }`) that tries
 * to read its parents' environ, FACTORY_HOME and the real HOME, and to write outside its worktree.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.ts'
import { describeIsolation, isolationStatus, planIsolation, probeBwrap, type IsolationPaths } from '../lib/engines/isolate.ts'
import { readState } from '../lib/state.ts'
import { startFakeAnthropic } from './fakes/anthropic.ts'
import { engineBin } from './fakes/engine-harness.ts'
import { AGENT_KEY, failure, type Fixture, fixture } from './helpers.ts'

const PATHS: IsolationPaths = {
  factoryHome: '/srv/factory',
  engineHome: '/srv/factory/engine-home/tester',
  bwrap: '/usr/bin/bwrap',
  git: { common: '/srv/factory/repos/app', own: '/srv/factory/repos/app/worktrees/ENG-1' },
  symlinks: { '/bin': 'usr/bin', '/lib': 'usr/lib' },
}
const WT = '/srv/factory/worktrees/tester/ENG-1'
const CLAUDE = '/opt/engines/node_modules/@anthropic-ai/claude-code/bin/claude.exe'

/** The (source, dest) pairs of every `flag` in an argv. */
function binds(argv: string[], flag: string): string[] {
  const out: string[] = []
  argv.forEach((a, i) => a === flag && out.push(argv[i + 1]!))
  return out
}

describe('planIsolation builds the bwrap argv', () => {
  const { argvPrefix: a } = planIsolation({ name: 'tester', engine: 'claude' }, WT, PATHS, CLAUDE, { XDG_CONFIG_HOME: '/root/.config' })

  test('own PID and IPC namespaces, a new session, dies with its parent, network kept, argv ends with --', () => {
    expect(a[0]).toBe('/usr/bin/bwrap')
    for (const f of ['--unshare-pid', '--unshare-ipc', '--new-session', '--die-with-parent', '--share-net']) expect(a).toContain(f)
    expect(a).not.toContain('--unshare-net')
    expect(a).not.toContain('--unshare-user')
    expect(a.at(-1)).toBe('--')
  })

  test('read-write: only the worktree, the private HOME and the git objects/refs; FACTORY_HOME itself is never bound', () => {
    expect(binds(a, '--bind')).toEqual([PATHS.engineHome, PATHS.git!.own, WT])
    expect(binds(a, '--bind-try')).toEqual(['objects', 'refs', 'logs'].map((s) => `/srv/factory/repos/app/${s}`))
    expect([...binds(a, '--bind'), ...binds(a, '--ro-bind'), ...binds(a, '--ro-bind-try')]).not.toContain('/srv/factory')
    // The repository's config and hooks are visible read-only only.
    expect(binds(a, '--ro-bind')).toContain('/srv/factory/repos/app')
  })

  test('system dirs read-only, host symlinks mirrored, /etc filtered, private /tmp and /proc', () => {
    expect(binds(a, '--ro-bind')).toContain('/usr')
    expect(a.join(' ')).toContain('--symlink usr/bin /bin')
    expect(binds(a, '--ro-bind-try')).toContain('/etc/resolv.conf')
    expect(binds(a, '--ro-bind-try')).not.toContain('/etc')
    expect(binds(a, '--ro-bind-try').filter((p) => p.startsWith('/etc/environment'))).toEqual([])
    expect(a.join(' ')).toContain('--tmpfs /tmp')
    expect(a.join(' ')).toContain('--proc /proc')
    // The engine's package, read-only.
    expect(binds(a, '--ro-bind')).toContain('/opt/engines/node_modules')
  })

  test('HOME is the private engine home, TMPDIR the private /tmp, home-pointing variables unset', () => {
    expect(a.join(' ')).toContain(`--setenv HOME ${PATHS.engineHome}`)
    expect(a.join(' ')).toContain('--setenv TMPDIR /tmp')
    expect(a.join(' ')).toContain('--unsetenv XDG_CONFIG_HOME')
    expect(a.join(' ')).toContain(`--chdir ${WT}`)
  })

  test('a binary whose directory holds FACTORY_HOME or the worktree is bound alone, never its directory', () => {
    const bin = '/srv/engine-in-home'
    const p = planIsolation({ name: 'tester', engine: 'claude' }, WT, { ...PATHS, factoryHome: '/srv' }, bin, {}).argvPrefix
    expect(binds(p, '--ro-bind')).toContain(bin)
    expect(binds(p, '--ro-bind')).not.toContain('/srv')
  })

  test('Codex gets CODEX_HOME in its private home; a read-only Codex sandbox binds the worktree read-only', () => {
    const p = planIsolation({ name: 'tester', engine: 'codex', readOnlyWorktree: true }, WT, PATHS, CLAUDE, {}).argvPrefix
    expect(p.join(' ')).toContain(`--setenv CODEX_HOME ${PATHS.engineHome}/.codex`)
    expect(binds(p, '--ro-bind')).toContain(WT)
    expect(binds(p, '--bind')).not.toContain(WT)
  })
})

describe('isolationStatus says which isolation is in force and why', () => {
  const works = () => ({ path: '/usr/bin/bwrap', version: '0.8.0' })
  const absent = () => ({ problem: 'bwrap is not installed' })
  const agent = { name: 'tester', engine: 'claude' as const }

  test('namespace by default where bwrap works, none by default where it does not, none when asked', () => {
    expect(describeIsolation(isolationStatus(agent, {}, works))).toBe('engine isolation: namespace (bwrap 0.8.0)')
    expect(isolationStatus(agent, {}, absent)).toMatchObject({ mode: 'none', reason: expect.stringContaining('bwrap is not installed') })
    expect(isolationStatus({ ...agent, isolation: 'none' }, {}, works)).toMatchObject({
      mode: 'none',
      reason: 'isolation: none in agents.yaml',
    })
  })

  test('an explicit namespace without bwrap is config_invalid (exit 2) naming both fixes', () => {
    const err = failure(() => isolationStatus({ ...agent, isolation: 'namespace' }, {}, absent))
    expect(err.code).toBe('config_invalid')
    expect(err.message).toContain('bwrap is not installed')
    expect(err.fix).toContain('apt-get install bubblewrap')
    expect(err.fix).toContain('isolation: none')
  })

  test('agents.yaml takes isolation: namespace where bwrap works (config_invalid where it does not) and rejects any other value', () => {
    const yaml = `agents:\n  - name: t\n    engine: claude\n    isolation: namespace\n    tracker: { mode: api_key, token_env: K }\n    repo: { url: /x }\n`
    if (process.platform === 'linux' && existsSync('/usr/bin/bwrap')) {
      // /usr/bin is always searched: with bwrap there, loading succeeds.
      expect(parseConfig(yaml, 'agents.yaml', { K: 'k', PATH: '' }).agents[0]!.isolation).toBe('namespace')
    } else {
      expect(failure(() => parseConfig(yaml, 'agents.yaml', { K: 'k', PATH: '' })).code).toBe('config_invalid')
    }
    expect(failure(() => parseConfig(yaml.replace('namespace', 'jail'), 'agents.yaml', { K: 'k' })).message).toContain('isolation')
  })
})

const bwrap = probeBwrap()
const noBwrap = bwrap.problem ?? (bwrap.path ? undefined : 'no bwrap')
const ONE = [{ team: 'ENG', title: 'Probe', description: 'Try to escape', assignee: 'agent@rose.test' }]
const PLANTED = 'planted-secret-value-in-real-home'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

/**
 * A stand-in Claude that tries what a prompt-injected engine would, writes what it saw to
 * probe.txt in its worktree (so it is committed and pushed), and ends with a success result.
 */
function hostileEngine(f: Fixture): string {
  const bin = join(f.dir, 'hostile-engine')
  const script = `#!/bin/sh
out=probe.txt
try() { label="$1"; shift; if "$@" >/tmp/probe.out 2>/dev/null; then echo "OK $label: $(tr '\\0' ' ' </tmp/probe.out | head -c 2000)" >>$out; else echo "FAIL $label" >>$out; fi; }
echo "pids: $(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')" >>$out
try driver-environ cat /proc/${process.pid}/environ
try pid1-environ cat /proc/1/environ
try parent-environ cat /proc/$PPID/environ
try agents-yaml cat ${f.configPath}
try state-json cat ${join(f.home, 'state.json')}
try real-home-file cat ${join(f.dir, '.secret-file')}
try write-factory-home sh -c 'echo x > ${join(f.home, 'pwned')}'
try write-origin touch ${join(f.origin, 'pwned')}
try write-real-home touch ${join(f.dir, 'pwned')}
try write-root touch /rose-pwned-${process.pid}
try kill-driver kill -0 ${process.pid}
try git-config git config core.fsmonitor 'echo planted'
try plant-hook sh -c 'echo "#!/bin/sh" > "$(git rev-parse --git-common-dir)/hooks/pre-push"'
try git-commit sh -c 'echo hi > hello.txt && git add hello.txt && git -c user.name=e -c user.email=e@e commit -qm "engine commit"'
echo '{"type":"system","subtype":"init","session_id":"s-1"}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"probed","session_id":"s-1","usage":{"input_tokens":1,"output_tokens":1}}'
`
  writeFileSync(bin, script)
  chmodSync(bin, 0o755)
  writeFileSync(join(f.dir, '.secret-file'), PLANTED)
  return bin
}

async function probeRun(
  isolation: 'namespace' | 'none',
): Promise<{ probe: Record<string, string>; pids: number[]; f: Fixture; code: number | null; stderr: string }> {
  const f = (fx = await fixture({ issues: ONE }))
  const bin = hostileEngine(f)
  writeFileSync(
    f.configPath,
    `agents:\n  - name: tester\n    engine: claude\n    isolation: ${isolation}\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${f.origin}, base: main }\n    claude: { bin: ${bin} }\n`,
  )
  const res = await f.script('start', ['--once', '--config', f.configPath])
  const text = readFileSync(join(f.home, 'worktrees', 'tester', 'ENG-1', 'probe.txt'), 'utf8')
  const probe: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = line.match(/^(OK|FAIL) ([\w-]+)/)
    if (m) probe[m[2]!] = line
  }
  const pids = (text.match(/^pids: (.*)$/m)?.[1] ?? '').split(' ').filter(Boolean).map(Number)
  return { probe, pids, f, code: res.code, stderr: res.stderr }
}

describe.skipIf(!!noBwrap)(
  `a hostile engine under isolation: namespace${noBwrap ? ` (skipped: ${noBwrap}; apt-get install bubblewrap)` : ''}`,
  () => {
    test('it sees only its own processes, no environ with a secret, no FACTORY_HOME or real HOME, writes nowhere else; the run still reaches In Review', async () => {
      const { probe, pids, f, code, stderr } = await probeRun('namespace')
      expect(stderr).toContain('engine isolation: namespace (bwrap')
      expect(code).toBe(0)
      expect(f.issue('ENG-1').state).toBe('In Review')
      expect(f.originBranches().length).toBe(2)
      // /proc lists only the namespace: a handful of small pids, none of them the test's.
      expect(pids).not.toContain(process.pid)
      expect(pids.length).toBeLessThan(10)
      for (const attempt of ['driver-environ', 'agents-yaml', 'state-json', 'real-home-file', 'write-root', 'kill-driver'])
        expect(probe[attempt]).toBe(`FAIL ${attempt}`)
      expect(existsSync(`/rose-pwned-${process.pid}`)).toBe(false)
      // The repository's config and hooks are read-only to it; a commit of its own still works.
      expect(probe['git-config']).toBe('FAIL git-config')
      expect(probe['plant-hook']).toBe('FAIL plant-hook')
      expect(probe['git-commit']).toStartWith('OK git-commit')
      // The processes it can see (its own bwrap init, its shell) carry no secret of the factory.
      const all = Object.values(probe).join('\n')
      expect(all).not.toContain(AGENT_KEY)
      expect(all).not.toContain(PLANTED)
      // This fixture lives under /tmp, which is the engine's private tmpfs: a write to those paths
      // lands in that throw-away tmpfs (elsewhere it fails: / is read-only). Never on the host.
      for (const p of ['pwned']) {
        expect(existsSync(join(f.home, p))).toBe(false)
        expect(existsSync(join(f.origin, p))).toBe(false)
        expect(existsSync(join(f.dir, p))).toBe(false)
      }
      // The private home exists, 0700, under FACTORY_HOME.
      expect(statSync(join(realpathSync(f.home), 'engine-home', 'tester')).mode & 0o777).toBe(0o700)
      const run = Object.values(readState(join(f.home, 'state.json')).agents.tester!.issues)[0]!.runs[0]!
      expect(readFileSync(run.logPath!, 'utf8')).toContain('[rose] engine isolation: namespace')
    }, 60_000)

    test('the control: the same engine under isolation: none reaches the driver environ, agents.yaml and the real HOME', async () => {
      const { probe, pids } = await probeRun('none')
      expect(pids).toContain(process.pid)
      expect(probe['agents-yaml']).toStartWith('OK agents-yaml')
      expect(probe['real-home-file']).toContain(PLANTED)
      expect(probe['write-factory-home']).toBe('OK write-factory-home: ')
      expect(existsSync(join(fx!.home, 'pwned'))).toBe(true)
    }, 60_000)
  },
)

describe('the private engine home', () => {
  test('holds a copy of the CLI login only, never the rest of the real home', async () => {
    const { copyLogin } = await import('../lib/engines/isolate.ts')
    const { tempDir } = await import('./helpers.ts')
    const real = tempDir()
    const engineHome = join(tempDir(), 'engine-home')
    mkdirSync(join(real, '.claude'), { recursive: true })
    mkdirSync(join(real, '.ssh'), { recursive: true })
    writeFileSync(join(real, '.claude', '.credentials.json'), '{"token":"x"}')
    writeFileSync(join(real, '.claude.json'), '{}')
    writeFileSync(join(real, '.ssh', 'id_ed25519'), 'private key')
    expect(copyLogin('claude', engineHome, {}, real).sort()).toEqual(['.claude.json', '.claude/.credentials.json'])
    expect(readFileSync(join(engineHome, '.claude', '.credentials.json'), 'utf8')).toBe('{"token":"x"}')
    expect(existsSync(join(engineHome, '.ssh'))).toBe(false)
    // Up to date: not copied again.
    expect(copyLogin('claude', engineHome, {}, real)).toEqual([])
    mkdirSync(join(real, 'codex-home'))
    writeFileSync(join(real, 'codex-home', 'auth.json'), '{}')
    expect(copyLogin('codex', engineHome, { CODEX_HOME: join(real, 'codex-home') }, real)).toEqual(['auth.json'])
    expect(existsSync(join(engineHome, '.codex', 'auth.json'))).toBe(true)
  })
})

const claudeBin = engineBin('claude')
describe.skipIf(!!noBwrap || !claudeBin)(
  `the real Claude Code under isolation: namespace${noBwrap || !claudeBin ? ` (skipped: ${noBwrap ?? 'the claude CLI is not installed, run `make engines`'})` : ''}`,
  () => {
    test('its Bash tool sees neither FACTORY_HOME nor the driver, and the run reaches In Review', async () => {
      const fake = await startFakeAnthropic((req, n) => {
        if (n === 0)
          return {
            kind: 'tool_use',
            name: 'Bash',
            input: {
              command: `cat ${fx!.configPath}; test -e /proc/${process.pid} && echo SEES-DRIVER; echo HOME=$HOME; echo hi > hello.txt`,
            },
          }
        return { kind: 'text', text: 'Probed.' }
      })
      try {
        fx = await fixture({
          issues: ONE,
          agentYaml: (o) =>
            `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main }\n    claude: { bin: ${claudeBin} }\n`,
        })
        const res = await fx.script('start', ['--once', '--config', fx.configPath], {
          ANTHROPIC_BASE_URL: fake.url,
          CLAUDE_AUTH_TOKEN: 'fake-oauth-token',
          CLAUDE_CODE_MAX_RETRIES: '1',
        })
        expect(res.stderr).toContain('engine isolation: namespace (bwrap')
        expect(res.code).toBe(0)
        expect(fx.issue('ENG-1').state).toBe('In Review')
        // What the Bash tool returned (the tool_result blocks sent back to the model).
        const sent = JSON.stringify(
          fake.requests.flatMap((r) =>
            r.messages.flatMap((m: { content: unknown }) =>
              Array.isArray(m.content) ? m.content.filter((b) => b?.type === 'tool_result') : [],
            ),
          ),
        )
        expect(sent).toContain(`HOME=${join(realpathSync(fx.home), 'engine-home', 'tester')}`)
        expect(sent).toContain('No such file or directory')
        expect(sent).not.toContain('SEES-DRIVER')
        expect(sent).not.toContain(AGENT_KEY)
        expect(sent).not.toContain('ROSE_TEST_LINEAR_KEY }')
      } finally {
        await fake.stop()
      }
    }, 60_000)
  },
)
