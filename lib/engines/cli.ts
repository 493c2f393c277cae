/**
 * What the Claude and Codex adapters share: run the CLI through proc.run, write the transcript,
 * feed stdout lines to the engine's parser, watch for stalls, and map the end to an EngineResult.
 *
 * Transcript format (one line each): stdout lines verbatim; `[stderr] ...`; `[debug] ...` for a
 * line of a type we do not know; `[malformed] ...` for one we could not parse; `[rose] ...` notes.
 * A resumed run (after a stop or a crash) appends to its transcript below a `[rose] ----` line.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { FactoryError } from '../errors.ts'
import { run, type RunResult } from '../proc.ts'
import { scrubEnv } from '../secrets.ts'
import { newRunTag, reapTagged, RUN_TAG_ENV } from './reap.ts'
import { prepareIsolation } from './isolate.ts'
import { INSTALL_FIX, resolveEngineBin } from './resolve.ts'
import type { EngineEvent, EngineName, EngineResult, EngineRunInput, EngineUsage } from './types.ts'

/** What a parser made of one stdout line. `noise` is output that is not progress (retry notices). */
export type LineKind = 'progress' | 'noise' | 'unknown' | 'malformed' | 'blank'

/** What the run amounted to, as far as the engine's own output tells. */
export interface Outcome {
  /** The engine printed its final line (Claude `result`, Codex `turn.completed` / `turn.failed`). */
  finished: boolean
  /** The engine's own report of failure (is_error result, turn.failed). */
  failure?: string
  /** The final assistant text. */
  summary?: string
  sessionId?: string
  usage?: EngineUsage
  costUsd?: number
  /** The latest error-ish text seen (retry notices...), to explain a kill or a bare exit code. */
  lastError?: string
}

/** An engine's line parser: acts on each stdout line (events) and sums the run up at the end. */
export interface LineHandler {
  line(raw: string): { kind: LineKind; note?: string }
  outcome(): Outcome
}

export interface EngineSpawn {
  name: Exclude<EngineName, 'console'>
  argv: string[]
  /** Env additions on top of input.env (quiet / offline switches). */
  env: Record<string, string>
  /** Texts handed to the CLI on fds 3, 4, ... (proc.run `fds`): credentials it reads from an fd. */
  fds?: string[]
  input: EngineRunInput
  handler: LineHandler
  killGraceMs?: number
  /** Lines for the transcript (the isolation in force). */
  notes?: string[]
}

/** Wrap input.onEvent so a throwing listener can never break a run. */
export function emitter(input: EngineRunInput): (event: EngineEvent) => void {
  return (event) => {
    try {
      input.onEvent?.(event)
    } catch {}
  }
}

/** The result for an engine whose binary cannot be found (a value, never a throw). */
export function missingResult(err: FactoryError, logPath: string): EngineResult {
  const summary = `${err.message}${err.fix ? `. Fix: ${err.fix}` : ''}`
  return { status: 'failed', summary, exitCode: null, logPath, errorCode: 'engine_missing', malformedLines: 0 }
}

/**
 * Open a run's transcript for another attempt: a resumed run (after Ctrl-C, SIGTERM or a crash)
 * keeps the run number and so the file; the interrupted attempt's lines stay, and a separator
 * marks where the new attempt starts. Throws when the directory cannot be made.
 */
export function continueTranscript(logPath: string, now = new Date()): void {
  mkdirSync(dirname(logPath), { recursive: true })
  let size = 0
  try {
    size = statSync(logPath).size
  } catch {}
  if (size > 0) appendFileSync(logPath, `[rose] ---- ${now.toISOString()} resumed: a new attempt of this run starts here; the interrupted one is above ----\n`)
}

