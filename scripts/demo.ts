#!/usr/bin/env bun
/**
 * demo: the whole pipeline on the embedded sandbox, in a temp FACTORY_HOME (nothing of the user's
 * home is touched): a seeded issue, a local bare "origin", `start --once` with the console engine,
 * then what happened.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineCommand } from 'citty'
import { isEntry, runCli } from '../lib/cli.ts'
import { DEMO_APP, demoAgentSession } from '../lib/demo-session.ts'
import { logger } from '../lib/log.ts'
import { spawnScript } from '../lib/proc.ts'
import { createSampleOrigin } from '../lib/sandbox/sample-repo.ts'
import { startSandbox } from '../lib/sandbox/server.ts'

const git = (args: string[], cwd?: string) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'demo',
      GIT_AUTHOR_EMAIL: 'demo@localhost',
      GIT_COMMITTER_NAME: 'demo',
      GIT_COMMITTER_EMAIL: 'demo@localhost',
    },
  }).trim()

const command = defineCommand({
  meta: {
    name: 'demo',
    description:
      'Run two tickets end to end on the embedded sandbox in a temp directory (one polled with an API key, one delegated to an agent through the relay), and print what happened.',
  },
  args: { keep: { type: 'boolean', description: 'keep the temp directory (its path is printed)', default: false } },
  async run({ args }) {
    const log = logger('demo')
    const t0 = Date.now()
    const dir = mkdtempSync(join(tmpdir(), 'rose-demo-'))
    const home = join(dir, 'factory-home')
    mkdirSync(home)
    log.info(`working in ${dir}`)

    const origin = createSampleOrigin(dir, { 'README.md': '# sample app\n\nA tiny repository the demo agent works on.\n' })

    const key = 'demo-agent-key-0001'
    const sandbox = await startSandbox({
      port: 0,
      dataPath: join(dir, 'sandbox.json'),
      seed: {
        organization: { name: 'Demo Co', urlKey: 'demo' },
        teams: [{ key: 'DEMO', name: 'Demo' }],
        users: [
          { name: 'Demo Agent', email: 'agent@demo.test', apiKey: key },
          { name: 'Dana Reviewer', email: 'dana@demo.test', apiKey: 'demo-reviewer-key-0001' },
          {
            name: DEMO_APP.name,
            email: DEMO_APP.email,
            apiKey: 'demo-app-token-0001',
            app: { clientId: DEMO_APP.clientId, clientSecret: DEMO_APP.clientSecret },
          },
        ],
        issues: [
          {
            team: 'DEMO',
            title: 'Document the health check',
            description: 'Add a note about GET /healthz to the repository.',
            assignee: 'agent@demo.test',
            priority: 2,
            labels: ['docs'],
            comments: [{ user: 'dana@demo.test', body: 'Keep it short, please.' }],
          },
          { team: 'DEMO', title: 'Add a changelog entry', description: 'Note the health check in CHANGELOG.md.', priority: 3 },
        ],
      },
    })
    log.info(`sandbox Linear at ${sandbox.url}`)
    const configPath = join(home, 'agents.yaml')
    writeFileSync(
      configPath,
      `poll_interval_seconds: 5\nagents:\n  - name: demo-console\n    engine: console\n    tracker: { mode: api_key, token_env: DEMO_LINEAR_API_KEY }\n    repo: { url: ${origin}, base: main }\n`,
    )

    try {
      // `../scripts/`, not `./`: from the packed bundle (dist/<chunk>.js) this resolves to the shipped sources too.
      const script = fileURLToPath(new URL('../scripts/start.ts', import.meta.url))
      const child = spawnScript(script, ['--once', '--config', configPath], {
        env: { ...process.env, FACTORY_HOME: home, LINEAR_API_URL: sandbox.url, DEMO_LINEAR_API_KEY: key },
      })
      const code = await child.exited
      const d = sandbox.store.data
      const issue = sandbox.store.issue('DEMO-1')!
      const state = d.states.find((s) => s.id === issue.stateId)!
      const comments = d.comments.filter((c) => c.issueId === issue.id)
      const branch = git(['for-each-ref', '--format=%(refname:short)', 'refs/heads'], origin)
        .split('\n')
        .find((b) => b !== 'main')
      const out: string[] = ['', '=== what happened ===', `start --once exited ${code}`, `DEMO-1 "${issue.title}" is now: ${state.name}`]
      for (const c of comments)
        out.push(`comment by ${d.users.find((u) => u.id === c.userId)?.name ?? '?'}:\n    ${c.body.split('\n').join('\n    ')}`)
      if (branch) {
        out.push(`branch pushed to origin: ${branch}`)
        out.push(`  ${git(['log', '-1', '--format=%h %s', branch], origin)}`)
        out.push(
          `  files: ${git(['diff', '--name-only', `main..${branch}`], origin)
            .split('\n')
            .join(', ')}`,
        )
      } else out.push('no branch was pushed')
      // The same machine, agent_session mode: a relay on SQLite and a worker take DEMO-2.
      const session = await demoAgentSession({ dir, home, origin, sandbox, issue: 'DEMO-2', delegator: 'dana@demo.test' })
      out.push(...session.lines)
      out.push('', `stats: ${sandbox.stats().requests} Linear requests, ${((Date.now() - t0) / 1000).toFixed(1)} s in all`)
      process.stdout.write(`${out.join('\n')}\n`)
      return code !== 0 || state.name !== 'In Review' || !session.ok ? 1 : 0
    } finally {
      await sandbox.stop()
      if (args.keep) log.info(`kept ${dir}`)
      else rmSync(dir, { recursive: true, force: true })
    }
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
