import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { planBranchSync } from '../lib/branch-sync.ts'
import { parseConfig } from '../lib/config.ts'
import { agentContext, type AgentContext } from '../lib/context.ts'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { readState } from '../lib/state.ts'
import type { TrackerIssue, Tracker } from '../lib/tracker/types.ts'
import { ensureWorktree, planWorktree } from '../lib/steps/worktree.ts'
import { type Fixture, fixture, gitSync, makeOrigin, tempDir } from './helpers.ts'

const dirs: string[] = []
let fx: Fixture | undefined
afterEach(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  await fx?.cleanup()
  fx = undefined
})

const noTracker = new Proxy({}, { get: () => () => Promise.reject(new Error('no tracker in this test')) }) as Tracker

function setup(extraRepo = ''): { ctx: AgentContext; dir: string; origin: string } {
  const dir = tempDir()
  dirs.push(dir)
  const origin = makeOrigin(dir)
  const env = { FACTORY_HOME: join(dir, 'home'), KEY: 'k' }
  const config = parseConfig(
    `agents:\n  - name: a1\n    engine: console\n    tracker: { mode: api_key, token_env: KEY }\n    repo: { url: ${origin}, base: main${extraRepo} }\n`,
    'test.yaml',
    env,
  )
  return { ctx: agentContext({ config, configPath: 'test.yaml', agent: config.agents[0]!, env, tracker: noTracker }), dir, origin }
}

function issue(identifier: string, branchName: string): TrackerIssue {
  return {
    id: `id-${identifier}`,
    identifier,
    title: 't',
    description: '',
    url: 'u',
    branchName,
    priority: 0,
    createdAt: '',
    updatedAt: '',
    state: { id: 's', name: 'Todo', type: 'unstarted' },
    team: { id: 't', key: 'ENG', states: [] },
    labels: [],
    assigneeId: null,
    delegateId: null,
    comments: [],
  }
}

