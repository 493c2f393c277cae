/**
 * The agent_session end-to-end set-up, all real processes on 127.0.0.1: the sandbox (Linear's
 * schema, agent sessions, signed webhooks, client_credentials), a relay process on SQLite, a bare
 * origin, the fake GitHub and an agents.yaml for a console-engine agent in agent_session mode. The
 * worker's env holds only the relay's worker token and GitHub's; every Linear call goes through the relay.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxDelegate, sandboxSessions, sandboxSetWebhook } from '../../lib/sandbox/client.ts'
import { startSandbox, type Sandbox } from '../../lib/sandbox/server.ts'
import { startFakeGitHub } from './github.ts'
import { spawnRelay, type RelayProcess } from './relay-process.ts'
import { WEBHOOK_SECRET, WORKER_TOKEN } from './webhooks.ts'
import { gitSync, makeOrigin, ROOT, tempDir } from '../helpers.ts'

export const GH_TOKEN = 'gh-test-token-agent-session'
export const APP_TOKEN = 'lin_oauth_test_rosie_app_token'

export interface SessionActivity {
  id: string
  content: { type: string; body?: string; action?: string }
}

/** A `start` loop (no --once) in its own process group, with its output. */
export interface WorkerLoop {
  pid: number
  child: ChildProcess
  output(): string
  exited: Promise<number | null>
  /** SIGTERM (a clean stop), then its exit code. */
  stop(): Promise<number | null>
  /** SIGKILL to its whole process group (the driver; run children lead their own groups). */
  kill9(): Promise<void>
}

export interface Setup {
  dir: string
  home: string
  sandbox: Sandbox
  relay: RelayProcess
  /** The relay's spawn arguments and env, to start it again on the same queue file and port. */
  relayArgs: string[]
  relayEnv: Record<string, string>
  gh: Awaited<ReturnType<typeof startFakeGitHub>>
  origin: string
  env: Record<string, string>
  /** `start --once` (or other args) as the worker, to the end. */
  start(args?: string[], extraEnv?: Record<string, string>): Promise<{ code: number | null; stderr: string }>
  /** `start` without --once: the loop, until stopped. */
  loop(extraEnv?: Record<string, string>): WorkerLoop
  session(id: string): Promise<{ status: string; activities: SessionActivity[] }>
  /** The owner of the issue's run lock (the run child's pid, its engine when it spawned one), or null. */
  lockOwner(): { pid: number; engine?: { pid: number; pgid: number } } | null
  /** The issue's record in the worker's state.json. */
  record(): { phase: string; runs: { n: number; status: string; prompts?: string[] }[]; pendingPrompts?: unknown[] } | undefined
  /** Delegate ENG-1 to the app user: the new session's id. */
  delegate(): Promise<string>
  /** ENG-1's workflow state name in the sandbox. */
  issueState(): string
  stop(): Promise<void>
}

const dirs: string[] = []

