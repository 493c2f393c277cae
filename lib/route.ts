/**
 * Which of an agent's repositories an issue runs in (agents[].repos). Decided once per issue, at
 * its first claim, and recorded (`record.repo`): a rerun goes to the same repository even if the
 * labels changed since, because its worktree and branch live there. The rules: the first entry
 * whose `match` holds (labels: any one; team: the key; project: the name; case-insensitive; every
 * key given must hold), else the entry without `match`, else nothing decides (api_key: one comment
 * saying which labels/teams route where; agent_session: Linear's suggestions, then the user).
 * Pure: lib/steps/route.ts acts on the decision.
 */
import type { AgentContext } from './context.ts'
import type { AgentConfig, RepoEntry, RepoMatch } from './config.ts'
import { FactoryError } from './errors.ts'
import { parseGitHubUrl } from './github.ts'
import type { TrackerIssue } from './tracker/types.ts'

export type RouteDecision =
  | { kind: 'repo'; repo: RepoEntry; why: string }
  /** No rule decides: the candidates are every entry. */
  | { kind: 'unmatched' }
  /** The recorded repository is no longer in agents.yaml. */
  | { kind: 'gone'; url: string }

type Routable = Pick<TrackerIssue, 'labels' | 'project'> & { team: { key: string } }
/** What routing reads of an issue: a whole issue, or a record's slimmed snapshot (fields may be absent). */
type RouteInput = Partial<Pick<TrackerIssue, 'labels' | 'project'>> & { team?: { key: string } }

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()

/** True when every key of `m` holds for the issue. */
export function matches(m: RepoMatch, issue: Routable): boolean {
  if (m.labels && !m.labels.some((l) => issue.labels.some((x) => same(x, l)))) return false
  if (m.team && !same(m.team, issue.team.key)) return false
  if (m.project && !(issue.project && same(m.project, issue.project))) return false
  return true
}

/** Decide the issue's repository: the recorded one, else the first matching entry, else the default. Pure. */
export function planRoute(input: RouteInput, agent: Pick<AgentConfig, 'repos'>, recorded?: string): RouteDecision {
  const issue: Routable = { labels: input.labels ?? [], team: { key: input.team?.key ?? '' }, project: input.project }
  if (recorded) {
    const repo = agent.repos.find((r) => r.url === recorded)
    return repo ? { kind: 'repo', repo, why: 'recorded at its first run' } : { kind: 'gone', url: recorded }
  }
  const hit = agent.repos.find((r) => r.match && matches(r.match, issue))
  if (hit) return { kind: 'repo', repo: hit, why: `matches ${describeMatch(hit.match!)}` }
  const fallback = agent.repos.find((r) => !r.match)
  return fallback ? { kind: 'repo', repo: fallback, why: 'the default entry' } : { kind: 'unmatched' }
}

/** `labels backend or api, team ENG`: a match rule in words. */
export function describeMatch(m: RepoMatch): string {
  return [
    m.labels && `label${m.labels.length > 1 ? 's' : ''} ${m.labels.join(' or ')}`,
    m.team && `team ${m.team}`,
    m.project && `project ${m.project}`,
  ]
    .filter(Boolean)
    .join(', ')
}

/** The short name of a repository entry (owner/name when known, else its URL). */
export function repoName(repo: Pick<RepoEntry, 'url' | 'github'>): string {
  if (repo.github) return repo.github
  const gh = parseGitHubUrl(repo.url)
  return gh ? `${gh.owner}/${gh.name}` : repo.url
}

/** Each entry as Linear's `CandidateRepository` (hostname + owner/name); entries with no owner/name are left out. */
export function candidates(repos: readonly RepoEntry[]): { repo: RepoEntry; hostname: string; repositoryFullName: string }[] {
  return repos.flatMap((repo) => {
    const gh = repo.github ?? (parseGitHubUrl(repo.url) && repoName(repo))
    // PRs go to GitHub (repo.github, else a github.com URL), so that is the candidates' host.
    return gh ? [{ repo, hostname: 'github.com', repositoryFullName: gh }] : []
  })
}