describe('worktree', () => {
  test('creates the worktree under FACTORY_HOME on the sanitized Linear branch, started from origin/main', async () => {
    const { ctx, origin } = setup()
    const wt = await ensureWorktree(ctx, issue('ENG-7', 'alice/eng-7-add-login'), { fetch: true })
    expect(wt.path).toBe(join(realpathSync(ctx.home), 'worktrees', 'a1', 'ENG-7'))
    expect(wt.branch).toBe('alice/eng-7-add-login')
    expect(gitSync(['rev-parse', '--abbrev-ref', 'HEAD'], wt.path)).toBe('alice/eng-7-add-login')
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(gitSync(['rev-parse', 'main'], origin))
    expect(existsSync(join(ctx.home, 'repos'))).toBe(true)
  })

  test('is idempotent: a second call finds the same worktree and keeps its uncommitted work', async () => {
    const { ctx } = setup()
    const first = await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: true })
    writeFileSync(join(first.path, 'work.txt'), 'in progress')
    const second = await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: true })
    expect(second.created).toBe(false)
    expect(readFileSync(join(second.path, 'work.txt'), 'utf8')).toBe('in progress')
  })

  test('a directory left half-made by a crash is replaced by a real worktree', async () => {
    const { ctx } = setup()
    const plan = planWorktree(ctx, issue('ENG-8', 'b8'))
    mkdirSync(plan.path, { recursive: true })
    writeFileSync(join(plan.path, 'junk'), 'x')
    const wt = await ensureWorktree(ctx, issue('ENG-8', 'b8'), { fetch: false })
    expect(wt.created).toBe(true)
    expect(gitSync(['rev-parse', '--is-inside-work-tree'], wt.path)).toBe('true')
  })

  test('hostile identifiers and branch names stay under the root and give valid branches', async () => {
    const { ctx } = setup()
    mkdirSync(join(ctx.home, 'worktrees'), { recursive: true })
    const root = realpathSync(join(ctx.home, 'worktrees'))
    const hostile: [string, string][] = [
      ['../../etc', '../../../etc/passwd'],
      ['..', '--upload-pack=touch /tmp/pwned'],
      ['ENG-1/../../x', 'feat/$(rm -rf ~)`id`'],
      ['a b\nc', 'x..y/.lock/@{'],
    ]
    const paths = new Set<string>()
    for (const [id, branch] of hostile) {
      const wt = await ensureWorktree(ctx, issue(id, branch), { fetch: false })
      expect(realpathSync(wt.path).startsWith(`${root}/`)).toBe(true)
      expect(realpathSync(wt.path).split('/').length).toBe(root.split('/').length + 2)
      gitSync(['check-ref-format', '--branch', wt.branch])
      expect(wt.branch.startsWith('-')).toBe(false)
      paths.add(wt.path)
    }
    expect(paths.size).toBe(hostile.length)
    expect(existsSync('/tmp/pwned')).toBe(false)
  })

  test('a symlink planted where the worktree goes, pointing outside the root, is refused', async () => {
    const { ctx, dir } = setup()
    const outside = join(dir, 'outside')
    mkdirSync(outside)
    mkdirSync(join(ctx.home, 'worktrees'), { recursive: true })
    symlinkSync(outside, join(ctx.home, 'worktrees', 'a1'))
    await expect(ensureWorktree(ctx, issue('ENG-9', 'b9'), { fetch: false })).rejects.toMatchObject({ code: 'workspace_outside_root' })
  })

  test('bootstrap runs once, keeps its log, and a failing bootstrap names the log and the fix', async () => {
    const { ctx } = setup(', bootstrap: "echo boot >> boot-count.txt; echo hello-from-bootstrap"')
    const wt = await ensureWorktree(ctx, issue('ENG-10', 'b10'), { fetch: false })
    await ensureWorktree(ctx, issue('ENG-10', 'b10'), { fetch: false })
    expect(readFileSync(join(wt.path, 'boot-count.txt'), 'utf8')).toBe('boot\n')
    expect(readFileSync(join(ctx.home, 'logs', 'a1', 'ENG-10', 'bootstrap.log'), 'utf8')).toContain('hello-from-bootstrap')

    const bad = setup(', bootstrap: "echo broken >&2; exit 3"')
    const err = await ensureWorktree(bad.ctx, issue('ENG-11', 'b11'), { fetch: false }).catch((e) => e)
    expect(err.code).toBe('bootstrap_failed')
    expect(err.message).toContain('exited 3')
    expect(err.fix).toContain('bootstrap.log')
    expect(readFileSync(join(bad.ctx.home, 'logs', 'a1', 'ENG-11', 'bootstrap.log'), 'utf8')).toContain('[stderr] broken')
  })

  test('a base branch that does not exist is a clear error naming it', async () => {
    const { ctx } = setup()
    ctx.agent.repo.base = 'trunk'
    const err = await ensureWorktree(ctx, issue('ENG-12', 'b12'), { fetch: false }).catch((e) => e)
    expect(err.code).toBe('git_failed')
    expect(err.message).toContain('origin/trunk does not exist')
  })

  test('--repo-root adds the worktree from an existing checkout instead of the base clone', async () => {
    const { ctx, dir, origin } = setup()
    const checkout = join(dir, 'checkout')
    gitSync(['clone', '-q', origin, checkout])
    const wt = await ensureWorktree(ctx, issue('ENG-13', 'b13'), { fetch: true, repoRoot: checkout })
    expect(gitSync(['worktree', 'list'], checkout)).toContain(wt.path)
    expect(existsSync(join(ctx.home, 'repos'))).toBe(false)
  })

  test('fetches come from the agents.yaml URL, never from the remote the checkout names', async () => {
    const { ctx, dir, origin } = setup()
    const checkout = join(dir, 'checkout')
    gitSync(['clone', '-q', origin, checkout])
    // The checkout's origin points at a decoy; the agent's URL has a branch the decoy lacks.
    const decoy = join(dir, 'decoy.git')
    gitSync(['clone', '-q', '--bare', origin, decoy])
    gitSync(['remote', 'set-url', 'origin', decoy], checkout)
    const pushed = pushAsHuman(origin, dir, 'main', { 'ONLY_ON_ORIGIN.md': 'x\n' }, 'only on the real origin')
    const wt = await ensureWorktree(ctx, issue('ENG-14', 'b14'), { fetch: true, repoRoot: checkout })
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(pushed)
    expect(gitSync(['remote', 'get-url', 'origin'], checkout)).toBe(decoy)
    // The issue's own branch, fetched by the sync step (no tick fetch before it), also comes from the URL.
    gitSync(['push', '-q', origin, 'HEAD:refs/heads/b14'], wt.path)
    const reviewer = pushAsHuman(origin, dir, 'b14', { 'REVIEW.md': 'x\n' }, 'reviewer fixup')
    await ensureWorktree(ctx, issue('ENG-14', 'b14'), { fetch: false, repoRoot: checkout })
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(reviewer)
  })

  test('a worktree whose .git link an engine pointed at a git dir of its own is made again from the base clone', async () => {
    const { ctx, dir } = setup()
    const first = await ensureWorktree(ctx, issue('ENG-15', 'b15'), { fetch: true })
    // The engine's own repository, with a hook, and the worktree's link pointing at it.
    const evil = join(dir, 'evil')
    gitSync(['init', '-q', evil])
    writeFileSync(join(evil, '.git', 'hooks', 'post-checkout'), `#!/bin/sh\ntouch ${dir}/ran\n`, { mode: 0o755 })
    writeFileSync(join(first.path, '.git'), `gitdir: ${join(evil, '.git')}\n`)
    const warnings: string[] = []
    const again = await ensureWorktree(
      { ...ctx, log: { ...ctx.log, info() {}, warn: (m: string) => warnings.push(m) } as unknown as AgentContext['log'] },
      issue('ENG-15', 'b15'),
      {
        fetch: true,
      },
    )
    expect(again.created).toBe(true)
    expect(warnings.join('\n')).toContain("ENG-15: the worktree's git link was changed")
    expect(realpathSync(gitSync(['rev-parse', '--git-common-dir'], again.path).replace(/^\.git$/, join(again.path, '.git')))).toContain(
      '/repos/',
    )
    expect(existsSync(join(dir, 'ran'))).toBe(false)
  })
})

