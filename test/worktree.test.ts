import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.ts'
import { agentContext, type AgentContext } from '../lib/context.ts'
import type { TrackerIssue, Tracker } from '../lib/tracker/types.ts'
import { ensureWorktree, planWorktree } from '../lib/steps/worktree.ts'
import { gitSync, makeOrigin, tempDir } from './helpers.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
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
})
