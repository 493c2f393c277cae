/**
 * Bring the worktree in step with its branch on the origin before a run: a reviewer may
 * have pushed to the agent's branch. Fast-forward when the factory has nothing unpushed, rebase
 * its unpushed commits onto the origin's when it has, and stop with `branch_diverged` (naming
 * both commits) when they conflict. Nothing here pushes; the report's push stays a plain
 * fast-forward push, so a human's commits are never overwritten.
 *
 * The engine is hostile (invariant 10): every git command here runs with lib/git.ts's HARDENED
 * list (hooks, fsmonitor, signing and auto-stash off, editors that do nothing) and fetches from
 * the agents.yaml URL. A sync interrupted by a crash is
 * finished or undone by the next run before anything else (an interrupted rebase is aborted).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FactoryError } from './errors.ts'
import { git, type GitCaller } from './git.ts'

export type BranchSyncAction =
  /** The origin has no such branch yet: nothing to bring in, the report's push creates it. */
  | 'create'
  /** The origin has nothing the worktree lacks (the worktree may be ahead: its push is a fast-forward). */
  | 'up_to_date'
  /** The factory has nothing unpushed: move the worktree to the origin's branch. */
  | 'fast_forward'
  /** Both moved: replay the factory's unpushed commits on top of the origin's. */
  | 'rebase'

export interface BranchSyncInput {
  remoteExists: boolean
  /** Commits in HEAD the origin's branch never had (the factory's unpushed work). */
  localAhead: number
  /** Commits in HEAD the origin's branch had once and no longer has (someone rewrote it). */
  dropped: number
  /** Commits on the origin's branch HEAD lacks (someone else pushed). */
  remoteAhead: number
  /** Uncommitted changes (tracked or untracked) left in the worktree, e.g. by a crashed run. */
  dirty: boolean
}

export interface BranchSyncPlan {
  action: BranchSyncAction
  /** Commit the leftover changes first, so the rebase runs on a clean worktree and keeps them. */
  saveLeftovers: boolean
}

/**
 * Decide how to bring the origin's branch in. Pure. Only unpushed commits are replayed: commits
 * someone removed from the origin's branch stay removed. Uncommitted leftovers are only touched
 * when the origin moved (they would be committed by the report anyway).
 */
export function planBranchSync(input: BranchSyncInput): BranchSyncPlan {
  if (!input.remoteExists) return { action: 'create', saveLeftovers: false }
  if (input.remoteAhead === 0 && input.dropped === 0) return { action: 'up_to_date', saveLeftovers: false }
  if (input.dirty) return { action: 'rebase', saveLeftovers: true }
  if (input.localAhead === 0 && input.dropped === 0) return { action: 'fast_forward', saveLeftovers: false }
  // With nothing unpushed this replays nothing: the worktree takes the origin's rewritten branch.
  return { action: 'rebase', saveLeftovers: false }
}

/** Marker (in the worktree's own git dir) of a fast-forward under way: `{ from, to }`. */
const FF_MARKER = 'rose-factory-sync.json'

export interface SyncBranchOptions extends Where {
  /** The worktree. */
  cwd: string
  branch: string
  identifier: string
  /** Fetch the branch from origin first (false when the caller has just fetched everything). */
  fetch: boolean
  /** The agents.yaml repo URL: fetched from by name on the command line, never through a remote the repository names. */
  url: string
  /** Env for the fetch (authentication for the origin). */
  remoteEnv: Record<string, string>
  log: { info(msg: string): void; warn(msg: string): void }
}

export interface SyncBranchResult {
  action: BranchSyncAction
  /** HEAD before and after. */
  from: string
  to: string
  savedLeftovers: boolean
}

/** Where a command runs: the worktree, and whose env and redactor it uses. */
interface Where {
  cwd: string
  caller: GitCaller
}

function g(args: string[], w: Where, opts: { env?: Record<string, string>; allowFail?: boolean } = {}) {
  return git(args, w.caller, { cwd: w.cwd, env: opts.env, allowFail: opts.allowFail })
}

async function out(args: string[], w: Where): Promise<string> {
  return (await g(args, w)).stdout.trim()
}

