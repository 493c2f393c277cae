/**
 * Sentry (lib/sentry.ts), through real processes and a fake ingestion server (test/fakes/sentry.ts):
 * what reaches it, that no token value does, that expected failures and an unset SENTRY_DSN send
 * nothing and load no SDK (a preload lists the modules loaded, test/fixtures/module-census.ts), and
 * that an ingestion that is down costs one warning line, not the exit code.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import { bundleCli } from '../lib/bundle.ts'
import { redact } from '../lib/secrets.ts'
import { dsnTarget, scrub } from '../lib/sentry.ts'
import { startFakeSentry } from './fakes/sentry.ts'
import { fixture, ROOT, tempDir } from './helpers.ts'

const LINEAR = 'lin_api_sentry_planted_linear_value_7f3a'
const GITHUB = 'gh_sentry_planted_github_value_9c1d'
const dir = tempDir('rose-sentry-')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Spawned {
  code: number | null
  stdout: string
  stderr: string
  /** The @sentry modules the process had loaded when it exited. */
  sentryModules: string[]
  ms: number
}

let runs = 0
/** Spawn `bun --preload module-census.ts <script> ...args` with `env` (PATH and HOME added). */
function spawnWithCensus(script: string, args: string[], env: Record<string, string>): Promise<Spawned> {
  const census = join(dir, `census-${++runs}.txt`)
  const t0 = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--preload', join(ROOT, 'test/fixtures/module-census.ts'), script, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir, FACTORY_HOME: join(dir, 'home'), ROSE_CENSUS_FILE: census, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => {
      const sentryModules = existsSync(census) ? readFileSync(census, 'utf8').split('\n').filter(Boolean) : []
      resolve({ code, stdout, stderr, sentryModules, ms: Date.now() - t0 })
    })
  })
}

/** The test-only entry (a runCli command that fails as `--fail` says), with both tokens in its env. */
const failing = (how: string, env: Record<string, string> = {}) =>
  spawnWithCensus(join(ROOT, 'test/fixtures/sentry-cli.ts'), ['--fail', how], {
    LINEAR_API_KEY: LINEAR,
    FACTORY_GITHUB_TOKEN: GITHUB,
    ...env,
  })

function expectNoSecret(raw: Buffer | string): void {
  const text = raw.toString()
  expect(text).not.toContain(LINEAR)
  expect(text).not.toContain(GITHUB)
}

