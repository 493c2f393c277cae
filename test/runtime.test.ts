/**
 * Runtime providers: the operator's prepare/teardown scripts spawned for real around the sandbox
 * pipeline (its env reaches the engine, its links the summary, its failures fail the attempt before
 * the engine starts, teardown runs when the issue closes), and a provider defined here, in the test,
 * working through the registry seam without a line of lib/ changed.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { parseConfig } from '../lib/config.ts'
import { agentContext } from '../lib/context.ts'
import type { Engine, EngineRunInput } from '../lib/engines/types.ts'
import { prepareRuntime } from '../lib/runtime/index.ts'
import { parsePrepared } from '../lib/runtime/command.ts'
import { providerFor, RUNTIME_PROVIDERS, runtimeSchemaOf } from '../lib/runtime/registry.ts'
import type { ProviderEntry } from '../lib/runtime/types.ts'
import { type IssueRecord, readState } from '../lib/state.ts'
import { runEngineStep } from '../lib/steps/run-engine.ts'
import type { TrackerIssue } from '../lib/tracker/types.ts'
import { type Fixture, fixture, rejection, tempDir } from './helpers.ts'

let fx: Fixture | undefined
const dirs: string[] = []
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A temp directory removed after the test. */
function scratch(): string {
  const d = tempDir()
  dirs.push(d)
  return d
}

const ONE = [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test', priority: 2 }]
const GH_TOKEN = `gh-test-token-${Math.random().toString(36).slice(2, 10)}`

/** An executable script at `path`. */
function script(path: string, body: string): string {
  writeFileSync(path, `#!/bin/sh\n${body}`)
  chmodSync(path, 0o755)
  return path
}

/** The test agent with `runtime` (a YAML flow map) and `extra` lines. */
function yaml(origin: string, runtime: string, extra = ''): string {
  return `cleanup_grace_minutes: 0\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${origin}, base: main }\n    runtime: ${runtime}\n${extra}`
}

function record(f: Fixture): IssueRecord | undefined {
  return Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {}).find((r) => r.identifier === 'ENG-1')
}

/** A prepare script that records its cwd and env in `dir`, then prints the runtime's JSON. */
function preparing(dir: string): string {
  return script(
    join(dir, 'prepare.sh'),
    `pwd > ${dir}/prepare-cwd.txt\nenv > ${dir}/prepare-env.txt\necho "starting the preview" >&2\n` +
      `printf '{"env":{"PREVIEW_DATABASE_URL":"postgres://127.0.0.1:5432/%s"},"urls":[{"label":"Preview","url":"http://127.0.0.1:8080/%s"}]}' "$RUN_ISSUE_KEY" "$RUN_ISSUE_KEY"\n`,
  )
}

