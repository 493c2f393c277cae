/** Shared test set-up: a temp FACTORY_HOME, a sandbox with a seed, a bare git origin, and the scripts spawned for real. */
import { expect } from 'bun:test'
import { execFileSync, spawn } from 'node:child_process'
import { FactoryError } from '../lib/errors.ts'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createSampleOrigin } from '../lib/sandbox/sample-repo.ts'
import { type Sandbox, type SandboxSeed, startSandbox } from '../lib/sandbox/server.ts'
import { runCli } from '../lib/cli.ts'

export const ROOT = resolve(import.meta.dir, '..')

/** The FactoryError `fn` throws (fails the test when it throws nothing or something else). */
export function failure(fn: () => unknown): FactoryError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(FactoryError)
    return err as FactoryError
  }
  throw new Error('expected a FactoryError, nothing was thrown')
}

/** Wait until `fn` holds (checked every 50 ms); throws naming `what` after `timeoutMs`; returns the ms waited. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now()
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for: ${what}`)
    await Bun.sleep(50)
  }
  return Date.now() - t0
}

/** A fresh temp directory (removed by the caller's cleanup). */
/** The FactoryError `p` rejects with (fails the test when it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<FactoryError> {
  try {
    await p
  } catch (e) {
    if (e instanceof FactoryError) return e
    throw e
  }
  throw new Error('expected a FactoryError')
}

export function tempDir(prefix = 'rose-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Run git synchronously (test set-up only). */
export function gitSync(args: string[], cwd?: string): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  }).trim()
}

/** A bare repository with one commit on `main` (README.md), standing in for GitHub. */
export const makeOrigin = (dir: string): string => createSampleOrigin(dir)

export const AGENT_KEY = 'lin_api_test_agent_key'

/** A seed with one team, the agent user, a reviewer, and the given issues. */
export function seedWith(issues: NonNullable<SandboxSeed['issues']>, agentKey: string = AGENT_KEY): SandboxSeed {
  return {
    organization: { name: 'Rose Test', urlKey: 'rose-test' },
    teams: [{ key: 'ENG', name: 'Engineering' }],
    users: [
      { name: 'Factory Agent', email: 'agent@rose.test', apiKey: agentKey },
      { name: 'Riley Reviewer', email: 'riley@rose.test', apiKey: 'lin_api_test_riley_key' },
      { name: 'Sam Bystander', email: 'sam@rose.test', apiKey: 'lin_api_test_sam_key' },
    ],
    issues,
  }
}

export interface Fixture {
  dir: string
  home: string
  configPath: string
  origin: string
  sandbox: Sandbox
  env: Record<string, string>
  /** Spawn `bun scripts/<script>.ts ...args` with the fixture env. */
  script(
    script: string,
    args: string[],
    extraEnv?: Record<string, string>,
  ): Promise<{ code: number | null; stdout: string; stderr: string }>
  /** The sandbox's issue by identifier, with its state name and comments. */
  issue(identifier: string): { id: string; state: string; comments: { id: string; body: string; userId: string | null }[] }
  /** A human comment on an issue, as if typed in Linear. */
  comment(identifier: string, email: string, body: string): void
  /** Branches on the bare origin. */
  originBranches(): string[]
  cleanup(): Promise<void>
}

/** A complete factory set-up against a real sandbox and a real bare origin. */
export async function fixture(opts: {
  issues: NonNullable<SandboxSeed['issues']>
  agentYaml?: (origin: string) => string
  env?: Record<string, string>
  /** The agent user's Linear API key (default AGENT_KEY; a unique one for leak checks: other test runs on the machine use the default). */
  agentKey?: string
}): Promise<Fixture> {
  const dir = tempDir()
  const home = join(dir, 'home')
  mkdirSync(home, { recursive: true })
  const origin = makeOrigin(dir)
  const sandbox = await startSandbox({ port: 0, seed: seedWith(opts.issues, opts.agentKey), dataPath: join(dir, 'sandbox.json') })
  const configPath = join(home, 'agents.yaml')
  writeFileSync(
    configPath,
    opts.agentYaml?.(origin) ??
      `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${origin}, base: main }\n`,
  )
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    FACTORY_HOME: home,
    LINEAR_API_URL: sandbox.url,
    ROSE_TEST_LINEAR_KEY: opts.agentKey ?? AGENT_KEY,
    ...opts.env,
  }
  return {
    dir,
    home,
    configPath,
    origin,
    sandbox,
    env,
    script(script, args, extraEnv = {}) {
      return new Promise((resolvePromise) => {
        const child = spawn(process.execPath, [join(ROOT, 'scripts', `${script}.ts`), ...args], {
          cwd: dir,
          env: { ...env, ...extraEnv },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let stdout = ''
        let stderr = ''
        child.stdout.on('data', (d) => (stdout += d))
        child.stderr.on('data', (d) => (stderr += d))
        child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
      })
    },
    issue(identifier) {
      const d = sandbox.store.data
      const i = sandbox.store.issue(identifier)
      if (!i) throw new Error(`no issue ${identifier}`)
      return {
        id: i.id,
        state: d.states.find((s) => s.id === i.stateId)!.name,
        comments: d.comments.filter((c) => c.issueId === i.id).map((c) => ({ id: c.id, body: c.body, userId: c.userId })),
      }
    },
    comment(identifier, email, body) {
      sandbox.store.createComment({ issue: identifier, userId: sandbox.store.userByEmail(email)!.id, body })
    },
    originBranches() {
      return gitSync(['for-each-ref', '--format=%(refname:short)', 'refs/heads'], origin).split('\n').filter(Boolean)
    },
    async cleanup() {
      await sandbox.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Run `scripts/<script>.ts` in this process through runCli (what its bin entry does, without
 * exiting), with `env` as the env it sees; returns the exit code and what it printed itself.
 */
export async function runScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = (await import(join(ROOT, 'scripts', `${script}.ts`))).default
  let stdout = ''
  let stderr = ''
  const { code } = await runCli(command, args, { out: (t) => (stdout += t), err: (t) => (stderr += t), env })
  return { code, stdout, stderr }
}
