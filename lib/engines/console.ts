/**
 * The `console` engine: deterministic, offline, for smoke tests and `make demo`. It writes the
 * prompt it was given (issue + human comments, or a session reply's text) to a file in the
 * worktree, so every run with new input makes a commit, and reports a few steps as a real engine
 * would (a thought, a plan, a tool call and its result, the final text) so the agent panel shows them.
 */
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { continueTranscript } from './cli.ts'
import type { Engine, EngineEvent, EngineResult, EngineRunInput } from './types.ts'
import { sha256Hex } from '../hash.ts'

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
      const sessionId = input.resume ?? `console-${sha256Hex(input.cwd).slice(0, 12)}`
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
      const emit = (e: EngineEvent) => input.onEvent?.(e)
      const plan = (written: boolean): EngineEvent => ({
        kind: 'plan',
        items: [
          { content: 'Read the prompt', status: 'completed' },
          { content: `Write ${CONSOLE_OUTPUT}`, status: written ? 'completed' : 'inProgress' },
        ],
      })
      emit({ kind: 'thought', text: `Read the prompt (${input.prompt.length} characters); writing it to ${CONSOLE_OUTPUT}.` })
      emit(plan(false))
      emit({ kind: 'action', tool: 'write', input: CONSOLE_OUTPUT })
      writeFileSync(target, `# Notes from the console engine\n\n${input.prompt}`)
      log(`wrote ${CONSOLE_OUTPUT} (${input.prompt.length} bytes of prompt)`)
      emit({ kind: 'action_result', tool: 'write', output: `${CONSOLE_OUTPUT}: ${input.prompt.split('\n').length} lines`, isError: false })
      emit(plan(true))
      const summary = `Wrote ${CONSOLE_OUTPUT} from the issue${input.resume ? ' and the new comments' : ''} (console engine).`
      emit({ kind: 'text', text: summary })
      log('done')
      return { status: 'success', summary, sessionId, exitCode: 0, logPath: input.logPath, usage: { inputTokens: 0, outputTokens: 0 }, costUsd: 0 }
    },
  }
}
