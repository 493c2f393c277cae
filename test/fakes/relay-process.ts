/**
 * A real relay process (`bun scripts/relay.ts`) for tests and benches: started on a free port,
 * its URL read from its "listening on" line, stopped with SIGTERM or killed with SIGKILL.
 */
import { type Subprocess, spawn } from 'bun'
import { fileURLToPath } from 'node:url'
import { WEBHOOK_SECRET, WORKER_TOKEN } from './webhooks.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bun = `${root}/node_modules/.bin/bun`

export interface RelayProcess {
  url: string
  proc: Subprocess
  /** Everything it printed so far. */
  output(): string
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<number | null>
}

/**
 * Start `relay` with the test secrets and `args` (e.g. --local-queue PATH); resolves once it listens.
 * `port` 0 (the default) picks a free one; a given port starts it again where a killed one listened.
 */
export async function spawnRelay(args: string[], env: Record<string, string> = {}, opts: { port?: number } = {}): Promise<RelayProcess> {
  const proc = spawn([bun, `${root}/scripts/relay.ts`, '--port', String(opts.port ?? 0), ...args], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      LINEAR_WEBHOOK_SECRET: WEBHOOK_SECRET,
      FACTORY_RELAY_WORKER_TOKEN: WORKER_TOKEN,
      NO_COLOR: '1',
      ...env,
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let text = ''
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true })
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  const deadline = Date.now() + 20_000
  for (;;) {
    const m = text.match(/listening on (http:\/\/[\d.]+:\d+)/)
    if (m) {
      return {
        url: m[1]!,
        proc,
        output: () => text,
        async stop(signal = 'SIGTERM') {
          proc.kill(signal)
          return proc.exited
        },
      }
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`relay did not start (exit ${proc.exitCode}):\n${text}`)
    }
    await Bun.sleep(20)
  }
}