/** Find the CLI (`configured`, env, PATH, engines/) and run what `spawn(bin)` describes; a missing binary is an engine_missing result, not a throw. */
export async function runEngineCli(
  name: EngineSpawn['name'],
  configured: string | undefined,
  input: EngineRunInput,
  spawn: (bin: string, isolated: boolean) => Omit<EngineSpawn, 'name' | 'input'>,
  opts: { readOnlyWorktree?: boolean } = {},
): Promise<EngineResult> {
  let bin: string
  let iso: ReturnType<typeof prepareIsolation>
  try {
    bin = resolveEngineBin(name, configured)
    iso = input.isolation ? prepareIsolation(input.isolation, name, input.cwd, bin, input.env, opts) : { argvPrefix: [], notes: [] }
  } catch (err) {
    if (err instanceof FactoryError && err.code === 'engine_missing') return missingResult(err, input.logPath)
    const summary = `cannot prepare the engine's isolation: ${(err as Error).message}`
    return { status: 'failed', summary, exitCode: null, logPath: input.logPath, errorCode: 'engine_failed', malformedLines: 0 }
  }
  const spec = spawn(iso.bin ?? bin, iso.argvPrefix.length > 0)
  // Under `namespace` the engine's argv runs inside bwrap (lib/engines/isolate.ts).
  return runEngine({ name, input, ...spec, argv: [...iso.argvPrefix, ...spec.argv], notes: iso.notes })
}

