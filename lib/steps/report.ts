/**
 * The report step: commit what the engine left, push the branch, open or update the PR, post ONE
 * summary comment (client-chosen id + marker), move the issue to In Review, record the run.
 * planReport decides (pure); reportRun carries it out. Every action is idempotent, so a re-run
 * after a crash at any line finishes the job without duplicating anything (invariant "idempotent-steps").
 * The engine is hostile (invariant 10): before the first git command, the repository's config,
 * hooks and info/ and the worktree's .git link must be what the factory last wrote
 * (worktree_tampered otherwise: nothing committed, nothing pushed), and the push names the
 * agents.yaml URL, never a remote the repository names.
 */
import type { AgentContext } from '../context.ts'
import { repoName } from '../route.ts'
import { crashPoint } from '../crash.ts'
import { FactoryError } from '../errors.ts'
import { git, type GitCaller, gitOut, isLocalRemote } from '../git.ts'
import { httpTimeoutMs, parseGitHubUrl, type GitHubRepo, upsertPullRequest } from '../github.ts'
import { type PlannedComment, summaryComment } from '../comments.ts'
import { linkPullRequest, speak } from '../voice.ts'
import type { PhaseEvent } from '../phases.ts'
import type { IssueRecord, RunRecord } from '../state.ts'
import type { TrackerIssue, WorkflowState } from '../tracker/types.ts'
import { assertUntampered } from '../tamper.ts'
import { remoteEnv } from './worktree.ts'
import { reviewState } from '../workflow.ts'

export interface ReportInput {
  agent: string
  engine: string
  issue: TrackerIssue
  run: RunRecord
  branch: string
  base: string
  repoUrl: string
  githubRepo?: string
  /** The repository's name when the agent has several (the summary says which one it ran in). */
  repoName?: string
  hasGitHubToken: boolean
  /** Commits on the branch beyond origin/base, after the commit step. */
  commitsAhead: number
  /** Files the commit step commits (or, in a dry run, would commit): `git status` paths. */
  commitFiles?: string[]
  headCommit?: string
  prUrl?: string
}

export interface ReportPlan {
  commitMessage: string
  /** Files committed by this report (a dry run: would be committed); empty when the engine left nothing. */
  commitFiles: string[]
  /** The branch pushed to origin (when `push`). */
  branch: string
  push: boolean
  pr: { repo: GitHubRepo; title: string; body: string } | null
  prSkipped?: string
  comment: PlannedComment
  moveTo: WorkflowState | null
  outcome: 'success' | 'no_changes' | 'failed'
}

/** The GitHub repository for PRs: repo.github, else parsed from a github.com URL. */
export function githubRepoFor(repoUrl: string, explicit?: string): GitHubRepo | null {
  if (explicit) {
    const [owner, name] = explicit.split('/')
    return { owner: owner!, name: name! }
  }
  return parseGitHubUrl(repoUrl)
}

/** The commit message for what run `n` left uncommitted. */
export function commitMessage(issue: TrackerIssue, n: number, engine: string): string {
  return `${issue.identifier}: ${issue.title}\n\nRun #${n} by rose-factory (${engine}).\nLinear: ${issue.url}\n`
}

/** Decide commit message, push, PR, comment and state move for a finished engine run. Pure. */
export function planReport(input: ReportInput): ReportPlan {
  const { issue, run } = input
  const succeeded = run.status === 'success'
  const outcome: ReportPlan['outcome'] = !succeeded ? 'failed' : input.commitsAhead === 0 ? 'no_changes' : 'success'
  const repo = githubRepoFor(input.repoUrl, input.githubRepo)
  let prSkipped: string | undefined
  if (!repo) prSkipped = isLocalRemote(input.repoUrl) ? 'origin is a local path, not GitHub' : 'origin is not a GitHub repository'
  else if (!input.hasGitHubToken) prSkipped = 'no GitHub token (set FACTORY_GITHUB_TOKEN)'
  else if (input.commitsAhead === 0) prSkipped = 'no commits on the branch'
  const review = reviewState(issue.team.states)
  const title = `${issue.identifier}: ${issue.title}`
  const prBody = [
    `Resolves [${issue.identifier}](${issue.url}).`,
    '',
    run.summary?.trim() || '',
    '',
    `Run #${run.n} by rose-factory (${input.engine}).`,
  ].join('\n')
  return {
    commitMessage: commitMessage(issue, run.n, input.engine),
    commitFiles: succeeded ? (input.commitFiles ?? []) : [],
    branch: input.branch,
    push: input.commitsAhead > 0,
    pr: repo && !prSkipped ? { repo, title, body: prBody } : null,
    prSkipped,
    comment: summaryComment({
      agent: input.agent,
      engine: input.engine,
      issueId: issue.id,
      run,
      outcome,
      branch: input.branch,
      commitsAhead: input.commitsAhead,
      headCommit: input.headCommit,
      prUrl: input.prUrl,
      prSkipped,
      repo: input.repoName,
      notMoved: outcome !== 'failed' && !review ? NO_REVIEW_STATE : undefined,
    }),
    moveTo: outcome === 'failed' ? null : (review ?? null),
    outcome,
  }
}

