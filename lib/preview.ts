/**
 * Read-only previews for the steps' --dry-run: what the real step would find and do, checked
 * without writing anything (no lock file, no clone, no worktree, no log directory).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { AgentContext } from './context.ts'
import { git } from './git.ts'
import { inspectLock, LOCK_STALE_MS, lockHeld } from './lock.ts'
import { safeJoin } from './paths.ts'
import { lockPathFor } from './steps/claim.ts'
import { planWorktree, repoSlug, type WorktreePlan } from './steps/worktree.ts'
import type { TrackerIssue } from './tracker/types.ts'

/** Fail as the real step would (lock_held, naming the owner) when a live process holds the issue. */
export function assertIssueLockFree(ctx: AgentContext, identifier: string): void {
  const { owner, stale } = inspectLock(lockPathFor(ctx, identifier), LOCK_STALE_MS)
  if (owner && !stale) throw lockHeld(identifier, owner)
}

export interface WorktreePreview extends WorktreePlan {
  /** True when the real step creates the worktree; false when it finds it. */
  created: boolean
  /** The base clone the worktree comes from, and whether the real step clones it first. */
  baseRepo: string
  clone: boolean
  /** The bootstrap command the real step runs (it runs once per worktree), or null. */
  bootstrap: string | null
}

/** What `worktree` would do for the issue: path, branch, create or find, clone, bootstrap. */
export async function previewWorktree(ctx: AgentContext, issue: TrackerIssue, repoRoot?: string): Promise<WorktreePreview> {
  const plan = planWorktree(ctx, issue)
  const alive =
    existsSync(plan.path) &&
    (await git(['--no-optional-locks', 'rev-parse', '--is-inside-work-tree'], ctx, { cwd: plan.path, allowFail: true })).stdout.trim() ===
      'true'
  const baseRepo = repoRoot ?? safeJoin(ctx.paths.repos, repoSlug(ctx.agent.repo.url))
  const marker = join(safeJoin(ctx.paths.logs, ctx.agent.name, issue.identifier), 'bootstrap.done')
  const command = ctx.agent.repo.bootstrap
  return {
    ...plan,
    created: !alive,
    baseRepo,
    clone: !repoRoot && !existsSync(join(baseRepo, '.git')),
    bootstrap: command && !existsSync(marker) ? command : null,
  }
}