/** Run the engine CLI to its end (or kill) and return the EngineResult; never throws. */
export async function runEngine(spec: EngineSpawn): Promise<EngineResult> {
  const { input, handler } = spec
  const emit = emitter(input)
  let fd: number
  try {
    continueTranscript(input.logPath)
    fd = openSync(input.logPath, 'a')
  } catch (err) {
    const summary = `cannot write the transcript to ${input.logPath}: ${(err as Error).message}`
    return { status: 'failed', summary, exitCode: null, logPath: input.logPath, errorCode: 'engine_failed', malformedLines: 0 }
  }
  const write = (line: string) => {
    try {
      writeSync(fd, `${line}\n`)
    } catch {}
  }
  write(`[rose] ${new Date().toISOString()} ${spec.name} argv ${JSON.stringify(spec.argv)}`)
  for (const note of spec.notes ?? []) write(`[rose] ${note}`)

  // Our own stall watchdog counts progress, not bytes: a CLI that only prints "reconnecting..."
  // forever (Codex with its server gone) is stalled even though proc.run sees output.
  const watchdog = new AbortController()
  let stalled = false
  let lastProgress = Date.now()
  let timer: ReturnType<typeof setTimeout> | undefined
  const arm = (ms: number) => {
    timer = setTimeout(() => {
      const idle = Date.now() - lastProgress
      if (idle < input.stallMs) return arm(input.stallMs - idle)
      stalled = true
      watchdog.abort()
    }, ms)
  }
  const signal = input.signal ? AbortSignal.any([input.signal, watchdog.signal]) : watchdog.signal

  // If a straggler that escaped the group holds our stdout open, proc.run never sees 'close':
  // once a kill is due and its grace has passed, kill the tagged processes too.
  const tag = newRunTag()
  const grace = (spec.killGraceMs ?? 2000) + 1000
  const backstops: ReturnType<typeof setTimeout>[] = []
  const backstop = (afterMs: number) => backstops.push(setTimeout(() => reapTagged(tag), afterMs))
  const onAbort = () => backstop(grace)
  signal.addEventListener('abort', onAbort, { once: true })
  const stopTimers = () => {
    clearTimeout(timer)
    backstops.forEach(clearTimeout)
    signal.removeEventListener('abort', onAbort)
  }
  if (input.timeoutMs > 0) backstop(input.timeoutMs + grace)
  if (input.stallMs > 0) arm(input.stallMs)

  let malformed = 0
  const stderrTail: string[] = []
  let res: RunResult
  try {
    res = await run(spec.argv, {
      cwd: input.cwd,
      // Defence in depth for invariant "no-secrets-in-reach": the caller scrubbed already; scrub again by the list.
      env: { ...scrubEnv(input.env), ...spec.env, [RUN_TAG_ENV]: tag },
      stallMs: input.stallMs,
      timeoutMs: input.timeoutMs,
      signal,
      killGraceMs: spec.killGraceMs,
      fds: spec.fds,
      onLine: (raw) => {
        let parsed: { kind: LineKind; note?: string }
        try {
          parsed = handler.line(raw)
        } catch (err) {
          parsed = { kind: 'malformed', note: `parser error: ${(err as Error).message}` }
        }
        if (parsed.kind === 'malformed') {
          malformed++
          write(`[malformed] ${parsed.note ?? ''}: ${raw}`)
        } else if (parsed.kind === 'unknown') write(`[debug] ${raw}`)
        else if (parsed.kind !== 'blank') write(raw)
        if (parsed.kind !== 'noise') lastProgress = Date.now()
      },
      onErrLine: (line) => {
        lastProgress = Date.now()
        write(`[stderr] ${line}`)
        if (line.trim()) stderrTail.push(line.trim())
        if (stderrTail.length > 5) stderrTail.shift()
      },
    })
  } catch (err) {
    stopTimers()
    const fe = err instanceof FactoryError ? err : new FactoryError('internal', String((err as Error)?.message ?? err))
    write(`[rose] ${fe.code}: ${fe.message}`)
    closeSync(fd)
    if (fe.code === 'engine_missing') return missingResult(new FactoryError('engine_missing', fe.message, { fix: INSTALL_FIX[spec.name] }), input.logPath)
    return { status: 'failed', summary: fe.message, exitCode: null, logPath: input.logPath, errorCode: 'engine_failed', malformedLines: malformed }
  }
  stopTimers()
  const reaped = reapTagged(tag)
  if (reaped.length) write(`[rose] killed ${reaped.length} leftover process(es) of this run: ${reaped.join(' ')}`)

  const out = handler.outcome()
  const base = {
    sessionId: out.sessionId,
    usage: out.usage,
    costUsd: out.costUsd,
    exitCode: res.exitCode,
    logPath: input.logPath,
    malformedLines: malformed,
  }
  const why = out.lastError ? ` (last error: ${out.lastError})` : ''
  let result: EngineResult
  if (stalled || res.killed === 'stall') {
    result = { ...base, status: 'stalled', errorCode: 'engine_stalled', summary: `${spec.name} made no progress for ${input.stallMs} ms and was killed${why}` }
  } else if (res.killed === 'timeout') {
    result = { ...base, status: 'timeout', errorCode: 'engine_timeout', summary: `${spec.name} ran longer than ${input.timeoutMs} ms and was killed${why}` }
  } else if (res.killed === 'abort') {
    result = { ...base, status: 'cancelled', errorCode: 'engine_cancelled', summary: `${spec.name} run cancelled` }
  } else if (out.failure !== undefined || res.exitCode !== 0 || !out.finished) {
    // Prefer stderr lines that look like errors over warnings and chatter printed before them.
    const errLines = stderrTail.filter((l) => /error|fatal|panic/i.test(l))
    const detail = out.failure ?? out.lastError ?? (errLines.length ? errLines : stderrTail).join(' | ')
    const summary = detail || (res.exitCode !== 0 ? `${spec.name} exited with code ${res.exitCode ?? res.signal}` : `${spec.name} ended without a final result`)
    result = { ...base, status: 'failed', errorCode: 'engine_failed', summary }
  } else {
    result = { ...base, status: 'success', summary: out.summary ?? '' }
  }
  // The parser already emitted the engine's own failure; every other way of failing is ours to tell.
  if (result.status !== 'success' && out.failure === undefined) emit({ kind: 'error', message: result.summary })
  write(`[rose] end status=${result.status} exit=${res.exitCode ?? res.signal} killed=${res.killed ?? (stalled ? 'stall' : 'no')} pid=${res.pid} ${res.durationMs}ms malformed=${malformed}`)
  closeSync(fd)
  return result
}
