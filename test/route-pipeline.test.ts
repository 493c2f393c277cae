/**
 * One agent, several repositories, through the pipeline in api_key mode (lib/steps/route.ts and
 * what reads the routed repo): two bare origins, the sandbox, the fake GitHub, `start --once`.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createSampleOrigin } from '../lib/sandbox/sample-repo.ts'
import { stateView } from '../lib/status-view.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { fixture, type Fixture, gitSync } from './helpers.ts'

describe('an agent with two repositories, through the pipeline', () => {
  let fx: Fixture | undefined
  let gh: Awaited<ReturnType<typeof startFakeGitHub>> | undefined
  afterEach(async () => {
    await fx?.cleanup()
    await gh?.stop()
    fx = gh = undefined
  })
  const GH_TOKEN = 'gh-route-test-token'

  const branchesOf = (bare: string) =>
    gitSync(['for-each-ref', '--format=%(refname:short)', 'refs/heads'], bare).split('\n').filter(Boolean)
  const ours = (fx: Fixture, key: string) =>
    fx.issue(key).comments.filter((c) => c.userId === fx.sandbox.store.userByEmail('agent@rose.test')!.id)
  const statusJson = async (fx: Fixture) => JSON.parse((await fx.script('status', ['--all', '--json'])).stdout)

  /** Two origins, PRs to acme/api and acme/web on the fake GitHub (its branches: both origins'). */
  async function twoRepos(
    issues: Parameters<typeof fixture>[0]['issues'],
  ): Promise<{ fx: Fixture; api: string; web: string; gh: Awaited<ReturnType<typeof startFakeGitHub>> }> {
    let api = ''
    let web = ''
    const has = (bare: string, b: string) => !!bare && gitSync(['branch', '--list', b], bare) !== ''
    gh = await startFakeGitHub({ token: GH_TOKEN, branchExists: (b) => has(api, b) || has(web, b) })
    const f = await fixture({
      issues,
      env: { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: GH_TOKEN },
      agentYaml: (origin) => {
        web = origin
        mkdirSync(join(web, '..', 'api'), { recursive: true })
        api = createSampleOrigin(join(web, '..', 'api'))
        return [
          'poll_interval_seconds: 1',
          'agents:',
          '  - name: tester',
          '    engine: console',
          '    concurrency: 3',
          '    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }',
          '    repos:',
          `      - { url: ${api}, base: main, github: acme/api, match: { labels: [backend] } }`,
          `      - { url: ${web}, base: main, github: acme/web, match: { labels: [frontend] } }`,
          '',
        ].join('\n')
      },
    })
    return { fx: f, api, web: f.origin, gh }
  }

  test('each issue runs in the repository its labels route it to; one that matches none gets one comment and is not run', async () => {
    const t = await twoRepos([
      { team: 'ENG', title: 'Fix the API', labels: ['backend'], assignee: 'agent@rose.test' },
      { team: 'ENG', title: 'Polish the page', labels: ['frontend'], assignee: 'agent@rose.test' },
      { team: 'ENG', title: 'Something vague', labels: ['docs'], assignee: 'agent@rose.test' },
    ])
    fx = t.fx
    const dry = await fx.script('start', ['--once', '--dry-run', '--config', fx.configPath])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stderr).toContain('tester: ENG-1 would run in acme/api (matches label backend)')
    expect(dry.stderr).toContain('tester: ENG-2 would run in acme/web (matches label frontend)')
    expect(dry.stderr).toContain('tester: ENG-3 would run nowhere yet: no repos rule takes it (the run would ask a human)')

    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(1) // ENG-3 could not run
    expect(res.stderr).toContain('ENG-3 matches no repository of agent tester (it has labels docs, team ENG, project (none))')

    const api = branchesOf(t.api)
    const web = branchesOf(t.web)
    expect(api.some((b) => b.includes('eng-1'))).toBe(true)
    expect(api.some((b) => b.includes('eng-2') || b.includes('eng-3'))).toBe(false)
    expect(web.some((b) => b.includes('eng-2'))).toBe(true)
    expect(web.some((b) => b.includes('eng-1') || b.includes('eng-3'))).toBe(false)
    expect(fx.issue('ENG-1').state).toBe('In Review')
    expect(ours(fx, 'ENG-1').at(-1)!.body).toContain('Repository: acme/api')
    expect(ours(fx, 'ENG-2').at(-1)!.body).toContain('Repository: acme/web')
    // Each PR is opened on its own repository's GitHub project.
    const prs = Object.fromEntries(t.gh.prs.map((p) => [p.head, p.html_url]))
    expect(Object.keys(prs)).toHaveLength(2)
    expect(prs[api.find((b) => b.includes('eng-1'))!]).toContain('/acme/api/pull/')
    expect(prs[web.find((b) => b.includes('eng-2'))!]).toContain('/acme/web/pull/')

    // ENG-3: one comment naming where each rule routes, still Todo, waiting for a human.
    expect(fx.issue('ENG-3').state).toBe('Todo')
    const said = ours(fx, 'ENG-3')
    expect(said).toHaveLength(1)
    expect(said[0]!.body).toContain('**No repository for this issue.**')
    expect(said[0]!.body).toContain('- label backend -> acme/api')
    expect(said[0]!.body).toContain('- label frontend -> acme/web')

    const status = await statusJson(fx)
    const row = (k: string) => status.issues.find((r: { identifier: string }) => r.identifier === k)
    expect(row('ENG-3')).toMatchObject({ group: 'escalated', lastError: { code: 'repo_unmatched' } })
    expect(row('ENG-1').repo).toBe(t.api)
    expect(row('ENG-2').repo).toBe(t.web)
    const table = (await fx.script('status', ['--all'])).stdout
    expect(table).toMatch(new RegExp(`ENG-1 .*in ${t.api.replace(/[/.]/g, '\\$&')}`))

    // The status page's data names it too.
    const view = stateView(fx.home, { mode: 'watch' })
    expect(view.agents.tester!.recent.find((r) => r.identifier === 'ENG-2')?.repo).toBe(t.web)

    // Nothing changed: no second comment, no run.
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    expect(ours(fx, 'ENG-3')).toHaveLength(1)
    expect(fx.issue('ENG-3').state).toBe('Todo')
  }, 120_000)

  test('a rerun stays in the repository of the first run, though the labels now route elsewhere', async () => {
    const t = await twoRepos([{ team: 'ENG', title: 'Fix the API', labels: ['backend'], assignee: 'agent@rose.test' }])
    fx = t.fx
    expect((await fx.script('start', ['--once', '--config', fx.configPath])).code).toBe(0)
    const branch = branchesOf(t.api).find((b) => b.includes('eng-1'))!
    const before = gitSync(['rev-list', '--count', branch], t.api)

    // Relabelled frontend, then a reviewer asks for more.
    const store = fx.sandbox.store
    const frontend = {
      id: crypto.randomUUID(),
      teamId: store.data.teams[0]!.id,
      name: 'frontend',
      color: '#000000',
      createdAt: '',
      updatedAt: '',
    }
    store.data.labels.push(frontend)
    store.issue('ENG-1')!.labelIds = [frontend.id]
    fx.comment('ENG-1', 'riley@rose.test', 'Please also handle the empty case.')
    const res = await fx.script('start', ['--once', '--config', fx.configPath])
    expect(res.code, res.stderr).toBe(0)

    expect(Number(gitSync(['rev-list', '--count', branch], t.api))).toBeGreaterThan(Number(before))
    expect(branchesOf(t.web)).toEqual(['main'])
  }, 120_000)
})
