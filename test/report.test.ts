import { afterEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readState } from '../lib/state.ts'
import { COMMENT_MARKER } from '../lib/prompt.ts'
import { commitAll, planReport, uncommittedFiles } from '../lib/steps/report.ts'
import type { TrackerIssue } from '../lib/tracker/types.ts'
import { startFakeGitHub } from './fakes/github.ts'
import { type Fixture, fixture, gitSync, tempDir } from './helpers.ts'

let fx: Fixture | undefined
let gh: Awaited<ReturnType<typeof startFakeGitHub>> | undefined
afterEach(async () => {
  await fx?.cleanup()
  await gh?.stop()
  fx = undefined
  gh = undefined
})

const TOKEN = 'ghp_test_token_value_123'
const ISSUES = [{ team: 'ENG', title: 'Add a health check', description: 'GET /healthz', assignee: 'agent@rose.test', priority: 2 }]

async function githubFixture() {
  fx = await fixture({
    issues: ISSUES,
    agentYaml: (o) =>
      `agents:\n  - name: tester\n    engine: console\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main, github: acme/app }\n`,
  })
  const origin = fx.origin
  gh = await startFakeGitHub({ token: TOKEN, branchExists: (b) => gitSync(['branch', '--list', b], origin) !== '' })
  return { env: { GITHUB_API_URL: gh.url, FACTORY_GITHUB_TOKEN: TOKEN } }
}