/** Bring origin/<branch> into the worktree (see the module comment). Throws branch_diverged on a conflict. */
export async function syncBranch(opts: SyncBranchOptions): Promise<SyncBranchResult> {
  const { branch } = opts
  const gitDir = await out(['rev-parse', '--absolute-git-dir'], opts)
  await recoverInterruptedSync(opts, gitDir)

  const tracking = `refs/remotes/origin/${branch}`
  if (opts.fetch) await fetchBranch(opts, tracking)
  const from = await out(['rev-parse', 'HEAD'], opts)
  const remote = (await g(['rev-parse', '--verify', '--quiet', `${tracking}^{commit}`], opts, { allowFail: true })).stdout.trim()
  if (!remote) return { action: 'create', from, to: from, savedLeftovers: false }
  const count = async (range: string) => Number(await out(['rev-list', '--count', range], opts))
  const upstream = await unpushedBase(opts, tracking, remote)
  const localAhead = await count(`${upstream}..HEAD`)
  const plan = planBranchSync({
    remoteExists: true,
    localAhead,
    dropped: (await count(`${remote}..HEAD`)) - localAhead,
    remoteAhead: await count(`HEAD..${remote}`),
    dirty: (await out(['status', '--porcelain'], opts)) !== '',
  })
  const result = (to: string): SyncBranchResult => ({ action: plan.action, from, to, savedLeftovers: plan.saveLeftovers })
  if (plan.action === 'create' || plan.action === 'up_to_date') return result(from)

  if (plan.saveLeftovers) {
    await g(['add', '-A'], opts)
    await g(
      [
        'commit',
        '-q',
        '--no-verify',
        '-m',
        `${opts.identifier}: work left uncommitted by an interrupted run\n\nSaved by rose-factory before bringing in origin/${branch}.\n`,
      ],
      opts,
    )
    opts.log.warn(`${opts.identifier}: committed changes an interrupted run left uncommitted, to replay them onto origin/${branch}`)
  }

  if (plan.action === 'fast_forward') {
    // merge --ff-only updates the files, then the ref: the marker lets the next run finish it.
    const marker = join(gitDir, FF_MARKER)
    writeFileSync(marker, JSON.stringify({ from, to: remote }))
    await g(['merge', '--ff-only', '--no-stat', remote], opts)
    rmSync(marker, { force: true })
    opts.log.info(`${opts.identifier}: fast-forwarded to origin/${branch} at ${await short(opts, remote)} (pushed by someone else)`)
    return result(remote)
  }

  const before = plan.saveLeftovers ? await out(['rev-parse', 'HEAD'], opts) : from
  // Only the unpushed commits (after `upstream`), onto the commit measured above (the tick's
  // fetch may move the tracking ref meanwhile).
  const res = await g(['rebase', '--no-verify', '--no-autostash', '--no-autosquash', '--onto', remote, upstream], opts, {
    allowFail: true,
  })
  if (res.exitCode !== 0) throw await failedRebase(opts, gitDir, { from: before, remote, stderr: res.stderr || res.stdout })
  const to = await out(['rev-parse', 'HEAD'], opts)
  opts.log.info(
    `${opts.identifier}: rebased the factory's unpushed commits onto origin/${branch} at ${await short(opts, remote)} (now ${await short(opts, to)})`,
  )
  return result(to)
}

/**
 * The last commit of HEAD that the origin's branch has had: commits after it were never pushed.
 * The tracking ref's reflog (our fetches and pushes) knows commits someone later removed from the
 * origin (`merge-base --fork-point`); without it this is the merge base.
 */
async function unpushedBase(opts: SyncBranchOptions, tracking: string, remote: string): Promise<string> {
  const { cwd } = opts
  const mergeBase = (await g(['merge-base', remote, 'HEAD'], opts, { allowFail: true })).stdout.trim()
  const fork = (await g(['merge-base', '--fork-point', tracking, 'HEAD'], opts, { allowFail: true })).stdout.trim()
  const forkIsLater =
    fork && (!mergeBase || (await g(['merge-base', '--is-ancestor', fork, mergeBase], opts, { allowFail: true })).exitCode !== 0)
  const base = forkIsLater ? fork : mergeBase
  if (base) return base
  throw new FactoryError(
    'branch_diverged',
    `${opts.branch} diverged: origin/${opts.branch} at ${await short(opts, remote)} shares no history with the worktree's ${await short(opts, 'HEAD')}; nothing was pushed`,
    {
      fix: `a human decides which history the branch keeps: in ${cwd}, \`git reset --hard origin/${opts.branch}\` to take the origin's, or push the factory's branch elsewhere; then comment on the issue to run it again`,
    },
  )
}

async function short(w: Where, sha: string): Promise<string> {
  return out(['rev-parse', '--short', sha], w)
}

async function subject(w: Where, sha: string): Promise<string> {
  return out(['log', '-1', '--format=%s', sha], w)
}