/** Remove every set-up's directory (afterAll). */
export function removeSetups(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

/** Start the sandbox, the relay, the fake GitHub and write the worker's agents.yaml (`agentLines`: extra lines of the agent, e.g. its engine). */
export async function setup(
  opts: {
    engine?: string
    agentLines?: string
    issues?: number
    /** The agent's repository lines instead of `repo:` on the one origin (e.g. `repos:` over several; `dir` is the set-up's). */
    repoLines?: (origin: string, dir: string) => string
  } = {},
): Promise<Setup> {
  const dir = tempDir('rose-session-')
  dirs.push(dir)
  const home = join(dir, 'home')
  mkdirSync(home, { recursive: true })
  const origin = makeOrigin(dir)
  const sandbox = await startSandbox({
    port: 0,
    dataPath: join(dir, 'sandbox.json'),
    seed: {
      organization: { name: 'Rose Test', urlKey: 'rose-test' },
      teams: [{ key: 'ENG', name: 'Engineering' }],
      users: [
        { name: 'Riley Reviewer', email: 'riley@rose.test', apiKey: 'lin_api_test_riley_key' },
        {
          name: 'Rosie',
          email: 'rosie@app.rose.test',
          apiKey: APP_TOKEN,
          app: { clientId: 'rosie-client', clientSecret: 'rosie-client-secret' },
        },
      ],
      issues: Array.from({ length: opts.issues ?? 1 }, (_, i) =>
        i === 0
          ? { team: 'ENG', title: 'Add a health check', description: 'GET /healthz answers ok' }
          : { team: 'ENG', title: `Task ${i + 1}`, description: `Do task ${i + 1}` },
      ),
    },
  })
  const relayArgs = ['--local-queue', join(dir, 'relay', 'queue.db'), '--client-credentials']
  const relayEnv = {
    FACTORY_HOME: join(dir, 'relay-home'),
    LINEAR_CLIENT_ID: 'rosie-client',
    LINEAR_CLIENT_SECRET: 'rosie-client-secret',
    LINEAR_API_URL: sandbox.url,
    LINEAR_OAUTH_URL: sandbox.baseUrl,
  }
  const relay = await spawnRelay(relayArgs, relayEnv)
  await sandboxSetWebhook(sandbox.baseUrl, { url: `${relay.url}/webhooks/linear`, secret: WEBHOOK_SECRET })
  const gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], origin) !== '' })
  writeFileSync(
    join(home, 'agents.yaml'),
    `poll_interval_seconds: 1\nagents:\n  - name: rosie\n    engine: ${opts.engine ?? 'console'}\n    tracker: { mode: agent_session, relay_url: ${relay.url}, token_env: FACTORY_RELAY_WORKER_TOKEN, activity_interval_seconds: 0 }\n${opts.repoLines?.(origin, dir) ?? `    repo: { url: ${origin}, base: main, github: acme/app }\n`}${opts.agentLines ?? ''}`,
  )
  // The worker's env: the relay's worker token and GitHub's; no Linear token at all.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    FACTORY_HOME: home,
    FACTORY_RELAY_WORKER_TOKEN: WORKER_TOKEN,
    FACTORY_GITHUB_TOKEN: GH_TOKEN,
    GITHUB_API_URL: gh.url,
  }
  const spawnStart = (args: string[], extraEnv: Record<string, string>) =>
    spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), ...args], {
      cwd: dir,
      env: { ...env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
  const s: Setup = {
    dir,
    home,
    sandbox,
    relay,
    relayArgs,
    relayEnv,
    gh,
    origin,
    env,
    start(args = ['--once'], extraEnv = {}) {
      return new Promise((resolve) => {
        const child = spawnStart(args, extraEnv)
        let stderr = ''
        child.stdout!.on('data', (d) => (stderr += d))
        child.stderr!.on('data', (d) => (stderr += d))
        child.on('close', (code) => resolve({ code, stderr }))
      })
    },
    loop(extraEnv = {}) {
      const child = spawnStart([], extraEnv)
      let out = ''
      child.stdout!.on('data', (d) => (out += d))
      child.stderr!.on('data', (d) => (out += d))
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      return {
        pid: child.pid!,
        child,
        output: () => out,
        exited,
        stop() {
          child.kill('SIGTERM')
          return exited
        },
        async kill9() {
          try {
            process.kill(-child.pid!, 'SIGKILL')
          } catch {}
          await exited
        },
      }
    },
    async session(id) {
      const all = await sandboxSessions(sandbox.baseUrl)
      return all.find((x: { id: string }) => x.id === id)
    },
    lockOwner() {
      try {
        return JSON.parse(readFileSync(join(home, 'locks', 'rosie', 'ENG-1.lock'), 'utf8'))
      } catch {
        return null
      }
    },
    record() {
      try {
        const state = JSON.parse(readFileSync(join(home, 'state.json'), 'utf8'))
        return Object.values(state.agents?.rosie?.issues ?? {})[0] as ReturnType<Setup['record']>
      } catch {
        return undefined
      }
    },
    async delegate() {
      return (await sandboxDelegate(sandbox.baseUrl, { issue: 'ENG-1', user: 'riley@rose.test', app: 'rosie@app.rose.test' })).session
        .id as string
    },
    issueState() {
      const d = sandbox.store.data
      const i = sandbox.store.issue('ENG-1')!
      return d.states.find((x) => x.id === i.stateId)!.name
    },
    async stop() {
      await s.relay.stop()
      await gh.stop()
      await sandbox.stop()
    },
  }
  return s
}
