/**
 * Crash points for the crash-matrix tests: when ROSE_CRASH_AT names a point the run reaches,
 * the process kill -9s itself (and, with ROSE_CRASH_KILL_PARENT=1, the driver that started it)
 * exactly there. Unset in normal use; nothing else reads these variables.
 */
export const CRASH_POINTS = [
  'after_claim',
  'during_bootstrap',
  'during_engine',
  'after_commit',
  'after_push',
  'after_pr',
  'after_comment',
] as const
export type CrashPoint = (typeof CRASH_POINTS)[number]

/** Die here, now, if the environment asks for it. */
export function crashPoint(point: CrashPoint, env: NodeJS.ProcessEnv = process.env): void {
  if (env.ROSE_CRASH_AT !== point) return
  process.stderr.write(`[crash] ROSE_CRASH_AT=${point}: kill -9 now\n`)
  if (env.ROSE_CRASH_KILL_PARENT === '1') {
    try {
      process.kill(process.ppid, 'SIGKILL')
    } catch {}
  }
  process.kill(process.pid, 'SIGKILL')
}