describe('the command provider around a real run', () => {
  test("prepare runs in the worktree with the RUN_* variables and no token; its env reaches the engine's process", async () => {
    const dir = scratch()
    const prepare = preparing(dir)
    const dump = join(dir, 'engine-env.txt')
    const bin = script(join(dir, 'env-dumping-engine'), `env > ${dump}\nexit 1\n`)
    fx = await fixture({
      issues: ONE,
      env: { FACTORY_GITHUB_TOKEN: GH_TOKEN },
      agentYaml: (o) =>
        yaml(o, `{ provider: command, prepare: ${prepare} }`)
          .replace('engine: console', 'engine: claude')
          .concat(`    isolation: none\n    limits: { max_attempts: 1 }\n    claude: { bin: ${bin} }\n`),
    })
    await fx.script('start', ['--once', '--config', fx.configPath])
    const wt = join(fx.home, 'worktrees', 'tester', 'ENG-1')
    expect(readFileSync(join(dir, 'prepare-cwd.txt'), 'utf8').trim()).toBe(wt)
    const seen = readFileSync(join(dir, 'prepare-env.txt'), 'utf8')
    expect(seen).toContain('RUN_ISSUE_KEY=ENG-1\n')
    expect(seen).toContain(`RUN_WORKTREE=${wt}\n`)
    expect(seen).toContain('RUN_NUMBER=1\n')
    expect(seen).toMatch(/^RUN_BRANCH=\S+/m)
    expect(seen).not.toContain(GH_TOKEN)
    expect(seen).not.toContain(fx.env.ROSE_TEST_LINEAR_KEY!)
    expect(readFileSync(dump, 'utf8')).toContain('PREVIEW_DATABASE_URL=postgres://127.0.0.1:5432/ENG-1\n')
  }, 60_000)

  test('the urls prepare printed are in the summary comment and on the run', async () => {
    const dir = scratch()
    const prepare = preparing(dir)
    fx = await fixture({ issues: ONE, agentYaml: (o) => yaml(o, `{ provider: command, prepare: ${prepare} }`) })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    const summary = fx.issue('ENG-1').comments.find((c) => /Run #1 finished/.test(c.body))
    expect(summary?.body).toContain('Preview: http://127.0.0.1:8080/ENG-1')
    expect(record(fx)!.runs[0]!.runtimeUrls).toEqual([{ label: 'Preview', url: 'http://127.0.0.1:8080/ENG-1' }])
  }, 60_000)

  for (const bad of [
    {
      name: 'a prepare that outlives timeout_seconds',
      body: 'echo "waiting for the database" >&2\nsleep 30\n',
      timeout: 1,
      message: 'timed out after 1 s',
      stderr: 'waiting for the database',
      fix: 'raise runtime.timeout_seconds (1)',
    },
    {
      name: 'a prepare that prints something other than JSON',
      body: 'echo "booting"\necho "no database here" >&2\n',
      timeout: 120,
      message: 'not JSON',
      stderr: 'no database here',
      fix: 'it must exit 0 and print {"env"',
    },
    {
      name: 'a prepare whose JSON has the wrong shape',
      body: `echo '{"urls":[{"label":"x","url":"javascript:alert(1)"}]}'\necho "no database here" >&2\n`,
      timeout: 120,
      message: 'urls.0.url',
      stderr: 'no database here',
      fix: 'it must exit 0 and print {"env"',
    },
  ])
    test(`${bad.name} fails the attempt with runtime_prepare_failed, its stderr and its fix; the engine never starts`, async () => {
      const dir = scratch()
      const prepare = script(join(dir, 'prepare.sh'), bad.body)
      fx = await fixture({
        issues: ONE,
        agentYaml: (o) =>
          yaml(o, `{ provider: command, prepare: ${prepare}, timeout_seconds: ${bad.timeout} }`, '    limits: { max_attempts: 1 }\n'),
      })
      const res = await fx.script('start', ['--once', '--config', fx.configPath])
      expect(res.code).toBe(1)
      const r = record(fx)!
      expect(r.lastError?.code).toBe('runtime_prepare_failed')
      expect(r.lastError?.message).toContain(bad.message)
      expect(r.lastError?.message).toContain(bad.stderr)
      expect(r.lastError?.fix).toContain(bad.fix)
      expect(r.lastError?.fix).toContain(prepare.split('/').at(-1)!)
      // The console engine writes its transcript and FACTORY_NOTES.md first thing: neither exists.
      expect(existsSync(join(fx.home, 'logs', 'tester', 'ENG-1', 'run-1.log'))).toBe(false)
      expect(existsSync(join(fx.home, 'worktrees', 'tester', 'ENG-1', 'FACTORY_NOTES.md'))).toBe(false)
      const ask = fx.issue('ENG-1').comments.find((c) => c.body.includes('Needs a human'))
      expect(ask?.body).toContain('Last error (`runtime_prepare_failed`)')
    }, 60_000)

  test('teardown runs once when the issue closes, before its worktree is removed, without a token', async () => {
    const dir = scratch()
    const prepare = preparing(dir)
    const teardown = script(
      join(dir, 'teardown.sh'),
      `echo "$RUN_ISSUE_KEY $RUN_BRANCH $RUN_NUMBER $(test -d "$RUN_WORKTREE" && echo present)" >> ${dir}/teardowns.txt\nenv > ${dir}/teardown-env.txt\n`,
    )
    fx = await fixture({
      issues: ONE,
      env: { FACTORY_GITHUB_TOKEN: GH_TOKEN },
      agentYaml: (o) => yaml(o, `{ provider: command, prepare: ${prepare}, teardown: ${teardown} }`),
    })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const branch = record(fx)!.branch!
    expect(existsSync(join(dir, 'teardowns.txt'))).toBe(false)
    const done = fx.sandbox.store.data.states.find((s) => s.name === 'Done')!
    fx.sandbox.store.updateIssue('ENG-1', { stateId: done.id })
    for (let i = 0; i < 3; i++) expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    expect(readFileSync(join(dir, 'teardowns.txt'), 'utf8')).toBe(`ENG-1 ${branch} 1 present\n`)
    expect(existsSync(join(fx.home, 'worktrees', 'tester', 'ENG-1'))).toBe(false)
    expect(readFileSync(join(dir, 'teardown-env.txt'), 'utf8')).not.toContain(GH_TOKEN)
  }, 60_000)

  test('a failing teardown is logged and the worktree is removed anyway', async () => {
    const dir = scratch()
    const prepare = preparing(dir)
    const teardown = script(join(dir, 'teardown.sh'), 'echo "preview already gone" >&2\nexit 4\n')
    fx = await fixture({ issues: ONE, agentYaml: (o) => yaml(o, `{ provider: command, prepare: ${prepare}, teardown: ${teardown} }`) })
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const done = fx.sandbox.store.data.states.find((s) => s.name === 'Done')!
    fx.sandbox.store.updateIssue('ENG-1', { stateId: done.id })
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout + res.stderr).toContain('runtime teardown failed')
    expect(res.stdout + res.stderr).toContain('preview already gone')
    expect(existsSync(join(fx.home, 'worktrees', 'tester', 'ENG-1'))).toBe(false)
  }, 60_000)
})

