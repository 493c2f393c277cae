/** One agent, several repositories: the routing rules (lib/route.ts, pure) and the repos key of agents.yaml. */
import { describe, expect, test } from 'bun:test'
import { parseConfig, type RepoEntry } from '../lib/config.ts'
import type { AgentContext } from '../lib/context.ts'
import {
  candidates,
  describeMatch,
  describeRoute,
  describeRules,
  pickFromReplies,
  pickSuggestion,
  planRoute,
  repoName,
  repoOfRecord,
  routedContext,
  unmatchedError,
  withRepo,
} from '../lib/route.ts'
import { failure } from './helpers.ts'

const env = { KEY: 'lin_api_x' }
const agentYaml = (repoLines: string) =>
  `agents:\n  - name: a\n    engine: console\n    tracker: { mode: api_key, token_env: KEY }\n${repoLines}`

const REPOS: RepoEntry[] = [
  { url: '/r/api.git', base: 'main', bootstrap_timeout_seconds: 300, github: 'acme/api', match: { labels: ['backend', 'API'] } },
  { url: '/r/web.git', base: 'main', bootstrap_timeout_seconds: 300, github: 'acme/web', match: { team: 'web', project: 'Site' } },
  { url: '/r/mono.git', base: 'develop', bootstrap_timeout_seconds: 300, github: 'acme/mono' },
]
const issue = (labels: string[], team = 'ENG', project: string | null = null) => ({ labels, team: { key: team }, project })

describe('planRoute', () => {
  test('the first entry whose rule holds takes the issue; labels match any one of them, case-insensitively', () => {
    expect(planRoute(issue(['api']), { repos: REPOS })).toMatchObject({ kind: 'repo', repo: { url: '/r/api.git' } })
    expect(planRoute(issue(['x', 'Backend']), { repos: REPOS })).toMatchObject({ kind: 'repo', why: 'matches labels backend or API' })
  })

  test('every key of a rule must hold (team and project), else the entry without match is the default', () => {
    expect(planRoute(issue([], 'WEB', 'site'), { repos: REPOS })).toMatchObject({ repo: { url: '/r/web.git' } })
    expect(planRoute(issue([], 'WEB', null), { repos: REPOS })).toMatchObject({ repo: { url: '/r/mono.git' }, why: 'the default entry' })
    expect(planRoute(issue([], 'ENG', 'Site'), { repos: REPOS })).toMatchObject({ repo: { url: '/r/mono.git' } })
  })

  test('with no default and no rule holding, nothing decides', () => {
    expect(planRoute(issue(['docs']), { repos: REPOS.slice(0, 2) })).toEqual({ kind: 'unmatched' })
  })

  test('a recorded repository is kept even when the labels now route elsewhere; one no longer configured is named', () => {
    expect(planRoute(issue(['backend']), { repos: REPOS }, '/r/web.git')).toMatchObject({ repo: { url: '/r/web.git' } })
    expect(planRoute(issue([]), { repos: REPOS }, '/r/gone.git')).toEqual({ kind: 'gone', url: '/r/gone.git' })
  })
})

