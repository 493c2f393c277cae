/**
 * The `command` runtime provider: the operator's own scripts (agents.yaml, never issue text, so a
 * shell is fine) run with the worktree as cwd and the minimal env the caller gives (RUN_* included,
 * no secret). prepare prints one JSON object on stdout: `{ "env": {...}, "urls": [{ "label", "url" }] }`.
 */
import { existsSync } from 'node:fs'
import { z } from '../zod.ts'
import { FactoryError } from '../errors.ts'
import { run, type RunResult } from '../proc.ts'
import type { Prepared, ProviderEntry } from './types.ts'

const schema = z.strictObject({
  provider: z.literal('command'),
  /** Shell script run before each run's engine; its stdout is the JSON above. */
  prepare: z.string().min(1),
  /** Shell script run once when the issue closes, before its worktree is removed. */
  teardown: z.string().min(1).optional(),
  /** Each of prepare and teardown is stopped after this long. */
  timeout_seconds: z.number().positive().default(120),
})

type CommandConfig = z.infer<typeof schema>

const preparedSchema = z.strictObject({
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string()).default({}),
  urls: z.array(z.strictObject({ label: z.string().min(1).max(200), url: z.url({ protocol: /^https?$/ }) })).default([]),
})

/** The last lines of a script's stderr, for the message. */
function tail(text: string, lines = 10): string {
  const t = text.trimEnd().split('\n').slice(-lines).join('\n').slice(-2000)
  return t ? `\nstderr:\n${t}` : ' (stderr empty)'
}

function fail(script: string, what: string, res: RunResult): FactoryError {
  return new FactoryError('runtime_prepare_failed', `runtime.prepare \`${script}\` ${what}${tail(res.stderr)}`, {
    fix: `fix runtime.prepare (\`${script}\`) in agents.yaml: it must exit 0 and print {"env": {...}, "urls": [{"label": ..., "url": ...}]} on stdout`,
  })
}

/** Parse prepare's stdout (pure): the Prepared value or what is wrong with it. */
export function parsePrepared(stdout: string): { ok: true; value: Prepared } | { ok: false; why: string } {
  let json: unknown
  try {
    json = JSON.parse(stdout.trim() || '{}')
  } catch (err) {
    return { ok: false, why: `printed something that is not JSON (${(err as Error).message}): ${JSON.stringify(stdout.slice(0, 200))}` }
  }
  const parsed = preparedSchema.safeParse(json)
  if (parsed.success) return { ok: true, value: parsed.data }
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`)
  return { ok: false, why: `printed JSON of the wrong shape: ${issues.join('; ')}` }
}

export const commandProvider: ProviderEntry<CommandConfig> = {
  name: 'command',
  schema,
  create: (config) => ({
    name: 'command',
    timeoutMs: config.timeout_seconds * 1000,
    async prepare(input) {
      const res = await run(['/bin/sh', '-c', config.prepare], { cwd: input.worktree, env: input.env, signal: input.signal })
      if (res.killed) throw fail(config.prepare, `was stopped (${res.killed})`, res)
      if (res.exitCode !== 0) throw fail(config.prepare, `exited ${res.exitCode ?? res.signal}`, res)
      const parsed = parsePrepared(res.stdout)
      if (!parsed.ok) throw fail(config.prepare, parsed.why, res)
      return parsed.value
    },
    async teardown(input) {
      if (!config.teardown) return
      // The worktree may be gone already (removed by hand): the script still runs, from the factory's cwd.
      const cwd = existsSync(input.worktree) ? input.worktree : undefined
      const res = await run(['/bin/sh', '-c', config.teardown], { cwd, env: input.env, signal: input.signal })
      if (res.killed || res.exitCode !== 0)
        throw new FactoryError(
          'runtime_teardown_failed',
          `runtime.teardown \`${config.teardown}\` ${res.killed ? `was stopped (${res.killed})` : `exited ${res.exitCode}`}${tail(res.stderr)}`,
        )
    },
  }),
}
