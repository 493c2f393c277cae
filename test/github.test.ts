import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { type FactoryError } from '../lib/errors.ts'
import { httpTimeoutMs, parseGitHubUrl, upsertPullRequest } from '../lib/github.ts'
import { readState } from '../lib/state.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { type Fixture, fixture, gitSync } from './helpers.ts'

let fx: Fixture | undefined
let gh: Awaited<ReturnType<typeof startFakeGitHub>> | undefined
afterEach(async () => {
  await gh?.stop()
  await fx?.cleanup()
  fx = undefined
  gh = undefined
})

const TOKEN = 'ghp_fake_token_for_github_test'
const PLAN = { repo: { owner: 'acme', name: 'app' }, head: 'agent/eng-1-x', base: 'main', title: 'ENG-1: x', body: 'body' }

describe('parseGitHubUrl', () => {
  test('reads owner and name from https URLs, with or without .git or a trailing slash', () => {
    for (const url of [
      'https://github.com/acme/app',
      'https://github.com/acme/app.git',
      'https://github.com/acme/app/',
      'http://github.com/acme/app.git',
    ]) {
      expect(parseGitHubUrl(url), url).toEqual({ owner: 'acme', name: 'app' })
    }
  })

  test('keeps dots, dashes and underscores that belong to the name', () => {
    expect(parseGitHubUrl('https://github.com/my-org/my.app_v2.git')).toEqual({ owner: 'my-org', name: 'my.app_v2' })
    expect(parseGitHubUrl('git@github.com:my-org/site.github.io.git')).toEqual({ owner: 'my-org', name: 'site.github.io' })
  })

  test('reads https URLs that carry credentials', () => {
    expect(parseGitHubUrl('https://x-access-token:abc@github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('reads scp-like ssh URLs', () => {
    expect(parseGitHubUrl('git@github.com:acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
    expect(parseGitHubUrl('git@github.com:acme/app')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('reads ssh:// and git:// URLs', () => {
    expect(parseGitHubUrl('ssh://git@github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
    expect(parseGitHubUrl('git://github.com/acme/app.git')).toEqual({ owner: 'acme', name: 'app' })
  })

  test('other hosts are not GitHub', () => {
    for (const url of [
      'https://gitlab.com/acme/app.git',
      'git@gitlab.com:acme/app.git',
      'https://github.com.evil.example/acme/app.git',
      'https://evilgithub.com/acme/app.git',
      'https://github.example.com/acme/app.git',
      'ssh://git@bitbucket.org/acme/app.git',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })

  test('local paths and file URLs are not GitHub', () => {
    for (const url of [
      '/srv/git/app.git',
      './app',
      '../github.com/acme/app',
      'file:///srv/git/github.com/acme/app.git',
      'C:\\repos\\app',
      'github.com/acme/app',
      '',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })

  test('URLs that are not a repository root are refused rather than misread', () => {
    for (const url of [
      'https://github.com/acme',
      'https://github.com/acme/app/tree/main',
      'https://github.com/acme/app/pull/3',
      'git@github.com:acme',
    ]) {
      expect(parseGitHubUrl(url), url).toBeNull()
    }
  })
})

describe('GitHub calls', () => {
  test('a PR lookup whose 200 body trickles forever fails within the deadline with github_failed naming the timeout', async () => {
    gh = await startFakeGitHub({ token: TOKEN, branchExists: () => true, misbehave: 'trickle', trickleMs: 50 })
    const t0 = Date.now()
    const err = (await upsertPullRequest(PLAN, { apiUrl: gh.url, token: TOKEN, timeoutMs: 800 }).catch((e) => e)) as FactoryError
    const took = Date.now() - t0
    expect(err.code).toBe('github_failed')
    expect(err.message).toContain('PR lookup')
    expect(err.message).toContain('timed out after 800 ms')
    expect(took).toBeGreaterThanOrEqual(700)
    expect(took).toBeLessThan(3_000)
  }, 10_000)

  test('an HTML 200 from a proxy is github_failed naming the content type, and no PATCH to /pulls/undefined is sent', async () => {
    gh = await startFakeGitHub({ token: TOKEN, branchExists: () => true, misbehave: 'html' })
    const err = (await upsertPullRequest(PLAN, { apiUrl: gh.url, token: TOKEN, timeoutMs: 5_000 }).catch((e) => e)) as FactoryError
    expect(err.code).toBe('github_failed')
    expect(err.message).toContain('PR lookup answered HTTP 200 (text/html')
    expect(err.message).toContain('<!doctype html>')
    expect(gh.requests.map((r) => r.method)).toEqual(['GET'])
    expect(gh.requests.some((r) => r.path.includes('undefined'))).toBe(false)
  })

  test('a PR answer without a number or URL is refused rather than reported as "PR updated undefined"', async () => {
    const fake = Object.assign(async () => undefined, {
      raw: async (url: string, o: { method?: string }) =>
        ({
          status: 200,
          headers: new Headers({ 'content-type': 'application/json' }),
          _data: o.method === 'POST' ? { id: 7, url: 'x' } : [],
          url,
        }) as unknown,
    })
    const err = (await upsertPullRequest(PLAN, { apiUrl: 'http://gh', token: TOKEN, fetch: fake as never }).catch((e) => e)) as FactoryError
    expect(err.code).toBe('github_failed')
    expect(err.message).toMatch(/PR creation answered HTTP 200 .*number/)
  })

  test('the deadline comes from ROSE_HTTP_TIMEOUT_MS when it is a positive number, else 30 s', () => {
    expect(httpTimeoutMs({ ROSE_HTTP_TIMEOUT_MS: '1500' })).toBe(1500)
    for (const v of [undefined, '', '0', '-5', 'soon']) expect(httpTimeoutMs({ ROSE_HTTP_TIMEOUT_MS: v })).toBe(30_000)
  })
})

describe('GitHub failures through the pipeline', () => {
  async function setup(mode: 'trickle' | 'html') {
    fx = await fixture({
      issues: [{ team: 'ENG', title: 'Add a health check', assignee: 'agent@rose.test' }],
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: console\n    limits: { max_attempts: 1 }\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main, github: acme/app }\n`,
    })
    const origin = fx.origin
    gh = await startFakeGitHub({ token: TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], origin) !== '', misbehave: mode })
    return { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: TOKEN, ROSE_HTTP_TIMEOUT_MS: '1500' }
  }

  test('a GitHub that trickles its answer forever fails the report within the deadline, with github_failed naming the timeout', async () => {
    const env = await setup('trickle')
    const t0 = Date.now()
    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    const took = Date.now() - t0
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('github_failed')
    expect(res.stderr).toContain('timed out after 1500 ms')
    expect(took).toBeLessThan(30_000)
    const rec = Object.values(readState(join(fx!.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.phase).toBe('escalated')
    expect(fx!.issue('ENG-1').comments.some((c) => c.body.includes('github_failed') && c.body.includes('timed out'))).toBe(true)
  }, 60_000)

  test('an HTML 200 fails the report with github_failed naming the body, and nothing says "PR updated undefined"', async () => {
    const env = await setup('html')
    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('github_failed')
    expect(res.stderr).toContain('text/html')
    expect(res.stderr + res.stdout).not.toContain('undefined')
    expect(gh!.requests.filter((r) => r.method !== 'GET')).toEqual([])
  }, 60_000)
})