describe('an unexpected error with SENTRY_DSN set', () => {
  test('reaches Sentry once, tagged internal with its verb and release, with no token value anywhere in the bytes sent', async () => {
    const sentry = startFakeSentry()
    try {
      const r = await failing('internal', { SENTRY_DSN: sentry.dsn })
      expect(r.code).toBe(1)
      expect(r.stderr).toBe('internal: cannot read the answer (linear=*** github=***)\n')
      expect(sentry.requests.map((q) => [q.path, q.key])).toEqual([['/api/4242/envelope/', 'publickey0fake']])
      const [event, ...more] = sentry.events()
      expect(more).toEqual([])
      expect(event!.level).toBe('error')
      expect(event!.release).toBe(`rose-factory@${pkg.version}`)
      expect(event!.tags).toEqual({ code: 'internal', verb: 'sentry-fixture' })
      // The thrown error and its cause (linked), each with the redaction marker where the tokens were.
      expect(event!.exception.values.map((v) => [v.type, v.value])).toEqual([
        ['Error', 'upstream said linear=*** github=***'],
        ['TypeError', 'cannot read the answer (linear=*** github=***)'],
      ])
      expect(event!.exception.values[1]!.stacktrace!.frames.length).toBeGreaterThan(0)
      expectNoSecret(sentry.requests[0]!.raw)
      // The census sees the SDK when it is loaded (so its silence below means something).
      expect(r.sentryModules.some((m) => m.includes('@sentry/bun'))).toBe(true)
    } finally {
      await sentry.stop()
    }
  }, 30_000)

  test('an uncaught exception and an unhandled rejection are reported as fatal, printed redacted, and the exit code is what it is without Sentry', async () => {
    for (const how of ['uncaught', 'rejection']) {
      const sentry = startFakeSentry()
      try {
        const r = await failing(how, { SENTRY_DSN: sentry.dsn })
        // Bun prints an error thrown outside the command's promise and goes on (the command then ends: 0).
        expect(r.code).toBe((await failing(how)).code)
        expect(r.code).toBe(0)
        expect(r.stderr).toBe('internal: cannot read the answer (linear=*** github=***)\n')
        const events = sentry.events()
        expect(events.map((e) => [e.level, e.tags.origin, e.tags.code])).toEqual([
          ['fatal', how === 'uncaught' ? 'uncaughtException' : 'unhandledRejection', 'internal'],
        ])
        expect(events[0]!.exception.values.at(-1)!.value).toBe('cannot read the answer (linear=*** github=***)')
        expectNoSecret(sentry.requests[0]!.raw)
      } finally {
        await sentry.stop()
      }
    }
  }, 30_000)

  test('a run whose step throws an unknown error reports it with its agent and issue, redacted', async () => {
    const sentry = startFakeSentry()
    // FACTORY_HOME's own path holds the agent's Linear key, and a file stands where the base clones go:
    // creating the clone's directory throws a plain EEXIST naming that path (an `internal` in runIssue).
    const fx = await fixture({
      issues: [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test', priority: 2 }],
      agentKey: LINEAR,
    })
    try {
      const home = join(fx.dir, `home-${LINEAR}`)
      mkdirSync(home)
      writeFileSync(join(home, 'repos'), 'not a directory\n')
      const env = { ...fx.env, FACTORY_HOME: home, SENTRY_DSN: sentry.dsn, FACTORY_GITHUB_TOKEN: GITHUB }
      expect((await fx.script('poll', ['--config', fx.configPath], env)).code).toBe(0)
      const r = await spawnWithCensus(join(ROOT, 'scripts/run.ts'), ['--config', fx.configPath, '--issue', 'ENG-1'], env)
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/ENG-1: internal: .*EEXIST/)
      expectNoSecret(r.stderr)
      const events = sentry.events()
      expect(events.map((e) => e.tags)).toEqual([{ code: 'internal', agent: 'tester', issue: 'ENG-1', verb: 'run' }])
      expect(events[0]!.exception.values.at(-1)!.value).toContain('/home-***/repos')
      for (const q of sentry.requests) expectNoSecret(q.raw)
    } finally {
      await fx.cleanup()
      await sentry.stop()
    }
  }, 60_000)
})

describe('nothing is sent and no SDK is loaded', () => {
  test('for expected failures: a rate limit (exit 1) and a config error (exit 2)', async () => {
    const sentry = startFakeSentry()
    try {
      const limited = await failing('rate-limited', { SENTRY_DSN: sentry.dsn })
      expect(limited.code).toBe(1)
      expect(limited.stderr).toStartWith('tracker_rate_limited: Linear said wait (linear=*** github=***)\n')
      const config = await failing('config', { SENTRY_DSN: sentry.dsn })
      expect(config.code).toBe(2)
      expect(config.stderr).toStartWith('config_invalid: agents[0].name: bad (linear=*** github=***)\n')
      expect(sentry.requests).toEqual([])
      expect([...limited.sentryModules, ...config.sentryModules]).toEqual([])
    } finally {
      await sentry.stop()
    }
  }, 30_000)

  test('without SENTRY_DSN, for an internal error and an uncaught exception alike', async () => {
    const sentry = startFakeSentry()
    try {
      const internal = await failing('internal')
      expect([internal.code, internal.stderr]).toEqual([1, 'internal: cannot read the answer (linear=*** github=***)\n'])
      const uncaught = await failing('uncaught')
      // Bun's own handling: the error printed as Bun prints it (no handler of ours), and the command goes on.
      expect(uncaught.code).toBe(0)
      expect(uncaught.stderr).toContain('TypeError: cannot read the answer')
      expect(sentry.requests).toEqual([])
      expect([...internal.sentryModules, ...uncaught.sentryModules]).toEqual([])
    } finally {
      await sentry.stop()
    }
  }, 30_000)
})