describe("Linear's suggestions and the user's answer", () => {
  test('candidates are the entries with an owner/name on GitHub', () => {
    expect(
      candidates([...REPOS, { url: '/r/local.git', base: 'main', bootstrap_timeout_seconds: 1 }]).map((c) => c.repositoryFullName),
    ).toEqual(['acme/api', 'acme/web', 'acme/mono'])
  })

  test('a github.com URL is a candidate too (owner/name from it), on host github.com', () => {
    const [c] = candidates([{ url: 'git@github.com:acme/x.git', base: 'main', bootstrap_timeout_seconds: 1 }])
    expect(c).toMatchObject({ hostname: 'github.com', repositoryFullName: 'acme/x' })
    expect(candidates([{ url: '/r/local.git', base: 'main', bootstrap_timeout_seconds: 1 }])).toEqual([])
  })

  test('the most confident suggestion is the one judged, wherever Linear lists it', () => {
    const ranked = [
      { repositoryFullName: 'acme/web', confidence: 0.5 },
      { repositoryFullName: 'acme/api', confidence: 0.9 },
      { repositoryFullName: 'acme/mono', confidence: 0.7 },
    ]
    expect(pickSuggestion(ranked, REPOS)?.repo.url).toBe('/r/api.git')
  })

  test('a suggestion is taken from confidence 0.8 up, and only for one of our candidates', () => {
    expect(pickSuggestion([{ repositoryFullName: 'acme/web', confidence: 0.8 }], REPOS)?.repo.url).toBe('/r/web.git')
    expect(pickSuggestion([{ repositoryFullName: 'acme/web', confidence: 0.79 }], REPOS)).toBeUndefined()
    expect(pickSuggestion([{ repositoryFullName: 'other/thing', confidence: 0.99 }], REPOS)).toBeUndefined()
  })

  test('a reply naming a repository (owner/name or URL, in backticks or not) picks it; the newest reply wins; chatter picks nothing', () => {
    expect(pickFromReplies(['`acme/api`'], REPOS)?.url).toBe('/r/api.git')
    expect(pickFromReplies(['acme/api', ' /r/web.git '], REPOS)?.url).toBe('/r/web.git')
    expect(pickFromReplies(['the api one please'], REPOS)).toBeUndefined()
    expect(pickFromReplies(['acme/api', 'thanks!'], REPOS)?.url).toBe('/r/api.git')
  })
})

describe('repos in agents.yaml', () => {
  test('a single repo is one entry without match, and the default', () => {
    const c = parseConfig(agentYaml('    repo: { url: /r/one.git }\n'), 'agents.yaml', env)
    expect(c.agents[0]!.repos).toEqual([{ url: '/r/one.git', base: 'main', bootstrap_timeout_seconds: 300 }])
    expect(c.agents[0]!.repo.url).toBe('/r/one.git')
  })

  test('repos keeps its order; the default is the entry without match', () => {
    const c = parseConfig(
      agentYaml('    repos:\n      - { url: /r/api.git, match: { labels: [backend] } }\n      - { url: /r/mono.git }\n'),
      'agents.yaml',
      env,
    )
    expect(c.agents[0]!.repos.map((r) => r.url)).toEqual(['/r/api.git', '/r/mono.git'])
    expect(c.agents[0]!.repo.url).toBe('/r/mono.git')
  })

  test('both repo and repos, neither, two defaults, an empty or unknown match key are config errors naming the agent', () => {
    const both = failure(() => parseConfig(agentYaml('    repo: { url: /r/a.git }\n    repos: [{ url: /r/b.git }]\n'), 'agents.yaml', env))
    expect(both.code).toBe('config_invalid')
    expect(both.message).toContain('agents[0]: both repo and repos are set (line 2')
    expect(failure(() => parseConfig(agentYaml(''), 'agents.yaml', env)).message).toContain('agents[0]: no repo: set repo')
    const twoDefaults = failure(() => parseConfig(agentYaml('    repos: [{ url: /r/a.git }, { url: /r/b.git }]\n'), 'agents.yaml', env))
    expect(twoDefaults.message).toContain('2 entries have no match (/r/a.git, /r/b.git)')
    const empty = failure(() => parseConfig(agentYaml('    repos: [{ url: /r/a.git, match: {} }]\n'), 'agents.yaml', env))
    expect(empty.message).toContain('agents[0].repos[0].match: name at least one of labels, team, project')
    const unknown = failure(() => parseConfig(agentYaml('    repos: [{ url: /r/a.git, match: { label: [x] } }]\n'), 'agents.yaml', env))
    expect(unknown.message).toContain('unknown key "label"')
    expect(unknown.message).toContain('did you mean "labels"?')
  })
})