describe('a provider defined outside lib/', () => {
  /** A preview-environment provider, as a user would add one: a schema and a constructor, nothing else. */
  const previewSchema = z.strictObject({ provider: z.literal('preview'), region: z.string() })
  const torn: string[] = []
  const preview: ProviderEntry<z.infer<typeof previewSchema>> = {
    name: 'preview',
    schema: previewSchema,
    create: (config) => ({
      name: 'preview',
      timeoutMs: 5_000,
      prepare: async (run) => ({
        env: { PREVIEW_REGION: config.region, PREVIEW_SAW_RUN_KEY: run.env.RUN_ISSUE_KEY ?? '' },
        urls: [{ label: 'Preview', url: `http://127.0.0.1:9/${run.issueKey}/${run.runNumber}` }],
      }),
      teardown: async (issue) => void torn.push(issue.issueKey),
    }),
  }
  const registry = [...RUNTIME_PROVIDERS, preview]

  test('its config is checked by its own schema through the registry, and an unknown key is refused', () => {
    const schema = runtimeSchemaOf(registry)
    expect(schema.parse({ provider: 'preview', region: 'eu' })).toEqual({ provider: 'preview', region: 'eu' })
    expect(schema.safeParse({ provider: 'preview', region: 'eu', size: 3 }).success).toBe(false)
    expect(schema.parse(undefined)).toEqual({ provider: 'none' })
    expect(providerFor({ provider: 'preview', region: 'eu' }, registry).name).toBe('preview')
    expect(() => providerFor({ provider: 'preview', region: 'eu' })).toThrow(/unknown provider "preview"/)
  })

  test("its env reaches the engine and its urls the run's record, through the run step's registry seam", async () => {
    const home = scratch()
    const wt = join(home, 'wt')
    mkdirSync(wt)
    const config = parseConfig(yaml('/nowhere.git', '{ provider: none }'), 'test.yaml', { ROSE_TEST_LINEAR_KEY: 'x' })
    const agent = { ...config.agents[0]!, runtime: { provider: 'preview', region: 'eu-west' } }
    const ctx = agentContext({
      config,
      configPath: 'test.yaml',
      agent,
      env: { PATH: process.env.PATH, FACTORY_HOME: home, ROSE_TEST_LINEAR_KEY: 'x' },
    })
    let seen: EngineRunInput | undefined
    const engine: Engine = {
      name: 'console',
      run: async (input) => {
        seen = input
        return { status: 'success', summary: 'done', exitCode: 0, logPath: input.logPath }
      },
    }
    const issue = { id: 'i1', identifier: 'ENG-7', title: 't', description: '', comments: [], labels: [] } as unknown as TrackerIssue
    const record = {
      id: 'i1',
      identifier: 'ENG-7',
      runs: [{ n: 1, startedAt: new Date().toISOString(), status: 'running' }],
    } as unknown as IssueRecord
    const step = await runEngineStep(ctx, {
      issue,
      record,
      runNumber: 1,
      viewerId: 'v',
      worktree: { path: wt, branch: 'eng-7', startPoint: 'origin/main' },
      engine,
      runtimeProviders: registry,
    })
    expect(seen?.env).toMatchObject({ PREVIEW_REGION: 'eu-west', PREVIEW_SAW_RUN_KEY: 'ENG-7' })
    expect(step.event.run.runtimeUrls).toEqual([{ label: 'Preview', url: 'http://127.0.0.1:9/ENG-7/1' }])
  })

  test('a provider that throws anything becomes runtime_prepare_failed naming the provider', async () => {
    const broken: ProviderEntry<{ provider: 'broken' }> = {
      name: 'broken',
      schema: z.strictObject({ provider: z.literal('broken') }),
      create: () => ({
        name: 'broken',
        timeoutMs: 1_000,
        prepare: () => Promise.reject(new Error('quota exceeded')),
        teardown: async () => {},
      }),
    }
    const config = parseConfig(yaml('/nowhere.git', '{ provider: none }'), 'test.yaml', { ROSE_TEST_LINEAR_KEY: 'x' })
    const agent = { ...config.agents[0]!, runtime: { provider: 'broken' } }
    const ctx = agentContext({ config, configPath: 'test.yaml', agent, env: { PATH: process.env.PATH, FACTORY_HOME: scratch() } })
    const err = await rejection(prepareRuntime(ctx, { issueKey: 'ENG-1', worktree: '/tmp', branch: 'b', runNumber: 1 }, [broken]))
    expect(err.code).toBe('runtime_prepare_failed')
    expect(err.message).toBe('runtime.prepare (provider broken) failed: quota exceeded')
  })
})

describe("prepare's stdout", () => {
  test('empty output means no env and no urls; anything else must be the documented object', () => {
    expect(parsePrepared('')).toEqual({ ok: true, value: { env: {}, urls: [] } })
    expect(parsePrepared('{"env":{"A":"1"}}')).toEqual({ ok: true, value: { env: { A: '1' }, urls: [] } })
    expect(parsePrepared('{"env":{"not a name":"1"}}')).toMatchObject({ ok: false, why: expect.stringContaining('env.not a name') })
    expect(parsePrepared('{"env":{},"extra":1}')).toMatchObject({ ok: false, why: expect.stringContaining('extra') })
  })
})