const NO_REVIEW_STATE = 'the team has no review state (add a started state named like "In Review")'

/**
 * What `git add -A` would stage: every changed, deleted or untracked (not ignored) path, as
 * `git status` lists them. Read-only (--no-optional-locks: not even an index refresh is written).
 */
export async function uncommittedFiles(caller: GitCaller, cwd: string): Promise<string[]> {
  const out = (await git(['--no-optional-locks', 'status', '--porcelain=v1', '-z', '--untracked-files=all'], caller, { cwd })).stdout
  const files: string[] = []
  const entries = out.split('\0')
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    if (e.length < 4) continue
    files.push(e.slice(3))
    // A staged rename or copy is followed by its source path: a rename also removes that one.
    if (e[0] === 'R' || e[0] === 'C') {
      i++
      if (e[0] === 'R' && entries[i]) files.push(entries[i]!)
    }
  }
  return files
}

/** Commit everything the engine left uncommitted; returns the new head or null when clean. */
export async function commitAll(caller: GitCaller, cwd: string, message: string): Promise<string | null> {
  if ((await uncommittedFiles(caller, cwd)).length === 0) return null
  await git(['add', '-A'], caller, { cwd })
  await git(['commit', '-q', '--no-verify', '-m', message], caller, { cwd })
  return gitOut(['rev-parse', 'HEAD'], caller, cwd)
}

/** What the report step did: its plan, and (unless a dry run) the event that records it. */
export interface ReportStepResult {
  plan: ReportPlan
  event?: Extract<PhaseEvent, { type: 'reported' }>
}