describe('the route in words and in a run context', () => {
  const agent = { name: 'a', repos: REPOS }

  test('rules read as the comment lists them; a repository is named by owner/name, else its URL', () => {
    expect(describeRules(agent)).toEqual([
      '- labels backend or API -> acme/api',
      '- team web, project Site -> acme/web',
      '- anything else -> acme/mono',
    ])
    expect(describeMatch({ labels: ['docs'] })).toBe('label docs')
    expect(repoName({ url: 'git@github.com:acme/x.git' })).toBe('acme/x')
    expect(repoName({ url: '/srv/git/x.git' })).toBe('/srv/git/x.git')
  })

  test("an unmatched issue's error names its labels, team and project, and every rule in the fix", () => {
    const e = unmatchedError({ identifier: 'ENG-3', ...issue(['docs'], 'ENG', 'Handbook') }, { name: 'a', repos: REPOS.slice(0, 2) })
    expect(e.code).toBe('repo_unmatched')
    expect(e.message).toBe('ENG-3 matches no repository of agent a (it has labels docs, team ENG, project Handbook)')
    expect(e.fix).toContain('- labels backend or API -> acme/api\n- team web, project Site -> acme/web')
    expect(unmatchedError({ identifier: 'ENG-5', ...issue(['docs', 'ops']) }, agent).message).toContain('labels docs, ops, team ENG')
    expect(unmatchedError({ identifier: 'ENG-4', ...issue([]) }, agent).message).toContain('labels (none), team ENG, project (none)')
  })

  test('a queued record runs in its recorded repository, else where its snapshot routes; an agent with one repo always there', () => {
    expect(repoOfRecord(agent, { repo: '/r/web.git', snapshot: { labels: ['backend'] } })?.url).toBe('/r/web.git')
    expect(repoOfRecord(agent, { snapshot: { labels: ['backend'], team: { key: 'ENG' } } })?.url).toBe('/r/api.git')
    expect(repoOfRecord({ repos: REPOS.slice(0, 2) }, { snapshot: { labels: [] } })).toBeUndefined()
    expect(repoOfRecord({ repos: [REPOS[2]!] }, { repo: '/r/gone.git', snapshot: {} })?.url).toBe('/r/mono.git')
  })

  test('the dry run says where an issue would go: recorded, matched, default, gone or nowhere', () => {
    expect(describeRoute({ labels: ['api'] }, agent)).toBe('in acme/api (matches labels backend or API)')
    expect(describeRoute({ labels: [] }, agent)).toBe('in acme/mono (the default entry)')
    expect(describeRoute({}, agent, '/r/web.git')).toBe('in acme/web (recorded at its first run)')
    expect(describeRoute({}, agent, '/r/gone.git')).toBe('in /r/gone.git, which repos no longer lists (the run would fail)')
    expect(describeRoute({ labels: [] }, { repos: REPOS.slice(0, 2) })).toStartWith('nowhere yet')
  })

  test("a run's context carries the issue's repository; nothing deciding, or a repository gone, is an error naming it", () => {
    const ctx = { agent: { ...agent, repo: REPOS[2]! } } as unknown as AgentContext
    expect(withRepo(ctx, REPOS[2]!)).toBe(ctx)
    expect(routedContext(ctx, { identifier: 'ENG-1', ...issue(['backend']) }).agent.repo.url).toBe('/r/api.git')
    expect(ctx.agent.repo.url).toBe('/r/mono.git') // the agent's own context is not changed
    const none = { agent: { name: 'a', repos: REPOS.slice(0, 2), repo: REPOS[0]! } } as unknown as AgentContext
    expect(failure(() => routedContext(none, { identifier: 'ENG-3', ...issue(['docs']) })).code).toBe('repo_unmatched')
    const gone = failure(() => routedContext(ctx, { identifier: 'ENG-1', ...issue([]) }, '/r/gone.git'))
    expect(gone.code).toBe('config_invalid')
    expect(gone.message).toBe('ENG-1 runs in /r/gone.git, which agent a no longer lists in repos')
    expect(gone.fix).toContain('rose-factory cancel --issue ENG-1')
  })
})