/** Linear's suggestion when it is confident enough (>= threshold) and names one of our candidates. */
export function pickSuggestion(
  suggestions: readonly { repositoryFullName: string; confidence: number }[],
  repos: readonly RepoEntry[],
  threshold = 0.8,
): { repo: RepoEntry; confidence: number } | undefined {
  const best = [...suggestions].sort((a, b) => b.confidence - a.confidence)[0]
  if (!best || best.confidence < threshold) return undefined
  const hit = candidates(repos).find((c) => same(c.repositoryFullName, best.repositoryFullName))
  return hit && { repo: hit.repo, confidence: best.confidence }
}

/** The repository a user's reply names (an option's value or label, or the URL), newest reply first. */
export function pickFromReplies(replies: readonly string[], repos: readonly RepoEntry[]): RepoEntry | undefined {
  for (const reply of [...replies].reverse()) {
    const text = reply.trim().replace(/^`|`$/g, '')
    const hit = repos.find((r) => same(text, repoName(r)) || same(text, r.url))
    if (hit) return hit
  }
  return undefined
}

/** The routing rules in words, one line each (what the "no repository" message lists). */
export function describeRules(agent: Pick<AgentConfig, 'repos'>): string[] {
  return agent.repos.map((r) => `- ${r.match ? describeMatch(r.match) : 'anything else'} -> ${repoName(r)}`)
}

/** The failure of an issue no rule routes: its labels, team and project, and where each rule sends work. */
export function unmatchedError(
  issue: Routable & Pick<TrackerIssue, 'identifier'>,
  agent: Pick<AgentConfig, 'repos' | 'name'>,
): FactoryError {
  const has = [
    `labels ${issue.labels.length ? issue.labels.join(', ') : '(none)'}`,
    `team ${issue.team.key}`,
    `project ${issue.project ?? '(none)'}`,
  ].join(', ')
  return new FactoryError('repo_unmatched', `${issue.identifier} matches no repository of agent ${agent.name} (it has ${has})`, {
    fix: `add a label, team or project that routes it, then comment on the issue: \n${describeRules(agent).join('\n')}`,
  })
}

/** The repository a queued record will run in (recorded, else routed from its snapshot), or undefined when none decides yet. */
export function repoOfRecord(agent: Pick<AgentConfig, 'repos'>, r: { repo?: string; snapshot: RouteInput }): RepoEntry | undefined {
  if (agent.repos.length === 1) return agent.repos[0]
  const d = planRoute(r.snapshot, agent, r.repo)
  return d.kind === 'repo' ? d.repo : undefined
}

/** Where an issue would run, in words (`start --dry-run`): `in acme/api (matches label backend)`. */
export function describeRoute(issue: RouteInput, agent: Pick<AgentConfig, 'repos'>, recorded?: string): string {
  const d = planRoute(issue, agent, recorded)
  if (d.kind === 'repo') return `in ${repoName(d.repo)} (${d.why})`
  if (d.kind === 'gone') return `in ${d.url}, which repos no longer lists (the run would fail)`
  return 'nowhere yet: no repos rule takes it (the run would ask a human)'
}

/** The context of one issue's run: the agent's `repo` is the issue's repository (worktree, push, PR, bootstrap all read it). */
export function withRepo(ctx: AgentContext, repo: RepoEntry): AgentContext {
  return ctx.agent.repo === repo ? ctx : { ...ctx, agent: { ...ctx.agent, repo } }
}

/**
 * For steps run by hand (worktree, run-engine, report): the context with the issue's repository,
 * the recorded one or the one the rules pick; throws repo_unmatched when nothing decides.
 */
export function routedContext(ctx: AgentContext, issue: Routable & Pick<TrackerIssue, 'identifier'>, recorded?: string): AgentContext {
  const d = planRoute(issue, ctx.agent, recorded)
  if (d.kind === 'repo') return withRepo(ctx, d.repo)
  if (d.kind === 'gone') throw goneError(issue.identifier, ctx.agent.name, d.url)
  throw unmatchedError(issue, ctx.agent)
}

/** The recorded repository is no longer configured: running it elsewhere would lose its branch. */
export function goneError(identifier: string, agent: string, url: string): FactoryError {
  return new FactoryError('config_invalid', `${identifier} runs in ${url}, which agent ${agent} no longer lists in repos`, {
    fix: `add ${url} back to agents[].repos of ${agent}, or cancel the issue (rose-factory cancel --issue ${identifier}) and start it afresh`,
  })
}
