/**
 * The status page end to end in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * the real loop (`start --port 0`) against the sandbox, the console engine and a fake GitHub. The
 * page lists a running issue, then shows it In Review with its PR link; the Retry button on an
 * escalated issue queues it again, and the loop runs it.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { readState, updateState } from '../lib/state.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { fixture, type Fixture, gitSync, ROOT, until } from './helpers.ts'

const CHROMIUM = '/usr/bin/chromium'
const SKIP = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (Debian: apt-get install chromium)`
if (SKIP) console.log(`skipping the status page in a browser: ${SKIP}`)

const GH_TOKEN = 'gh-test-token-status-page'
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const phaseOf = (f: Fixture, key: string) =>
  Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {}).find((r) => r.identifier === key)?.phase

describe('the status page', () => {
  test.skipIf(!!SKIP)(
    'shows the running issue, then In Review with its PR link; Retry on an escalated issue queues it and the loop runs it',
    async () => {
      const { chromium } = await import('playwright-core')
      const fx = await fixture({
        issues: [
          { team: 'ENG', title: 'Add a health check', priority: 2 },
          { team: 'ENG', title: 'Fix the flaky login', assignee: 'agent@rose.test', priority: 2 },
        ],
        agentYaml: (o) =>
          `poll_interval_seconds: 1\nagents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main, github: acme/app }\n`,
      })
      cleanups.push(() => fx.cleanup())
      const gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], fx.origin) !== '' })
      cleanups.push(() => gh.stop())
      const env = { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: GH_TOKEN }

      // ENG-2 ran once; then, as if its attempts were used up, it is escalated.
      expect((await fx.script('start', ['--once', '--config', fx.configPath], env)).code).toBe(0)
      updateState(join(fx.home, 'state.json'), (d) => {
        const r = Object.values(d.agents.tester!.issues).find((x) => x.identifier === 'ENG-2')!
        Object.assign(r, { phase: 'escalated', attempts: 3, lastError: { code: 'engine_stalled', message: 'no output for 300 s' } })
      })
      // ENG-1 is assigned now: the loop picks it up, and its engine takes a few seconds.
      fx.sandbox.store.updateIssue('ENG-1', { assigneeId: fx.sandbox.store.userByEmail('agent@rose.test')!.id })

      const loop = spawn(process.execPath, [join(ROOT, 'scripts', 'start.ts'), '--config', fx.configPath, '--port', '0'], {
        cwd: fx.dir,
        env: { ...fx.env, ...env, ROSE_CONSOLE_DELAY_MS: '5000' },
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      })
      const exited = new Promise((r) => loop.on('close', r))
      cleanups.push(async () => {
        try {
          process.kill(-loop.pid!, 'SIGKILL')
        } catch {}
        await exited
      })
      let stderr = ''
      loop.stderr.on('data', (d) => (stderr += d))
      await until('the status server listens', () => /status page and API on (http:\/\/\S+)/.test(stderr))
      const url = /status page and API on (http:\/\/\S+)/.exec(stderr)![1]!

      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] })
      cleanups.push(() => browser.close())
      const page = await browser.newPage()
      await page.goto(url)

      // Running: the row names the issue, its pid and engine.
      const running = page.locator('table[data-section="running"] tr[data-issue="ENG-1"]')
      await running.waitFor({ timeout: 30_000 })
      expect(await running.textContent()).toMatch(/ENG-1.*Add a health check.*#1 console/)

      // Then done: In Review, with the PR the fake GitHub opened.
      const recent = page.locator('table[data-section="recent"] tr[data-issue="ENG-1"]')
      await recent.filter({ hasText: 'In Review' }).waitFor({ timeout: 30_000 })
      const pr = gh.prs.find((p) => p.title.startsWith('ENG-1'))!
      expect(pr).toBeDefined()
      expect(await recent.locator('a.pr').getAttribute('href')).toBe(pr.html_url)
      expect(await page.locator('table[data-section="running"]').count()).toBe(0)

      // Retry on the escalated issue: queued (or already running), then run to the end by the loop.
      const escalated = page.locator('table[data-section="escalated"] tr[data-issue="ENG-2"]')
      expect(await escalated.textContent()).toContain('engine_stalled: no output for 300 s')
      await page.screenshot({ path: join(fx.dir, 'status-page.png'), fullPage: true })
      expect(statSync(join(fx.dir, 'status-page.png')).size).toBeGreaterThan(1000)
      await escalated.locator('button.retry').click()
      await page
        .locator('tr[data-issue="ENG-2"][data-group="queued"], tr[data-issue="ENG-2"][data-group="running"]')
        .first()
        .waitFor({ timeout: 30_000 })
      expect(['queued', 'claimed', 'running', 'reporting', 'done']).toContain(phaseOf(fx, 'ENG-2')!)
      expect(await page.locator('table[data-section="escalated"]').count()).toBe(0)
      await until('ENG-2 runs again to the end', () => phaseOf(fx, 'ENG-2') === 'done', 60_000)
      const second = page.locator('table[data-section="recent"] tr[data-issue="ENG-2"]').filter({ hasText: '#2 success' })
      await second.waitFor({ timeout: 30_000 })
      expect(await page.locator('#problem').textContent()).toBe('')
    },
    120_000,
  )
})