let humans = 0
/** A human clones the origin, commits `files` on `branch` and pushes (a plain, non-force push). Returns the commit. */
function pushAsHuman(origin: string, dir: string, branch: string, files: Record<string, string>, message: string): string {
  const work = join(dir, `human-${++humans}`)
  gitSync(['clone', '-q', '--branch', branch, origin, work])
  for (const [name, text] of Object.entries(files)) writeFileSync(join(work, name), text)
  gitSync(['add', '-A'], work)
  gitSync(['commit', '-q', '-m', message], work)
  gitSync(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`], work)
  return gitSync(['rev-parse', 'HEAD'], work)
}

const isAncestor = (repo: string, a: string, b: string) => {
  try {
    gitSync(['merge-base', '--is-ancestor', a, b], repo)
    return true
  } catch {
    return false
  }
}

describe('planBranchSync', () => {
  const plan = (remoteExists: boolean, localAhead: number, remoteAhead: number, dirty = false, dropped = 0) =>
    planBranchSync({ remoteExists, localAhead, remoteAhead, dirty, dropped })

  test('a branch the origin does not have yet is left for the push to create, whatever the worktree holds', () => {
    expect(plan(false, 0, 0)).toEqual({ action: 'create', saveLeftovers: false })
    expect(plan(false, 3, 0, true)).toEqual({ action: 'create', saveLeftovers: false })
  })

  test('nothing new on the origin means nothing to do, even with unpushed commits or uncommitted changes', () => {
    expect(plan(true, 0, 0)).toEqual({ action: 'up_to_date', saveLeftovers: false })
    expect(plan(true, 2, 0, true)).toEqual({ action: 'up_to_date', saveLeftovers: false })
  })

  test('new commits on the origin are fast-forwarded to when the factory has nothing unpushed, rebased onto otherwise', () => {
    expect(plan(true, 0, 1)).toEqual({ action: 'fast_forward', saveLeftovers: false })
    expect(plan(true, 1, 1)).toEqual({ action: 'rebase', saveLeftovers: false })
  })

  test('commits someone removed from the origin are not brought back: only unpushed ones are replayed, if any', () => {
    // The branch was rewound on the origin (remoteAhead 0) or rewritten (remoteAhead > 0).
    expect(plan(true, 0, 0, false, 1)).toEqual({ action: 'rebase', saveLeftovers: false })
    expect(plan(true, 0, 2, false, 1)).toEqual({ action: 'rebase', saveLeftovers: false })
    expect(plan(true, 1, 0, false, 2)).toEqual({ action: 'rebase', saveLeftovers: false })
  })

  test('uncommitted leftovers are committed first when the origin moved, so they are rebased rather than lost', () => {
    expect(plan(true, 0, 1, true)).toEqual({ action: 'rebase', saveLeftovers: true })
    expect(plan(true, 2, 4, true)).toEqual({ action: 'rebase', saveLeftovers: true })
  })
})

describe('worktree: bringing in what others pushed to the branch', () => {
  /** A worktree whose branch b7 is on the origin with one factory commit, and a human commit on top of it there. */
  async function pushedBranch(humanFiles: Record<string, string> = { 'HUMAN.md': 'from a reviewer\n' }) {
    const s = setup()
    const wt = await ensureWorktree(s.ctx, issue('ENG-7', 'b7'), { fetch: true })
    writeFileSync(join(wt.path, 'FACTORY.md'), 'run 1\n')
    gitSync(['add', '-A'], wt.path)
    gitSync(['commit', '-q', '-m', 'factory run 1'], wt.path)
    gitSync(['push', '-q', s.origin, 'HEAD:refs/heads/b7'], wt.path)
    const factory1 = gitSync(['rev-parse', 'HEAD'], wt.path)
    const human = pushAsHuman(s.origin, s.dir, 'b7', humanFiles, 'reviewer fixup')
    return { ...s, wt, factory1, human }
  }

  test('with nothing unpushed the worktree fast-forwards to the origin, even when the caller fetched earlier (--no-fetch)', async () => {
    const { ctx, wt, human } = await pushedBranch()
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(human)
    expect(gitSync(['symbolic-ref', 'HEAD'], wt.path)).toBe('refs/heads/b7')
    expect(readFileSync(join(wt.path, 'HUMAN.md'), 'utf8')).toBe('from a reviewer\n')
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(human)
  })

  test("uncommitted changes a crashed run left are committed and replayed onto the origin's commits, not lost", async () => {
    const { ctx, wt, human } = await pushedBranch()
    writeFileSync(join(wt.path, 'FACTORY.md'), 'run 2, interrupted\n')
    writeFileSync(join(wt.path, 'NEW.md'), 'new file\n')
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: true })
    expect(gitSync(['status', '--porcelain'], wt.path)).toBe('')
    expect(gitSync(['rev-parse', 'HEAD^'], wt.path)).toBe(human)
    expect(gitSync(['log', '-1', '--format=%s'], wt.path)).toBe('ENG-7: work left uncommitted by an interrupted run')
    expect(readFileSync(join(wt.path, 'FACTORY.md'), 'utf8')).toBe('run 2, interrupted\n')
    expect(readFileSync(join(wt.path, 'NEW.md'), 'utf8')).toBe('new file\n')
    expect(readFileSync(join(wt.path, 'HUMAN.md'), 'utf8')).toBe('from a reviewer\n')
  })

  test('a rebase left half-done by a crash is aborted by the next run, which then rebases cleanly', async () => {
    const { ctx, wt, human, factory1 } = await pushedBranch()
    writeFileSync(join(wt.path, 'FACTORY.md'), 'run 2\n')
    gitSync(['commit', '-q', '-am', 'factory run 2'], wt.path)
    const factory2 = gitSync(['rev-parse', 'HEAD'], wt.path)
    // Stop a rebase half-way, as a kill -9 in the middle of one would leave it.
    gitSync(['fetch', '-q', 'origin'], wt.path)
    gitSync(['-c', "sequence.editor=sed -i -e 's/^pick/edit/'", 'rebase', '-i', 'origin/b7'], wt.path)
    const gitDir = gitSync(['rev-parse', '--absolute-git-dir'], wt.path)
    expect(existsSync(join(gitDir, 'rebase-merge'))).toBe(true)

    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(existsSync(join(gitDir, 'rebase-merge'))).toBe(false)
    expect(gitSync(['symbolic-ref', 'HEAD'], wt.path)).toBe('refs/heads/b7')
    expect(gitSync(['log', '--format=%s', `${factory1}..HEAD`], wt.path).split('\n')).toEqual(['factory run 2', 'reviewer fixup'])
    expect(gitSync(['rev-parse', 'HEAD^'], wt.path)).toBe(human)
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).not.toBe(factory2)
  })

  test('a fast-forward cut short by a crash is finished, not mistaken for leftovers to commit', async () => {
    const { ctx, wt, human, factory1 } = await pushedBranch()
    gitSync(['fetch', '-q', 'origin'], wt.path)
    // The files were half updated, the branch not moved yet: what a kill -9 inside `git merge --ff-only` leaves.
    const gitDir = gitSync(['rev-parse', '--absolute-git-dir'], wt.path)
    writeFileSync(join(gitDir, 'rose-factory-sync.json'), JSON.stringify({ from: factory1, to: human }))
    writeFileSync(join(wt.path, 'HUMAN.md'), 'from a reviewer\n')
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(human)
    expect(gitSync(['status', '--porcelain'], wt.path)).toBe('')
    expect(existsSync(join(gitDir, 'rose-factory-sync.json'))).toBe(false)
  })

  test('a branch someone rewound on the origin stays rewound: the dropped commit is not replayed, the unpushed one is', async () => {
    const { ctx, wt, factory1, dir, origin } = await pushedBranch()
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: true })
    gitSync(['push', '-q', origin, 'HEAD:refs/heads/b7'], wt.path)
    const humanTip = gitSync(['rev-parse', 'HEAD'], wt.path)
    writeFileSync(join(wt.path, 'UNPUSHED.md'), 'factory, not pushed yet\n')
    gitSync(['add', '-A'], wt.path)
    gitSync(['commit', '-q', '-m', 'factory run 2'], wt.path)
    // A human force-pushes the branch back to before the factory's run 1 (and their own commit).
    const main = gitSync(['rev-parse', 'main'], origin)
    const human = join(dir, 'rewinder')
    gitSync(['clone', '-q', origin, human])
    gitSync(['push', '-q', '-f', 'origin', `${main}:refs/heads/b7`], human)

    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(gitSync(['rev-parse', 'HEAD^'], wt.path)).toBe(main)
    expect(gitSync(['log', '-1', '--format=%s'], wt.path)).toBe('factory run 2')
    expect(isAncestor(wt.path, factory1, 'HEAD')).toBe(false)
    expect(isAncestor(wt.path, humanTip, 'HEAD')).toBe(false)
    expect(existsSync(join(wt.path, 'FACTORY.md'))).toBe(false)
  })

  test('hooks planted in the repository never run while the branch is fetched, committed and rebased', async () => {
    const { ctx, wt, dir, human } = await pushedBranch()
    writeFileSync(join(wt.path, 'FACTORY.md'), 'uncommitted\n')
    // What a hostile engine could leave: a hooks directory in the repo config, and hooks in .git/hooks.
    const hooks = join(dir, 'evil-hooks')
    mkdirSync(hooks)
    const common = gitSync(['rev-parse', '--path-format=absolute', '--git-common-dir'], wt.path)
    const names = ['pre-rebase', 'post-rewrite', 'post-checkout', 'post-merge', 'pre-commit', 'commit-msg', 'reference-transaction']
    for (const hookDir of [hooks, join(common, 'hooks')]) {
      mkdirSync(hookDir, { recursive: true })
      for (const name of names) {
        writeFileSync(join(hookDir, name), `#!/bin/sh\ntouch "${dir}/ran-${name}"\n`)
        chmodSync(join(hookDir, name), 0o755)
      }
    }
    gitSync(['config', 'core.hooksPath', hooks], wt.path)
    await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false })
    expect(gitSync(['rev-parse', 'HEAD^'], wt.path)).toBe(human)
    expect(readdirSync(dir).filter((f) => f.startsWith('ran-'))).toEqual([])
  })

  test('a conflict with what the human pushed is branch_diverged naming both commits, and leaves the worktree as it was', async () => {
    const { ctx, wt, human } = await pushedBranch({ 'FACTORY.md': 'the reviewer rewrote this\n' })
    writeFileSync(join(wt.path, 'FACTORY.md'), 'run 2\n')
    gitSync(['commit', '-q', '-am', 'factory run 2'], wt.path)
    const factory2 = gitSync(['rev-parse', 'HEAD'], wt.path)
    const err = await ensureWorktree(ctx, issue('ENG-7', 'b7'), { fetch: false }).catch((e) => e)
    expect(err.code).toBe('branch_diverged')
    expect(err.message).toContain(factory2.slice(0, 7))
    expect(err.message).toContain(human.slice(0, 7))
    expect(err.message).toContain('FACTORY.md')
    expect(err.fix).toContain('git rebase origin/b7')
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(factory2)
    expect(gitSync(['symbolic-ref', 'HEAD'], wt.path)).toBe('refs/heads/b7')
    expect(gitSync(['status', '--porcelain'], wt.path)).toBe('')
  })
})

