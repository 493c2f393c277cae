/**
 * Failures are values with a code, a message that names the bad value, and a fix.
 * Only the CLI entry turns them into exit codes (0 ok, 1 failure, 2 usage/config).
 */
export type ErrorCode =
  | 'config_invalid'
  | 'config_missing'
  | 'usage'
  | 'state_corrupt'
  | 'state_locked'
  | 'lock_held'
  | 'tracker_unreachable'
  | 'tracker_rate_limited'
  | 'tracker_auth'
  | 'tracker_error'
  | 'tracker_not_found'
  | 'workspace_outside_root'
  | 'workspace_invalid_key'
  | 'git_failed'
  | 'bootstrap_failed'
  | 'github_failed'
  | 'engine_missing'
  | 'engine_failed'
  | 'engine_timeout'
  | 'engine_stalled'
  | 'engine_cancelled'
  | 'run_failed'
  | 'limit_max_turns'
  | 'limit_max_cost'
  | 'escalated'
  | 'internal'

const USAGE_CODES = new Set<ErrorCode>(['config_invalid', 'config_missing', 'usage'])

export class FactoryError extends Error {
  readonly code: ErrorCode
  readonly fix?: string
  readonly details?: Record<string, unknown>
  constructor(code: ErrorCode, message: string, opts: { fix?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, { cause: opts.cause })
    this.name = 'FactoryError'
    this.code = code
    this.fix = opts.fix
    this.details = opts.details
  }

  /** The exit code the CLI entry uses for this failure. */
  get exitCode(): 1 | 2 {
    return USAGE_CODES.has(this.code) ? 2 : 1
  }

  /** One or two lines for a human: `code: message` then `fix: ...`. */
  describe(): string {
    return `${this.code}: ${this.message}${this.fix ? `\n  fix: ${this.fix}` : ''}`
  }

  toJSON() {
    return { code: this.code, message: this.message, fix: this.fix }
  }
}

/** Wrap anything thrown into a FactoryError (unknown errors become `internal`). */
export function asFactoryError(err: unknown, code: ErrorCode = 'internal'): FactoryError {
  if (err instanceof FactoryError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new FactoryError(code, message, { cause: err })
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: FactoryError }

/** Run `fn`, returning its value or its failure as a value. */
export async function attempt<T>(fn: () => Promise<T>, code: ErrorCode = 'internal'): Promise<Result<T>> {
  try {
    return { ok: true, value: await fn() }
  } catch (err) {
    return { ok: false, error: asFactoryError(err, code) }
  }
}
