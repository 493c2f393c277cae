/** Shared bench set-up: a temp FACTORY_HOME, a sample origin, a seeded sandbox, agents.yaml and the env to run the scripts with. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createSampleOrigin } from '../lib/sandbox/sample-repo.ts'
import { startSandbox } from '../lib/sandbox/server.ts'

export const ROOT = resolve(import.meta.dir, '..')
const KEY = 'bench-key-000001'

/** `issues` assigned to the agent; `factory` and `agent` are extra agents.yaml lines (top level / agent level). */
export async function benchFactory(opts: { issues: number; factory?: string; agent?: string }) {
  const dir = mkdtempSync(join(tmpdir(), 'rose-bench-'))
  const home = join(dir, 'home')
  mkdirSync(home)
  const origin = createSampleOrigin(dir)
  const sandbox = await startSandbox({
    port: 0,
    dataPath: join(dir, 'data.json'),
    seed: {
      teams: [{ key: 'ENG', name: 'Eng' }],
      users: [{ name: 'Agent', email: 'a@b.test', apiKey: KEY }],
      issues: Array.from({ length: opts.issues }, (_, i) => ({
        team: 'ENG',
        title: `Issue ${i + 1}`,
        assignee: 'a@b.test',
        priority: i % 5,
      })),
    },
  })
  const configPath = join(home, 'agents.yaml')
  writeFileSync(
    configPath,
    `${opts.factory ?? ''}agents:\n  - name: bench\n    engine: console\n${opts.agent ?? ''}    tracker: { mode: api_key, token_env: BENCH_KEY }\n    repo: { url: ${origin}, base: main }\n`,
  )
  const env = { ...process.env, FACTORY_HOME: home, LINEAR_API_URL: sandbox.url, BENCH_KEY: KEY, ROSE_LOG_LEVEL: '1' }
  return {
    home,
    sandbox,
    configPath,
    env,
    /** Issues now in the In Review state. */
    inReview() {
      const review = sandbox.store.data.states.find((s) => s.name === 'In Review')!.id
      return sandbox.store.data.issues.filter((i) => i.stateId === review).length
    },
    async cleanup() {
      await sandbox.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