describe('report', () => {
  test('opens a PR with the token, the head and base branches, and a body linking the issue', async () => {
    const { env } = await githubFixture()
    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    expect(res.code, res.stderr).toBe(0)
    const post = gh!.requests.filter((r) => r.method === 'POST')
    expect(post).toHaveLength(1)
    expect(post[0]!.path).toBe('/repos/acme/app/pulls')
    expect(post[0]!.authorization).toBe(`Bearer ${TOKEN}`)
    const branch = fx!.originBranches().find((b) => b !== 'main')!
    expect(post[0]!.body).toMatchObject({ head: branch, base: 'main', title: 'ENG-1: Add a health check' })
    const issue = fx!.sandbox.store.issue('ENG-1')!
    expect(String(post[0]!.body!.body)).toContain(`/issue/ENG-1/`)
    // The summary comment links the PR, and the PR is attached to the issue.
    const comment = fx!.issue('ENG-1').comments.find((c) => c.body.includes(COMMENT_MARKER))!
    expect(comment.body).toContain(gh!.prs[0]!.html_url)
    expect(fx!.sandbox.store.data.attachments.filter((a) => a.issueId === issue.id).map((a) => a.url)).toEqual([gh!.prs[0]!.html_url])
    expect(res.stderr + res.stdout).not.toContain(TOKEN)
  }, 60_000)

  test('a rerun after a reviewer comment updates the same PR instead of opening another', async () => {
    const { env } = await githubFixture()
    expect((await fx!.script('start', ['--once', '--config', fx!.configPath], env)).code).toBe(0)
    const reviewer = fx!.sandbox.store.userByEmail('riley@rose.test')!
    fx!.sandbox.store.createComment({ issue: 'ENG-1', userId: reviewer.id, body: 'Please also log each request.' })

    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    expect(res.code, res.stderr).toBe(0)
    expect(gh!.prs).toHaveLength(1)
    expect(gh!.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(gh!.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1)
    // Two runs, two summary comments, two commits on the one branch.
    const ours = fx!.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))
    expect(ours.map((c) => c.body.match(/Run #(\d)/)?.[1])).toEqual(['1', '2'])
    const branch = fx!.originBranches().find((b) => b !== 'main')!
    expect(gitSync(['rev-list', '--count', `main..${branch}`], fx!.origin)).toBe('2')
    expect(gitSync(['show', `${branch}:FACTORY_NOTES.md`], fx!.origin)).toContain('Please also log each request.')
    expect(fx!.issue('ENG-1').state).toBe('In Review')
  }, 60_000)

  test('a rejected GitHub token fails the run with github_failed and the fix, and after the last attempt asks a human on the issue', async () => {
    await githubFixture()
    const { env } = { env: { GITHUB_API_URL: gh!.url, FACTORY_GITHUB_TOKEN: 'wrong-token-value' } }
    // One attempt only, so the failure escalates at once instead of retrying in 10 s.
    const yaml = readFileSync(fx!.configPath, 'utf8').replace('    repo:', '    limits: { max_attempts: 1 }\n    repo:')
    writeFileSync(fx!.configPath, yaml)
    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('github_failed')
    expect(res.stderr).toContain('HTTP 401')
    expect(res.stderr).toContain('FACTORY_GITHUB_TOKEN')
    const asks = fx!.issue('ENG-1').comments.filter((c) => c.body.includes('Needs a human'))
    expect(asks).toHaveLength(1)
    expect(asks[0]!.body).toContain('github_failed')
    // The branch was pushed before the PR step failed; the issue waits for a human.
    expect(fx!.originBranches().length).toBe(2)
    const rec = Object.values(readState(join(fx!.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.phase).toBe('escalated')
  }, 60_000)

  test('a failed attempt with attempts left is retried later, without a comment, and the retry time survives in state.json', async () => {
    await githubFixture()
    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], {
      GITHUB_API_URL: gh!.url,
      FACTORY_GITHUB_TOKEN: 'wrong-token-value',
    })
    expect(res.code).toBe(1)
    const rec = Object.values(readState(join(fx!.home, 'state.json')).agents.tester!.issues)[0]!
    expect(rec.phase).toBe('queued')
    expect(rec.attempts).toBe(1)
    const wait = Date.parse(rec.nextRetryAt!) - Date.now()
    expect(wait).toBeGreaterThan(5_000)
    expect(wait).toBeLessThanOrEqual(10_000)
    expect(fx!.issue('ENG-1').comments.filter((c) => c.body.includes(COMMENT_MARKER))).toHaveLength(0)
    // A tick before the retry time starts nothing.
    const again = await fx!.script('start', ['--once', '--config', fx!.configPath], {
      GITHUB_API_URL: gh!.url,
      FACTORY_GITHUB_TOKEN: TOKEN,
    })
    expect(again.code).toBe(0)
    expect(gh!.prs).toHaveLength(0)
  }, 60_000)

  test("report --dry-run leaves the worktree's HEAD, status and files, the origin and the issue as they were", async () => {
    fx = await fixture({ issues: ISSUES })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    for (const step of ['poll', 'claim', 'worktree', 'run-engine']) {
      const res = await fx.script(step, step === 'poll' ? a : [...a, '--issue', 'ENG-1'])
      expect(res.code, `${step}: ${res.stderr}`).toBe(0)
    }
    const wt = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.worktree!
    const before = {
      head: gitSync(['rev-parse', 'HEAD'], wt),
      status: gitSync(['status', '--porcelain'], wt),
      notes: readFileSync(join(wt, 'FACTORY_NOTES.md'), 'utf8'),
      origin: fx.originBranches(),
      comments: fx.issue('ENG-1').comments.length,
      state: fx.issue('ENG-1').state,
    }
    expect(before.status).toContain('FACTORY_NOTES.md')
    const dry = await fx.script('report', [...a, '--issue', 'ENG-1', '--dry-run'])
    expect(dry.code, dry.stderr).toBe(0)
    expect({
      head: gitSync(['rev-parse', 'HEAD'], wt),
      status: gitSync(['status', '--porcelain'], wt),
      notes: readFileSync(join(wt, 'FACTORY_NOTES.md'), 'utf8'),
      origin: fx.originBranches(),
      comments: fx.issue('ENG-1').comments.length,
      state: fx.issue('ENG-1').state,
    }).toEqual(before)
  }, 60_000)
})

describe('report: a repository the engine changed', () => {
  test('is refused with worktree_tampered before any git command: nothing committed or pushed, the dry run says so without repairing, the real one restores it', async () => {
    fx = await fixture({ issues: ISSUES })
    const a = ['--config', fx.configPath, '--agent', 'tester']
    for (const step of ['poll', 'claim', 'worktree', 'run-engine']) {
      const res = await fx.script(step, step === 'poll' ? a : [...a, '--issue', 'ENG-1'])
      expect(res.code, `${step}: ${res.stderr}`).toBe(0)
    }
    const wt = Object.values(readState(join(fx.home, 'state.json')).agents.tester!.issues)[0]!.worktree!
    const ran = join(fx.dir, 'fsmonitor-ran')
    gitSync(['config', 'core.fsmonitor', `sh -c 'touch ${ran}'`], wt)
    const head = gitSync(['rev-parse', 'HEAD'], wt)
    const dry = await fx.script('report', [...a, '--issue', 'ENG-1', '--dry-run'])
    expect(dry.code).toBe(1)
    expect(dry.stderr).toContain('worktree_tampered')
    expect(dry.stderr).toContain('config (+core.fsmonitor)')
    expect(gitSync(['config', '--get', 'core.fsmonitor'], wt)).toContain(ran)
    const real = await fx.script('report', [...a, '--issue', 'ENG-1'])
    expect(real.code).toBe(1)
    expect(real.stderr).toContain('worktree_tampered')
    expect(existsSync(ran)).toBe(false)
    expect(fx.originBranches()).toEqual(['main'])
    expect(gitSync(['rev-parse', 'HEAD'], wt)).toBe(head)
    expect(fx.issue('ENG-1').state).toBe('In Progress')
    expect(
      readFileSync(join(wt, '..', '..', '..', 'repos', readdirSync(join(fx.home, 'repos'))[0]!, '.git', 'config'), 'utf8'),
    ).not.toContain('fsmonitor')
  }, 60_000)
})

describe('report: where the push goes', () => {
  test('the push goes to the agents.yaml URL, not to the remote the repository names (a --repo-root checkout whose origin is elsewhere)', async () => {
    fx = await fixture({ issues: ISSUES })
    const checkout = join(fx.dir, 'checkout')
    gitSync(['clone', '-q', fx.origin, checkout])
    const decoy = join(fx.dir, 'decoy.git')
    gitSync(['clone', '-q', '--bare', fx.origin, decoy])
    gitSync(['remote', 'set-url', 'origin', decoy], checkout)
    const a = ['--config', fx.configPath, '--agent', 'tester']
    const steps: [string, string[]][] = [
      ['poll', a],
      ['claim', [...a, '--issue', 'ENG-1']],
      ['worktree', [...a, '--issue', 'ENG-1', '--repo-root', checkout]],
      ['run-engine', [...a, '--issue', 'ENG-1']],
      ['report', [...a, '--issue', 'ENG-1']],
    ]
    for (const [step, args] of steps) {
      const res = await fx.script(step, args)
      expect(res.code, `${step}: ${res.stderr}`).toBe(0)
    }
    expect(fx.originBranches()).toHaveLength(2)
    expect(gitSync(['for-each-ref', '--format=%(refname:short)', 'refs/heads'], decoy)).toBe('main')
  }, 60_000)
})

describe('planReport', () => {
  const issue = {
    id: 'i1',
    identifier: 'ENG-1',
    title: 'T',
    description: '',
    url: 'http://x/issue/ENG-1/t',
    branchName: 'b',
    priority: 0,
    createdAt: '',
    updatedAt: '',
    state: { id: 's1', name: 'In Progress', type: 'started' },
    labels: [],
    assigneeId: null,
    delegateId: null,
    comments: [],
    team: {
      id: 't',
      key: 'ENG',
      states: [
        { id: 's1', name: 'In Progress', type: 'started', position: 2 },
        { id: 's2', name: 'In Review', type: 'started', position: 3 },
      ],
    },
  } satisfies TrackerIssue
  const base = {
    agent: 'a',
    engine: 'console',
    issue,
    branch: 'b',
    base: 'main',
    repoUrl: '/tmp/origin.git',
    hasGitHubToken: false,
    commitsAhead: 1,
  }

  test('a local origin gets no PR and the comment says why', () => {
    const plan = planReport({ ...base, run: { n: 1, startedAt: '', status: 'success', summary: 'did it' } })
    expect(plan.pr).toBeNull()
    expect(plan.prSkipped).toBe('origin is a local path, not GitHub')
    expect(plan.comment.body).toContain('No PR: origin is a local path, not GitHub.')
    expect(plan.moveTo?.name).toBe('In Review')
  })

  test('a failed run posts the error, stays in progress and pushes nothing new', () => {
    const plan = planReport({
      ...base,
      commitsAhead: 0,
      run: { n: 2, startedAt: '', status: 'stalled', errorCode: 'engine_stalled', summary: 'no output for 300 s' },
    })
    expect(plan.outcome).toBe('failed')
    expect(plan.moveTo).toBeNull()
    expect(plan.push).toBe(false)
    expect(plan.comment.body).toContain('engine_stalled')
    expect(plan.comment.body).toContain('> no output for 300 s')
  })

  test('the same run always gets the same comment id, and another run another', () => {
    const run = { n: 1, startedAt: '', status: 'success' as const }
    expect(planReport({ ...base, run }).comment.id).toBe(planReport({ ...base, run }).comment.id)
    expect(planReport({ ...base, run }).comment.id).not.toBe(planReport({ ...base, run: { ...run, n: 2 } }).comment.id)
  })
})

describe('report --dry-run tells the truth', () => {
  test('after the engine left uncommitted changes, the dry run plans the commit, push, PR, comment and In Review the real report then does', async () => {
    const { env } = await githubFixture()
    const a = ['--config', fx!.configPath, '--agent', 'tester', '--issue', 'ENG-1']
    expect((await fx!.script('poll', ['--config', fx!.configPath, '--agent', 'tester'], env)).code).toBe(0)
    expect((await fx!.script('claim', a, env)).code).toBe(0)
    const wt = JSON.parse((await fx!.script('worktree', [...a, '--json'], env)).stdout) as { path: string; branch: string }
    const eng = await fx!.script('run-engine', a, env)
    expect(eng.code, eng.stderr).toBe(0)

    const statePath = join(fx!.home, 'state.json')
    const bytes = readFileSync(statePath)
    const head = gitSync(['rev-parse', 'HEAD'], wt.path)
    const status = gitSync(['status', '--porcelain'], wt.path)
    expect(status).toContain('FACTORY_NOTES.md')
    const mutations = fx!.sandbox.stats().mutations
    const dryRes = await fx!.script('report', [...a, '--dry-run', '--json'], env)
    expect(dryRes.code, dryRes.stderr).toBe(0)
    const dry = JSON.parse(dryRes.stdout)
    expect(dry).toMatchObject({
      dryRun: true,
      outcome: 'success',
      commitFiles: ['FACTORY_NOTES.md'],
      push: true,
      branch: wt.branch,
      pr: { repo: { owner: 'acme', name: 'app' }, title: 'ENG-1: Add a health check' },
      moveTo: { name: 'In Review' },
    })
    // Nothing happened: same HEAD, same uncommitted files, same state.json, no Linear mutation,
    // no GitHub request, no push.
    expect(gitSync(['rev-parse', 'HEAD'], wt.path)).toBe(head)
    expect(gitSync(['status', '--porcelain'], wt.path)).toBe(status)
    expect(readFileSync(statePath).equals(bytes)).toBe(true)
    expect(fx!.sandbox.stats().mutations).toBe(mutations)
    expect(gh!.requests).toHaveLength(0)
    expect(fx!.originBranches()).toEqual(['main'])
    const text = await fx!.script('report', [...a, '--dry-run'], env)
    expect(text.stdout).toContain('outcome: success')
    expect(text.stdout).toContain('commit: 1 file(s): FACTORY_NOTES.md')
    expect(text.stdout).toContain(`push: ${wt.branch} to origin`)
    expect(text.stdout).toContain('move to: In Review')

    const realRes = await fx!.script('report', [...a, '--json'], env)
    expect(realRes.code, realRes.stderr).toBe(0)
    const real = JSON.parse(realRes.stdout)
    for (const k of ['outcome', 'commitFiles', 'commitMessage', 'push', 'branch', 'pr', 'prSkipped', 'moveTo'] as const)
      expect(real[k], k).toEqual(dry[k])
    expect(real.comment.id).toBe(dry.comment.id)
    // The comment differs only in what the dry run cannot know yet: the PR's URL and the new commit.
    const known = (body: string) =>
      body
        .split('\n')
        .filter((l) => !l.startsWith('PR: '))
        .map((l) => l.replace(/ at `[0-9a-f]{12}`$/, ''))
        .join('\n')
    expect(known(real.comment.body)).toBe(known(dry.comment.body))
    // And it happened: that branch pushed with that commit, that PR, that comment id, that state.
    expect(fx!.originBranches()).toContain(dry.branch)
    expect(gitSync(['log', '-1', '--format=%B', dry.branch], fx!.origin)).toBe(dry.commitMessage.trim())
    expect(gitSync(['show', '--name-only', '--format=', dry.branch], fx!.origin).split('\n')).toEqual(dry.commitFiles)
    expect(gh!.prs.map((p) => p.head)).toEqual([dry.branch])
    expect(fx!.issue('ENG-1').comments.map((c) => c.id)).toContain(dry.comment.id)
    expect(fx!.issue('ENG-1').state).toBe(dry.moveTo.name)
    const run = Object.values(readState(statePath).agents.tester!.issues)[0]!.runs[0]!
    expect(run).toMatchObject({ status: 'success', commentId: dry.comment.id })
  }, 60_000)

  test('a run that left nothing to commit is planned and reported as no_changes, with nothing pushed', async () => {
    fx = await fixture({ issues: ISSUES })
    const a = ['--config', fx.configPath, '--agent', 'tester', '--issue', 'ENG-1']
    expect((await fx.script('poll', ['--config', fx.configPath, '--agent', 'tester'])).code).toBe(0)
    expect((await fx.script('claim', a)).code).toBe(0)
    const wt = JSON.parse((await fx.script('worktree', [...a, '--json'])).stdout) as { path: string }
    expect((await fx.script('run-engine', a)).code).toBe(0)
    // Someone (a human at the keyboard) removed what the engine wrote: the worktree is clean.
    gitSync(['clean', '-fdq'], wt.path)
    const dry = JSON.parse((await fx.script('report', [...a, '--dry-run', '--json'])).stdout)
    expect(dry).toMatchObject({ outcome: 'no_changes', push: false, commitFiles: [] })
    const real = JSON.parse((await fx.script('report', [...a, '--json'])).stdout)
    expect(real).toMatchObject({ outcome: 'no_changes', push: false, commitFiles: [], comment: { id: dry.comment.id } })
    expect(real.comment.body).toBe(dry.comment.body)
    expect(fx.originBranches()).toEqual(['main'])
    expect(fx.issue('ENG-1').state).toBe('In Review')
  }, 60_000)
})

describe('uncommittedFiles', () => {
  test('lists exactly what the commit step then commits: edits, deletions, renames, untracked files in new directories, not ignored ones', async () => {
    const dir = tempDir()
    try {
      const repo = join(dir, 'repo')
      gitSync(['init', '-q', '-b', 'main', repo])
      writeFileSync(join(repo, 'a.txt'), 'a\n')
      writeFileSync(join(repo, 'b.txt'), 'b\n')
      writeFileSync(join(repo, 'c.txt'), 'c\n')
      writeFileSync(join(repo, '.gitignore'), 'build/\n')
      gitSync(['add', '-A'], repo)
      gitSync(['commit', '-qm', 'init'], repo)
      writeFileSync(join(repo, 'a.txt'), 'changed\n')
      rmSync(join(repo, 'b.txt'))
      gitSync(['mv', 'c.txt', 'renamed.txt'], repo)
      mkdirSync(join(repo, 'src', 'deep'), { recursive: true })
      writeFileSync(join(repo, 'src', 'deep', 'new file.ts'), 'x\n')
      mkdirSync(join(repo, 'build'))
      writeFileSync(join(repo, 'build', 'out.js'), 'ignored\n')
      const head = gitSync(['rev-parse', 'HEAD'], repo)
      const planned = await uncommittedFiles({ env: process.env }, repo)
      expect(gitSync(['rev-parse', 'HEAD'], repo)).toBe(head)
      expect([...planned].sort()).toEqual(['a.txt', 'b.txt', 'c.txt', 'renamed.txt', 'src/deep/new file.ts'])
      expect(await commitAll({ env: process.env }, repo, 'm')).not.toBeNull()
      const committed = gitSync(['-c', 'core.quotePath=false', 'show', '--name-only', '--no-renames', '--format=', 'HEAD'], repo)
      expect(committed.split('\n').sort()).toEqual([...planned].sort())
      expect(await uncommittedFiles({ env: process.env }, repo)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** Octal permission bits of a path (e.g. '600'). */
const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8)

/**
 * A stand-in for Claude Code doing what an injected prompt could make it do: it "found" the
 * factory's secrets (as if read from /proc/<parent>/environ) and prints them in a tool call, its
 * tool output, stderr and its final summary. It reads its prompt from stdin and edits a file.
 */
function leakingEngine(dir: string, secrets: string[]): string {
  const leak = secrets.join(' ')
  const lines = [
    { type: 'system', subtype: 'init', session_id: 'leaky-1' },
    { type: 'assistant', message: { content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: `echo ${leak}` } }] } },
    { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: `tokens: ${leak}` }] } },
    {
      type: 'result',
      subtype: 'success',
      is_error: false,
      num_turns: 1,
      result: `Added the health check. By the way, the tokens are ${leak}`,
      session_id: 'leaky-1',
      total_cost_usd: 0,
      usage: { input_tokens: 1, output_tokens: 1 },
    },
  ]
  const bin = join(dir, 'leaking-engine')
  writeFileSync(
    bin,
    [
      '#!/bin/sh',
      'cat >/dev/null',
      'echo "GET /healthz -> 200" > HEALTH.md',
      `echo 'stderr: ${leak}' >&2`,
      ...lines.map((l) => `echo '${JSON.stringify(l)}'`),
      '',
    ].join('\n'),
  )
  chmodSync(bin, 0o755)
  return bin
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
}

describe('redaction at every exit', () => {
  test("an engine that prints the factory's tokens gets none of them into Linear, the PR, state.json, the transcript or the logs; logs are 0600 in 0700", async () => {
    const ghToken = 'ghp_custom_push_token_value_42'
    const secrets = {
      ACME_GH_PUSH: ghToken,
      FACTORY_GITHUB_TOKEN: 'ghp_other_factory_token_value_7',
      CLAUDE_AUTH_TOKEN: 'claude-oauth-claude-login-value-9',
    }
    fx = await fixture({
      issues: ISSUES,
      agentYaml: (o) =>
        `agents:\n  - name: tester\n    engine: claude\n    tracker: { mode: api_key, token_env: ROSE_TEST_LINEAR_KEY }\n    repo: { url: ${o}, base: main, github: acme/app, bootstrap: "echo booted" }\n    github: { token_env: ACME_GH_PUSH }\n    limits: { max_attempts: 1 }\n    claude: { bin: BIN }\n`,
    })
    const values = [...Object.values(secrets), fx.env.ROSE_TEST_LINEAR_KEY!]
    writeFileSync(fx.configPath, readFileSync(fx.configPath, 'utf8').replace('BIN', leakingEngine(fx.dir, values)))
    const origin = fx.origin
    gh = await startFakeGitHub({ token: ghToken, branchExists: (b) => gitSync(['branch', '--list', b], origin) !== '' })
    const res = await fx.script('start', ['--once', '--config', fx.configPath], { GITHUB_API_URL: gh.url, ...secrets })
    expect(res.code, res.stderr).toBe(0)

    // The run went all the way: a PR, a summary comment, the summary kept in state.json.
    expect(gh.prs).toHaveLength(1)
    const comments = fx.issue('ENG-1').comments.map((c) => c.body)
    expect(comments.join('\n')).toContain('Added the health check')
    const home = fx.home
    const state = readFileSync(join(home, 'state.json'), 'utf8')
    expect(state).toContain('Added the health check')
    const logs = filesUnder(join(home, 'logs'))
    const transcript = logs.find((f) => f.endsWith('run-1.log'))!
    expect(readFileSync(transcript, 'utf8')).toContain('tokens: ***')

    const exits: Record<string, string> = {
      'Linear comments': comments.join('\n'),
      'Linear attachments': JSON.stringify(fx.sandbox.store.data.attachments),
      'GitHub requests (PR title and body)': JSON.stringify(gh.requests.map((r) => r.body ?? null)),
      'state.json': state,
      'transcript and bootstrap log': logs.map((f) => readFileSync(f, 'utf8')).join('\n'),
      'driver and run output': res.stdout + res.stderr,
    }
    const leaks = Object.entries(exits).flatMap(([where, text]) => values.filter((v) => text.includes(v)).map((v) => `${where}: ${v}`))
    expect(leaks).toEqual([])

    // Private to the factory's user: transcripts and logs 0600 in 0700 directories, locks too.
    const logDir = join(home, 'logs', 'tester', 'ENG-1')
    expect({
      logs: modeOf(join(home, 'logs')),
      agentLogs: modeOf(join(home, 'logs', 'tester')),
      issueLogs: modeOf(logDir),
      transcript: modeOf(transcript),
      bootstrapLog: modeOf(join(logDir, 'bootstrap.log')),
      locks: modeOf(join(home, 'locks', 'tester')),
      state: modeOf(join(home, 'state.json')),
    }).toEqual({ logs: '700', agentLogs: '700', issueLogs: '700', transcript: '600', bootstrapLog: '600', locks: '700', state: '600' })
  }, 60_000)
})

describe('redaction right before sending', () => {
  test('a summary recorded unredacted (by an older factory, before a crash) is still posted and put in the PR without the token', async () => {
    const { env } = await githubFixture()
    const crashed = await fx!.script('start', ['--once', '--config', fx!.configPath], {
      ...env,
      ROSE_CRASH_AT: 'after_commit',
      ROSE_CRASH_KILL_PARENT: '1',
    })
    expect(crashed.code).toBe(null)
    // The engine result is on record; put the raw token in it, as a factory without redaction wrote it.
    const path = join(fx!.home, 'state.json')
    const state = JSON.parse(readFileSync(path, 'utf8'))
    const rec = Object.values(state.agents.tester.issues)[0] as { runs: { summary: string }[] }
    rec.runs[0]!.summary = `Wrote the notes. Token: ${TOKEN}`
    writeFileSync(path, JSON.stringify(state))

    const res = await fx!.script('start', ['--once', '--config', fx!.configPath], env)
    expect(res.code, res.stderr).toBe(0)
    const comment = fx!.issue('ENG-1').comments.find((c) => c.body.includes(COMMENT_MARKER))!
    expect(comment.body).toContain('Wrote the notes. Token: ***')
    expect(gh!.prs).toHaveLength(1)
    expect(gh!.prs[0]!.body).toContain('Token: ***')
    expect(JSON.stringify(gh!.requests.map((r) => r.body ?? null))).not.toContain(TOKEN)
  }, 60_000)
})
