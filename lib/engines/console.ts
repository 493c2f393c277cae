/**
 * The `console` engine: deterministic, offline, for smoke tests and `make demo`. It writes the
 * prompt (issue + human comments) to a file in the worktree, so a rerun after a new comment
 * changes it, and prints progress lines like a real engine would.
 */
import { createHash } from 'node:crypto'
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { continueTranscript } from './cli.ts'
import type { Engine, EngineResult, EngineRunInput } from './types.ts'

/** The file the console engine writes, relative to the worktree. */
export const CONSOLE_OUTPUT = 'FACTORY_NOTES.md'

/**
 * Create the console engine. `delayMs` (or ROSE_CONSOLE_DELAY_MS) slows it down, for tests of
 * cancellation and concurrency; `stopMs` (or ROSE_CONSOLE_STOP_MS) is how long it takes to stop
 * once cancelled, like a CLI that finishes its turn before exiting (tests of forced stops).
 */
export function createConsoleEngine(opts: { delayMs?: number; stopMs?: number } = {}): Engine {
  return {
    name: 'console',
    async run(input: EngineRunInput): Promise<EngineResult> {
      continueTranscript(input.logPath)
      const log = (line: string) => {
        appendFileSync(input.logPath, `${line}\n`)
        // Echoed for demos; not a log line, so not in JSON log output (the transcript has it).
        if (process.env.ROSE_LOG_FORMAT !== 'json') process.stderr.write(`  console> ${line}\n`)
      }
      const sessionId = input.resume ?? `console-${createHash('sha256').update(input.cwd).digest('hex').slice(0, 12)}`
      input.onEvent?.({ kind: 'started', sessionId })
      log(`session ${sessionId}${input.resume ? ' (resumed)' : ''}`)
      const delay = Number(process.env.ROSE_CONSOLE_DELAY_MS ?? opts.delayMs ?? 0)
      const stopMs = Number(process.env.ROSE_CONSOLE_STOP_MS ?? opts.stopMs ?? 0)
      if (delay > 0 || input.signal?.aborted) {
        const aborted = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), delay)
          const stop = () => (clearTimeout(t), setTimeout(() => resolve(true), stopMs))
          if (input.signal?.aborted) stop()
          else input.signal?.addEventListener('abort', stop, { once: true })
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