describe('reruns after a human pushed to the branch (the whole pipeline)', () => {
  const ONE = [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test', priority: 2 }]
  const record = (f: Fixture) => Object.values(readState(join(f.home, 'state.json')).agents.tester?.issues ?? {})[0]!
  const once = (f: Fixture, env: Record<string, string> = {}) => f.script('start', ['--once', '--config', f.configPath], env)
  const crashAfterCommit = { ROSE_CRASH_AT: 'after_commit', ROSE_CRASH_KILL_PARENT: '1' }
  const originHead = (f: Fixture, branch: string) => gitSync(['rev-parse', `refs/heads/${branch}`], f.origin)

  /** Run 1 done and pushed; returns the branch and its head on the origin. */
  async function firstRun() {
    fx = await fixture({ issues: ONE })
    const first = await once(fx)
    expect(first.code, first.stderr).toBe(0)
    const branch = record(fx).branch!
    return { f: fx, branch, factory1: originHead(fx, branch), wt: record(fx).worktree! }
  }

  test("a reviewer's pushed fixup is where the rerun starts: In Review, and the origin has their commit and the factory's on top", async () => {
    const { f, branch, factory1, wt } = await firstRun()
    const human = pushAsHuman(f.origin, f.dir, branch, { 'README.md': '# sample app\n\nFixed by the reviewer.\n' }, 'reviewer fixup')
    f.comment('ENG-1', 'riley@rose.test', 'I pushed a fixup to the README; keep it.')
    const rerun = await once(f)
    expect(rerun.code, rerun.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    const head = originHead(f, branch)
    expect(gitSync(['rev-parse', `${head}^`], f.origin)).toBe(human)
    expect(isAncestor(f.origin, factory1, head)).toBe(true)
    expect(gitSync(['log', '-1', '--format=%B', head], f.origin)).toContain('Run #2')
    expect(gitSync(['show', `${head}:README.md`], f.origin)).toContain('Fixed by the reviewer.')
    expect(gitSync(['show', `${head}:FACTORY_NOTES.md`], f.origin)).toContain('keep it.')
    expect(gitSync(['rev-parse', 'HEAD'], wt)).toBe(head)
    expect(record(f).runs).toHaveLength(2)
  }, 60_000)

  test("a run that crashed after its commit, before its push, has that commit rebased onto the human's: both kept", async () => {
    const { f, branch, factory1, wt } = await firstRun()
    f.comment('ENG-1', 'riley@rose.test', 'Mention the status code too.')
    expect((await once(f, crashAfterCommit)).code).toBeNull()
    const unpushed = gitSync(['rev-parse', 'HEAD'], wt)
    expect(unpushed).not.toBe(factory1)
    expect(originHead(f, branch)).toBe(factory1)
    const human = pushAsHuman(f.origin, f.dir, branch, { 'HUMAN.md': 'a reviewer note\n' }, 'reviewer adds a note')

    const restart = await once(f)
    expect(restart.code, restart.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    const head = originHead(f, branch)
    expect(gitSync(['rev-parse', `${head}^`], f.origin)).toBe(human)
    expect(gitSync(['log', '-1', '--format=%B', head], f.origin)).toContain('Run #2')
    expect(gitSync(['show', `${head}:HUMAN.md`], f.origin)).toBe('a reviewer note')
    expect(gitSync(['show', `${head}:FACTORY_NOTES.md`], f.origin)).toContain('Mention the status code too.')
    expect(record(f).phase).toBe('done')
  }, 60_000)

  test('a push made while the engine works makes the report push rejected, not forced; the retry brings it in and pushes', async () => {
    const { f, branch } = await firstRun()
    f.comment('ENG-1', 'riley@rose.test', 'One more thing.')
    const running = once(f, { ROSE_CONSOLE_DELAY_MS: '2000' })
    const t0 = Date.now()
    while (record(f).runs.length < 2 || record(f).phase !== 'running') {
      if (Date.now() - t0 > 20_000) throw new Error('run #2 never reached the engine')
      await new Promise((r) => setTimeout(r, 50))
    }
    const human = pushAsHuman(f.origin, f.dir, branch, { 'HUMAN.md': 'pushed mid-run\n' }, 'reviewer pushes mid-run')
    const raced = await running
    expect(raced.code).toBe(1)
    expect(raced.stderr).toContain(`the push to origin/${branch} was rejected: someone pushed to it while the run worked`)
    expect(raced.stderr).not.toContain('credentials')
    expect(originHead(f, branch)).toBe(human)
    expect(record(f)).toMatchObject({ phase: 'queued', attempts: 1, lastError: { code: 'git_failed' } })

    expect(Date.parse(record(f).nextRetryAt!)).toBeGreaterThan(Date.now())
    // The retry, run by hand rather than after the 10 s backoff: it resumes run #2 (no new engine run).
    const retry = await f.script('run', ['--config', f.configPath, '--agent', 'tester', '--issue', 'ENG-1'])
    expect(retry.code, retry.stderr).toBe(0)
    expect(f.issue('ENG-1').state).toBe('In Review')
    const head = originHead(f, branch)
    expect(gitSync(['rev-parse', `${head}^`], f.origin)).toBe(human)
    expect(gitSync(['show', `${head}:FACTORY_NOTES.md`], f.origin)).toContain('One more thing.')
    expect(record(f).runs).toHaveLength(2)
  }, 60_000)

  test('a conflicting human commit fails the run once with branch_diverged naming both commits; nothing is pushed', async () => {
    const { f, branch, wt } = await firstRun()
    f.comment('ENG-1', 'riley@rose.test', 'Mention the status code too.')
    expect((await once(f, crashAfterCommit)).code).toBeNull()
    const unpushed = gitSync(['rev-parse', 'HEAD'], wt)
    const human = pushAsHuman(f.origin, f.dir, branch, { 'FACTORY_NOTES.md': 'the reviewer rewrote the notes\n' }, 'reviewer rewrites')

    const restart = await once(f)
    expect(restart.code).toBe(1)
    expect(restart.stderr).toContain('branch_diverged')
    expect(originHead(f, branch)).toBe(human)
    const rec = record(f)
    expect(rec.phase).toBe('failed')
    expect(rec.attempts).toBe(1)
    expect(rec.lastError?.code).toBe('branch_diverged')
    const failure = f.issue('ENG-1').comments.filter((c) => c.body.includes('`branch_diverged`'))
    expect(failure).toHaveLength(1)
    expect(failure[0]!.body).toContain(unpushed.slice(0, 7))
    expect(failure[0]!.body).toContain(human.slice(0, 7))
    // The worktree keeps the factory's commit, with no rebase left half-done.
    expect(gitSync(['rev-parse', 'HEAD'], wt)).toBe(unpushed)
    expect(gitSync(['status', '--porcelain'], wt)).toBe('')

    // Not retried: the next ticks start nothing and nobody is asked twice.
    expect((await once(f)).code).toBe(0)
    expect(record(f).runs).toHaveLength(2)
    expect(record(f).attempts).toBe(1)
    expect(originHead(f, branch)).toBe(human)
    expect(f.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER) && /Needs a human|failed/.test(c.body))).toHaveLength(1)
  }, 60_000)
})