describe('an ingestion that is down', () => {
  /** A port nothing listens on (taken, then released). */
  async function closedPort(): Promise<number> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    await new Promise((resolve) => server.close(resolve))
    return port
  }

  test('refused or never answering: the usual exit code and output, plus one warning line naming neither token nor key', async () => {
    const hanging = startFakeSentry({ mode: 'hang' })
    try {
      const refused = await failing('internal', { SENTRY_DSN: `http://publickey0fake@127.0.0.1:${await closedPort()}/4242` })
      const hung = await failing('internal', { SENTRY_DSN: hanging.dsn })
      console.log(`exit with an unreachable Sentry: refused ${refused.ms} ms, never answering ${hung.ms} ms`)
      for (const [r, why] of [
        [refused, /unreachable/],
        [hung, /not delivered within 2 s/],
      ] as const) {
        expect(r.code).toBe(1)
        const lines = r.stderr.trimEnd().split('\n')
        expect(lines[0]).toBe('internal: cannot read the answer (linear=*** github=***)')
        expect(lines.slice(1)).toHaveLength(1)
        expect(lines[1]).toMatch(/\[sentry\] warn: .*the error report is lost/)
        expect(lines[1]).toMatch(why)
        expect(lines[1]).not.toContain('publickey0fake')
        expectNoSecret(r.stderr)
      }
      expect(hanging.requests).toHaveLength(1)
    } finally {
      await hanging.stop()
    }
  }, 30_000)
})

describe('the pieces', () => {
  test('scrub redacts every string of an event, keys and nested values included, and leaves the rest', () => {
    const hide = (t: string) => redact(t, [LINEAR])
    const event = {
      message: `key ${LINEAR}`,
      level: 'error',
      n: 3,
      extra: { [LINEAR]: [{ deep: `x${LINEAR}y` }], ok: true },
      breadcrumbs: [{ message: LINEAR, data: { url: `https://h/?t=${LINEAR}` } }],
    }
    expect(scrub<unknown>(event, hide)).toEqual({
      message: 'key ***',
      level: 'error',
      n: 3,
      extra: { '***': [{ deep: 'x***y' }], ok: true },
      breadcrumbs: [{ message: '***', data: { url: 'https://h/?t=***' } }],
    })
  })

  test('dsnTarget names the host and project of a DSN, never its key, and refuses what is not a DSN', () => {
    expect(dsnTarget('https://abc123@o1.ingest.example/77')).toEqual({ host: 'o1.ingest.example', project: '77' })
    expect(dsnTarget('http://k@127.0.0.1:9000/path/5')).toEqual({ host: '127.0.0.1:9000', project: '5' })
    for (const bad of ['', 'not a url', 'https://o1.ingest.example/77', 'ftp://k@h/1', 'https://k@h/'])
      expect(dsnTarget(bad)).toBeUndefined()
  })

  test('the bundle imports @sentry/bun at run time instead of carrying it', async () => {
    const out = join(dir, 'dist')
    await bundleCli(ROOT, out)
    const chunks = readdirSync(out).map((f) => readFileSync(join(out, f), 'utf8'))
    expect(chunks.some((c) => /import\(["']@sentry\/bun["']\)/.test(c))).toBe(true)
    // A string of the SDK's own (its envelope endpoint's auth parameter): absent, so none of its code is in there.
    expect(chunks.filter((c) => c.includes('sentry_version'))).toEqual([])
  }, 60_000)
})
