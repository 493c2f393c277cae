/**
 * The `console` engine: deterministic, offline, for smoke tests and `make demo`. It writes the
 * prompt (issue + human comments) to a file in the worktree, so a rerun after a new comment
 * changes it, and prints progress lines like a real engine would.
 */
import { createHash } from 'node:crypto'
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Engine, EngineResult, EngineRunInput } from './types.ts'

/** The file the console engine writes, relative to the worktree. */
export const CONSOLE_OUTPUT = 'FACTORY_NOTES.md'

/** Create the console engine. `delayMs` slows it down (tests of cancellation and concurrency). */
export function createConsoleEngine(opts: { delayMs?: number } = {}): Engine {
  return {
    name: 'console',
    async run(input: EngineRunInput): Promise<EngineResult> {
      mkdirSync(dirname(input.logPath), { recursive: true })
      const log = (line: string) => {
        appendFileSync(input.logPath, `${line}\n`)
        process.stderr.write(`  console> ${line}\n`)
      }
      const sessionId = input.resume ?? `console-${createHash('sha256').update(input.cwd).digest('hex').slice(0, 12)}`
      writeFileSync(input.logPath, '')
      input.onEvent?.({ kind: 'started', sessionId })
      log(`session ${sessionId}${input.resume ? ' (resumed)' : ''}`)
      const delay = Number(process.env.ROSE_CONSOLE_DELAY_MS ?? opts.delayMs ?? 0)
      if (delay > 0) {
        const aborted = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), delay)
          input.signal?.addEventListener('abort', () => (clearTimeout(t), resolve(true)), { once: true })
        })
        if (aborted) {
          log('cancelled')
          return { status: 'cancelled', summary: 'cancelled before writing', sessionId, exitCode: null, logPath: input.logPath, errorCode: 'engine_cancelled' }
        }
      }
      const target = join(input.cwd, CONSOLE_OUTPUT)
      input.onEvent?.({ kind: 'action', tool: 'write', input: CONSOLE_OUTPUT })
      writeFileSync(target, `# Notes from the console engine\n\n${input.prompt}`)
      log(`wrote ${CONSOLE_OUTPUT} (${input.prompt.length} bytes of prompt)`)
      const summary = `Wrote ${CONSOLE_OUTPUT} from the issue${input.resume ? ' and the new comments' : ''} (console engine).`
      input.onEvent?.({ kind: 'text', text: summary })
      log('done')
      return { status: 'success', summary, sessionId, exitCode: 0, logPath: input.logPath, usage: { inputTokens: 0, outputTokens: 0 }, costUsd: 0 }
    },
  }
}