/** Carry out the report for run `runNumber` of an issue whose engine result is recorded. */
export async function reportRun(
  ctx: AgentContext,
  args: { issue: TrackerIssue; record: IssueRecord; runNumber: number; worktree: string; branch: string },
): Promise<ReportStepResult> {
  const run = args.record.runs.find((r) => r.n === args.runNumber)
  if (!run || run.status === 'running') {
    throw new FactoryError('usage', `${args.issue.identifier} run #${args.runNumber} has no engine result to report`, {
      fix: 'run the run-engine step first',
    })
  }
  const { agent } = ctx
  const token = ctx.env[agent.github.token_env] || ctx.env.GITHUB_TOKEN
  const base = `origin/${agent.repo.base}`
  const draft = (ahead: number, head?: string, prUrl?: string, commitFiles?: string[]) =>
    planReport({
      agent: agent.name,
      engine: agent.engine,
      issue: args.issue,
      run,
      branch: args.branch,
      base: agent.repo.base,
      repoUrl: agent.repo.url,
      githubRepo: agent.repo.github,
      repoName: agent.repos.length > 1 ? repoName(agent.repo) : undefined,
      hasGitHubToken: !!token,
      commitsAhead: ahead,
      commitFiles,
      headCommit: head,
      prUrl,
    })

  // Read directly from the files, before git runs in a repository the engine may have rigged.
  assertUntampered(ctx.home, args.worktree, { identifier: args.issue.identifier, since: run.startedAt, repair: !ctx.dryRun })

  // What the commit step commits: a dry run counts the commit it would make (the worktree, HEAD
  // and the index stay as they are), so its plan is the real one except the new commit's hash.
  const pending = run.status === 'success' ? await uncommittedFiles(ctx, args.worktree) : []
  if (pending.length > 0 && !ctx.dryRun) {
    await commitAll(ctx, args.worktree, commitMessage(args.issue, run.n, agent.engine))
    crashPoint('after_commit')
  }
  const wouldCommit = ctx.dryRun && pending.length > 0 ? 1 : 0
  const ahead = Number(await gitOut(['--no-optional-locks', 'rev-list', '--count', `${base}..HEAD`], ctx, args.worktree)) + wouldCommit
  const head = wouldCommit ? undefined : await gitOut(['rev-parse', 'HEAD'], ctx, args.worktree)
  let plan = draft(ahead, head, args.record.prUrl, pending)
  if (ctx.dryRun) return { plan }

  if (plan.push) {
    // Never a force push: a human's commits on the branch are brought in by the worktree step.
    const pushed = await git(['push', '--porcelain', '--', agent.repo.url, `HEAD:refs/heads/${args.branch}`], ctx, {
      cwd: args.worktree,
      env: remoteEnv(ctx),
      allowFail: true,
    })
    if (pushed.exitCode !== 0 && /\[rejected\]/.test(pushed.stdout)) {
      throw new FactoryError('git_failed', `the push to origin/${args.branch} was rejected: someone pushed to it while the run worked`, {
        fix: "nothing to do: the retry brings their commits into the worktree first (or stops with branch_diverged if they conflict with the factory's)",
      })
    }
    if (pushed.exitCode !== 0) {
      throw new FactoryError(
        'git_failed',
        `git push of ${args.branch} to origin failed (exit ${pushed.exitCode}${pushed.killed ? `, ${pushed.killed}` : ''}): ${ctx.redact(pushed.stderr.trim() || pushed.stdout.trim()).slice(0, 2000)}`,
        { fix: 'see the git message; check the repo URL and credentials' },
      )
    }
    ctx.log.info(`${args.issue.identifier}: pushed ${args.branch} (${ahead} commit${ahead === 1 ? '' : 's'} ahead of ${base})`)
    crashPoint('after_push')
  }
  let prUrl = args.record.prUrl
  if (plan.pr && token) {
    // Redacted right before sending (the summary already is; a title or an older record may not be).
    const pr = await upsertPullRequest(
      { repo: plan.pr.repo, head: args.branch, base: agent.repo.base, title: ctx.redact(plan.pr.title), body: ctx.redact(plan.pr.body) },
      { apiUrl: ctx.githubApi, token, timeoutMs: httpTimeoutMs(ctx.env) },
    )
    prUrl = pr.url
    ctx.log.info(`${args.issue.identifier}: PR ${pr.created ? 'opened' : 'updated'} ${pr.url}`)
    await ctx.tracker.attachUrl({ issueId: args.issue.id, url: pr.url, title: ctx.redact(`PR #${pr.number}: ${plan.pr.title}`) })
    await linkPullRequest(ctx, args.record, pr.url)
    crashPoint('after_pr')
  } else if (plan.prSkipped && plan.push) {
    ctx.log.info(`${args.issue.identifier}: no PR: ${plan.prSkipped}`)
  }
  plan = draft(ahead, head, prUrl, pending)
  const posted = await speak(ctx, args.record, { id: plan.comment.id, body: plan.comment.body, kind: 'summary' })
  const said = args.record.agentSessionId ? 'final response' : 'summary comment'
  ctx.log.info(`${args.issue.identifier}: ${said} ${posted.created ? 'posted' : 'already there'}`)
  crashPoint('after_comment')
  if (plan.moveTo && args.issue.state.id !== plan.moveTo.id) {
    await ctx.tracker.moveIssue(args.issue.id, plan.moveTo.id)
    ctx.log.info(`${args.issue.identifier}: moved to ${plan.moveTo.name}`)
  }
  if (!plan.moveTo && plan.outcome !== 'failed') ctx.log.warn(`${args.issue.identifier}: not moved to review: ${NO_REVIEW_STATE}`)
  return {
    plan,
    event: {
      type: 'reported',
      outcome: plan.outcome,
      commentId: plan.comment.id,
      commit: plan.push ? head : undefined,
      prUrl,
      movedTo: plan.moveTo,
    },
  }
}