/** Fetch only the branch; a branch the origin does not have drops its stale tracking ref. */
async function fetchBranch(opts: SyncBranchOptions, tracking: string): Promise<void> {
  const res = await g(['fetch', '--no-tags', '--', opts.url, `+refs/heads/${opts.branch}:${tracking}`], opts, {
    env: opts.remoteEnv,
    allowFail: true,
  })
  if (res.exitCode === 0) return
  if (/couldn't find remote ref/i.test(res.stderr)) {
    await g(['update-ref', '-d', tracking], opts)
    return
  }
  throw new FactoryError(
    'git_failed',
    `git fetch of ${opts.branch} from origin failed (exit ${res.exitCode}): ${(opts.caller.redact ?? ((t: string) => t))(res.stderr.trim()).slice(0, 1000)}`,
    { fix: 'see the git message; check the repo URL and credentials (the run is retried)' },
  )
}

/** Undo an interrupted rebase (ours or anyone's), finish an interrupted fast-forward. */
async function recoverInterruptedSync(opts: SyncBranchOptions, gitDir: string): Promise<void> {
  const { cwd } = opts
  if (existsSync(join(gitDir, 'rebase-merge')) || existsSync(join(gitDir, 'rebase-apply'))) {
    opts.log.warn(`${opts.identifier}: a rebase was left half-done in ${cwd} (interrupted run); aborting it`)
    const res = await g(['rebase', '--abort'], opts, { allowFail: true })
    if (res.exitCode !== 0 || existsSync(join(gitDir, 'rebase-merge')) || existsSync(join(gitDir, 'rebase-apply'))) {
      throw new FactoryError('git_failed', `could not abort the rebase left half-done in ${cwd}: ${res.stderr.trim().slice(0, 500)}`, {
        fix: `run \`git -C ${cwd} rebase --abort\` by hand (or remove the worktree to start it again from the origin)`,
      })
    }
  }
  const marker = join(gitDir, FF_MARKER)
  if (!existsSync(marker)) return
  let intent: { from?: string; to?: string } = {}
  try {
    intent = JSON.parse(readFileSync(marker, 'utf8'))
  } catch {}
  const head = await out(['rev-parse', 'HEAD'], opts)
  // The worktree was clean when the fast-forward began, so its files belong to `from` or `to`.
  if (intent.to && (head === intent.from || head === intent.to)) {
    opts.log.warn(`${opts.identifier}: finishing a fast-forward an interrupted run left half-done in ${cwd}`)
    await g(['reset', '-q', '--hard', intent.to], opts)
  }
  rmSync(marker, { force: true })
}

/** A rebase that stopped: abort it (the worktree is back as it was) and explain. */
async function failedRebase(
  opts: SyncBranchOptions,
  gitDir: string,
  at: { from: string; remote: string; stderr: string },
): Promise<FactoryError> {
  const { cwd, branch } = opts
  const files = (await g(['diff', '--name-only', '--diff-filter=U'], opts, { allowFail: true })).stdout.trim().split('\n').filter(Boolean)
  const stopped = (await g(['rev-parse', '--verify', '--quiet', 'REBASE_HEAD'], opts, { allowFail: true })).stdout.trim()
  if (existsSync(join(gitDir, 'rebase-merge')) || existsSync(join(gitDir, 'rebase-apply'))) await g(['rebase', '--abort'], opts)
  if (!files.length) {
    return new FactoryError('git_failed', `git rebase onto origin/${branch} failed in ${cwd}: ${at.stderr.trim().slice(0, 1000)}`, {
      fix: `see the git message; the worktree is back at ${await short(opts, at.from)}`,
    })
  }
  const local = stopped || at.from
  const [localShort, remoteShort] = [await short(opts, local), await short(opts, at.remote)]
  const tip = local !== at.from ? ` (its unpushed work ends at ${await short(opts, at.from)})` : ''
  return new FactoryError(
    'branch_diverged',
    `${branch} diverged: the factory's unpushed commit ${localShort} ("${await subject(opts, local)}")${tip} conflicts with ${remoteShort} ("${await subject(opts, at.remote)}") pushed to origin/${branch} by someone else, in ${files.join(', ')}; nothing was pushed`,
    {
      fix: `a human decides: in ${cwd}, \`git rebase origin/${branch}\`, resolve the conflict and \`git rebase --continue\`, or \`git reset --hard origin/${branch}\` to drop the factory's unpushed commits; then comment on the issue to run it again`,
      details: { branch, local: localShort, remote: remoteShort, files },
    },
  )
}
