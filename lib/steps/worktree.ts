/**
 * The worktree step: one base clone per repo ($FACTORY_HOME/repos/<slug>, fetched once per tick),
 * the issue's worktree ($FACTORY_HOME/worktrees/<agent>/<KEY>) on a sanitized branch from
 * Linear's branchName started from origin/<base> and kept in step with origin/<branch>
 * (lib/branch-sync.ts), and a bootstrap that runs once with its log kept. Every step finds what a
 * previous (crashed) run left and continues.
 *
 * The engine is hostile (invariant 10): before any git command here touches a repository, its
 * config, hooks and info/ are checked against the fingerprint the factory recorded and restored
 * when an engine changed them (lib/tamper.ts), and a worktree whose `.git` link was altered is
 * made again. Network commands name the agents.yaml URL, never a remote the repository names.
 */
import { chmodSync, createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { syncBranch } from '../branch-sync.ts'
import { agentSecretEnvs } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { crashPoint } from '../crash.ts'
import { FactoryError } from '../errors.ts'
import { authEnv, git, isLocalRemote } from '../git.ts'
import { followWorktreeLink, guardRepository, recordFingerprint } from '../tamper.ts'
import { lockSync } from '../lock.ts'
import { assertUnder, safeJoin, sanitizeBranch, sanitizeKey } from '../paths.ts'
import { run } from '../proc.ts'
import { pidAlive } from '../signal.ts'
import { scrubEnv } from '../secrets.ts'
import type { TrackerIssue } from '../tracker/types.ts'

/** A directory name for a repo URL (sanitized, hashed when that changed it). */
export function repoSlug(url: string): string {
  return sanitizeKey(
    url
      .replace(/^[a-z+]+:\/\//i, '')
      .replace(/^git@/, '')
      .replace(/\.git\/?$/, ''),
  )
}

function githubToken(ctx: Pick<AgentContext, 'agent' | 'env'>): string | undefined {
  return ctx.env[ctx.agent.github.token_env] || ctx.env.GITHUB_TOKEN || undefined
}

/** Env for network git commands against the agent's origin URL (token only for https remotes, askpass bound to its host). */
export function remoteEnv(ctx: Pick<AgentContext, 'home' | 'agent' | 'env'>): Record<string, string> {
  const url = ctx.agent.repo.url
  return authEnv(ctx.home, url.startsWith('https://') && !isLocalRemote(url) ? githubToken(ctx) : undefined, ctx.env, url)
}

/** Fetch every branch from the agents.yaml URL (named on the command line) into refs/remotes/origin/*. */
async function fetchAll(ctx: AgentContext, cwd: string): Promise<void> {
  await git(['fetch', '--prune', '--', ctx.agent.repo.url, '+refs/heads/*:refs/remotes/origin/*'], ctx, { cwd, env: remoteEnv(ctx) })
}

/** The git dir of a checkout, found by reading files (a `.git` directory, or a worktree's `.git` link). */
function gitDirOf(root: string): string | null {
  if (existsSync(join(root, '.git', 'config'))) return join(root, '.git')
  if (!existsSync(join(root, '.git'))) return null
  const link = followWorktreeLink(root)
  return 'commonDir' in link ? link.commonDir : null
}

/**
 * The repository worktrees are added from: --repo-root, or the base clone (cloned and optionally
 * fetched). Before any git command in it, its config/hooks/info are checked and restored when an
 * engine changed them (`by` names who found it in the log: an issue, or the driver).
 */
export async function ensureBaseRepo(ctx: AgentContext, opts: { fetch: boolean; repoRoot?: string; by?: string }): Promise<string> {
  const by = opts.by ?? 'driver'
  if (opts.repoRoot) {
    const root = opts.repoRoot
    const gitDir = gitDirOf(root)
    if (!gitDir) {
      throw new FactoryError('usage', `--repo-root ${root} is not a git checkout`, {
        fix: 'pass the path of an existing clone of the agent repo',
      })
    }
    guardRepository(ctx, gitDir, by)
    if (opts.fetch) await fetchAll(ctx, root)
    return root
  }
  const path = safeJoin(ctx.paths.repos, repoSlug(ctx.agent.repo.url))
  removeDeadClones(ctx, path)
  if (!existsSync(join(path, '.git'))) {
    // Clone into a temp dir and rename: a crash mid-clone leaves no half repo at `path`.
    const tmp = `${path}.cloning-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    ctx.log.info(`cloning ${ctx.agent.repo.url} into ${path}`)
    await git(['clone', '--no-checkout', '--origin', 'origin', '--', ctx.agent.repo.url, tmp], ctx, { env: remoteEnv(ctx) })
    if (existsSync(join(path, '.git'))) {
      // Another driver cloned it meanwhile and may already use it: keep theirs (and their fingerprint).
      rmSync(tmp, { recursive: true, force: true })
    } else {
      rmSync(path, { recursive: true, force: true })
      renameSync(tmp, path)
      // No engine has seen it yet: this is the known-good config, hooks and info/.
      recordFingerprint(ctx.home, join(path, '.git'))
    }
    return path
  }
  guardRepository(ctx, join(path, '.git'), by)
  if (opts.fetch) await fetchAll(ctx, path)
  return path
}

/** Remove `<path>.cloning-<pid>` directories whose cloning process is gone (killed mid-clone); a live one's is left alone. */
function removeDeadClones(ctx: AgentContext, path: string): void {
  const prefix = `${basename(path)}.cloning-`
  let names: string[]
  try {
    names = readdirSync(dirname(path))
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length))
    if (!Number.isInteger(pid) || pid <= 0 || pidAlive(pid)) continue
    ctx.log.info(`removing ${join(dirname(path), name)}: left by a clone whose process (pid ${pid}) is gone`)
    rmSync(join(dirname(path), name), { recursive: true, force: true })
  }
}

export interface WorktreePlan {
  path: string
  branch: string
  /** Where the branch starts when it does not exist yet. */
  startPoint: string
}

/** Where the issue's worktree goes and on which branch. Pure apart from the root check. */
export function planWorktree(ctx: AgentContext, issue: TrackerIssue): WorktreePlan {
  return {
    path: safeJoin(ctx.paths.worktrees, ctx.agent.name, issue.identifier),
    branch: sanitizeBranch(issue.branchName, issue.identifier, ctx.agent.repo.base),
    startPoint: `origin/${ctx.agent.repo.base}`,
  }
}

async function refExists(ctx: AgentContext, repo: string, ref: string): Promise<boolean> {
  return (await git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], ctx, { cwd: repo, allowFail: true })).exitCode === 0
}

/**
 * Create the worktree (or find the existing one), bring in what others pushed to the issue's
 * branch on the origin (fast-forward, or rebase the factory's unpushed commits; a conflict is
 * branch_diverged), and run the bootstrap once.
 */
export async function ensureWorktree(
  ctx: AgentContext,
  issue: TrackerIssue,
  opts: { fetch: boolean; repoRoot?: string },
): Promise<WorktreePlan & { created: boolean }> {
  const plan = planWorktree(ctx, issue)
  const repo = await ensureBaseRepo(ctx, { ...opts, by: issue.identifier })
  await git(['check-ref-format', '--branch', plan.branch], ctx, { cwd: repo }).catch(() => {
    throw new FactoryError(
      'workspace_invalid_key',
      `branch name "${plan.branch}" (from Linear's "${issue.branchName}") is not valid for git`,
      {
        fix: "rename the issue's branch in Linear, or report the name",
      },
    )
  })
  let created = false
  // A worktree whose .git link an engine altered (pointing git at a directory it controls) is made again.
  const link = existsSync(plan.path) ? followWorktreeLink(plan.path) : null
  if (link && 'problems' in link) {
    ctx.log.warn(
      `${issue.identifier}: the worktree's git link was changed (${link.problems.map((p) => p.file).join(', ')}); making the worktree again`,
    )
  }
  const alive =
    !!link &&
    'commonDir' in link &&
    (await git(['rev-parse', '--is-inside-work-tree'], ctx, { cwd: plan.path, allowFail: true })).stdout.trim() === 'true'
  if (!alive) {
    // git's worktree bookkeeping is not safe against concurrent `worktree add/prune` in one
    // repository (seen: "failed to read .git/worktrees/X/commondir"): serialize them per repo.
    created = await withRepoLock(ctx, repo, () => addWorktree(ctx, repo, plan))
    ctx.log.info(`${issue.identifier}: worktree ${plan.path} on ${plan.branch}`)
  }
  assertUnder(ctx.paths.worktrees, plan.path)
  // A reviewer may have pushed to the branch since the last run. The base clone's fetch (this
  // call's or the tick's) may predate that push, so the issue's branch is fetched again unless
  // everything was fetched just now.
  await syncBranch({
    cwd: plan.path,
    caller: ctx,
    branch: plan.branch,
    identifier: issue.identifier,
    fetch: !opts.fetch,
    url: ctx.agent.repo.url,
    remoteEnv: remoteEnv(ctx),
    log: ctx.log,
  })
  await bootstrap(ctx, issue, plan.path)
  return { ...plan, created }
}

/** Run `fn` holding the repository's worktree lock (git's worktree bookkeeping is not concurrency-safe). */
export async function withRepoLock<T>(ctx: AgentContext, repo: string, fn: () => Promise<T>): Promise<T> {
  const guard = lockSync(join(ctx.paths.locks, `repo-${basename(repo)}.lock`), { staleMs: 120_000, waitMs: 120_000 })
  if (!guard)
    throw new FactoryError('git_failed', `timed out after 120 s waiting for the worktree lock of ${repo}`, {
      fix: 'another run holds it for too long; it is retried',
    })
  try {
    return await fn()
  } finally {
    guard.release()
  }
}

/** Add the worktree on its branch (local, else remote, else new from the base); caller holds the repo lock. */
async function addWorktree(ctx: AgentContext, repo: string, plan: WorktreePlan): Promise<boolean> {
  // A directory left by a crash mid-add is not a worktree: prune git's record and start again.
  rmSync(plan.path, { recursive: true, force: true })
  await git(['worktree', 'prune'], ctx, { cwd: repo })
  mkdirSync(join(plan.path, '..'), { recursive: true })
  if (await refExists(ctx, repo, `refs/heads/${plan.branch}`)) {
    await git(['worktree', 'add', '--', plan.path, plan.branch], ctx, { cwd: repo })
  } else if (await refExists(ctx, repo, `refs/remotes/origin/${plan.branch}`)) {
    // --no-track: no branch.* section written to the shared config (it holds only what the fingerprint has).
    await git(['worktree', 'add', '--no-track', '-b', plan.branch, '--', plan.path, `origin/${plan.branch}`], ctx, { cwd: repo })
  } else {
    if (!(await refExists(ctx, repo, plan.startPoint))) {
      throw new FactoryError('git_failed', `${plan.startPoint} does not exist in ${ctx.agent.repo.url}`, {
        fix: `set repo.base of agent ${ctx.agent.name} to an existing branch`,
      })
    }
    await git(['worktree', 'add', '--no-track', '-b', plan.branch, '--', plan.path, plan.startPoint], ctx, { cwd: repo })
  }
  return true
}

/** Per-issue log directory; it and the logs directories above it are 0700 (logs hold private issue text). */
export function issueLogDir(ctx: AgentContext, identifier: string): string {
  const dir = safeJoin(ctx.paths.logs, ctx.agent.name, identifier)
  for (const d of [ctx.paths.logs, dirname(dir), dir]) {
    mkdirSync(d, { recursive: true, mode: 0o700 })
    chmodSync(d, 0o700)
  }
  return dir
}

/** Run the agent's bootstrap command once per worktree (a marker beside its log records success). */
export async function bootstrap(ctx: AgentContext, issue: TrackerIssue, cwd: string): Promise<void> {
  const command = ctx.agent.repo.bootstrap
  if (!command) return
  const dir = issueLogDir(ctx, issue.identifier)
  const marker = join(dir, 'bootstrap.done')
  if (existsSync(marker)) return
  const logPath = join(dir, 'bootstrap.log')
  const out = createWriteStream(logPath, { mode: 0o600 })
  ctx.log.info(`${issue.identifier}: bootstrap \`${command}\` (log: ${logPath})`)
  // The command is the user's own config, never issue text, so a shell is fine here.
  const res = await run(['sh', '-c', command], {
    cwd,
    env: scrubEnv(ctx.env, agentSecretEnvs(ctx.agent)),
    timeoutMs: ctx.agent.repo.bootstrap_timeout_seconds * 1000,
    onLine: (l) => {
      out.write(`${l}\n`)
      crashPoint('during_bootstrap')
    },
    onErrLine: (l) => out.write(`[stderr] ${l}\n`),
  })
  await new Promise((r) => out.end(r))
  if (res.exitCode !== 0) {
    throw new FactoryError(
      'bootstrap_failed',
      `bootstrap \`${command}\` ${res.killed ? `was killed (${res.killed})` : `exited ${res.exitCode}`} in ${cwd}`,
      {
        fix: `read ${logPath}; fix repo.bootstrap of agent ${ctx.agent.name} (it reruns on the next attempt)`,
      },
    )
  }
  writeFileSync(marker, new Date().toISOString())
}
