/**
 * Failures are values with a code, a message that names the bad value, and a fix (invariant
 * "failures-explained"). ERRORS is the one table of codes: the exit code the CLI entry uses (0 ok,
 * 1 failure, 2 bad usage or config), whether another attempt can help, and the fix shown when
 * the thrower has no more specific one.
 */
interface ErrorSpec {
  exit: 1 | 2
  retryable: boolean
  fix?: string
}

export const ERRORS = {
  config_invalid: { exit: 2, retryable: false, fix: 'correct agents.yaml (the message names the key)' },
  config_missing: { exit: 2, retryable: false, fix: 'create agents.yaml (see agents.example.yaml) or pass --config' },
  usage: { exit: 2, retryable: false, fix: 'see --help' },
  home_unusable: { exit: 2, retryable: false, fix: 'point FACTORY_HOME at a writable directory' },
  state_corrupt: { exit: 1, retryable: false },
  state_locked: { exit: 1, retryable: true },
  // A full disk (or another write error): state.json and its .bak are kept as they were.
  state_write_failed: { exit: 1, retryable: true, fix: 'free disk space in FACTORY_HOME' },
  lock_held: { exit: 1, retryable: true },
  not_assigned: { exit: 1, retryable: false, fix: 'assign or delegate the issue to the agent user in Linear first' },
  tracker_unreachable: { exit: 1, retryable: true, fix: 'check LINEAR_API_URL and the network; the factory retries with backoff' },
  tracker_rate_limited: { exit: 1, retryable: true, fix: 'wait for the reset Linear gave; the factory waits on its own' },
  tracker_auth: { exit: 1, retryable: false, fix: "check the agent's Linear API key (tracker.token_env)" },
  tracker_error: { exit: 1, retryable: true },
  tracker_not_found: { exit: 1, retryable: false, fix: 'check the issue identifier and that the agent user can see it' },
  workspace_outside_root: { exit: 1, retryable: false },
  workspace_invalid_key: { exit: 1, retryable: false },
  git_failed: { exit: 1, retryable: true, fix: 'see the git message; check the repo URL, base branch and credentials' },
  // A human's commits on the issue's branch conflict with the factory's unpushed ones: a human decides.
  branch_diverged: { exit: 1, retryable: false },
  // The engine changed the repository's config, hooks or info/ (or the worktree's .git link): never pushed, never retried.
  worktree_tampered: {
    exit: 1,
    retryable: false,
    fix: 'a human checks what the engine did (its transcript); comment on the issue to run it again',
  },
  bootstrap_failed: { exit: 1, retryable: true },
  // The runtime provider's prepare failed, timed out or printed bad JSON: the engine did not start.
  runtime_prepare_failed: { exit: 1, retryable: true, fix: 'fix runtime.prepare in agents.yaml (the message quotes its stderr)' },
  // Logged only: cleanup of the closed issue goes on.
  runtime_teardown_failed: { exit: 1, retryable: false, fix: 'fix runtime.teardown in agents.yaml; tear the environment down by hand' },
  // No repos[].match rule takes the issue and the agent has no default entry: one comment says where each rule routes.
  repo_unmatched: {
    exit: 1,
    retryable: false,
    fix: 'give the issue a label, team or project a repos[].match rule names, then comment on it',
  },
  github_failed: { exit: 1, retryable: true, fix: 'check the GitHub token (FACTORY_GITHUB_TOKEN) and repo.github' },
  engine_missing: { exit: 1, retryable: false, fix: 'install the engine CLI on this machine (make engines) or set its bin in agents.yaml' },
  engine_failed: { exit: 1, retryable: true },
  engine_timeout: { exit: 1, retryable: false, fix: 'raise limits.timeout_minutes or split the issue' },
  engine_stalled: { exit: 1, retryable: true, fix: 'raise limits.stall_seconds if the engine legitimately works silently' },
  engine_cancelled: { exit: 1, retryable: false },
  run_failed: { exit: 1, retryable: true },
  limit_max_turns: { exit: 1, retryable: false, fix: 'raise limits.max_turns or split the issue' },
  limit_max_cost: { exit: 1, retryable: false, fix: 'raise limits.max_cost_usd or split the issue' },
  escalated: { exit: 1, retryable: false, fix: 'a human comment on the issue starts a new run' },
  // The relay: its env (LINEAR_CLIENT_ID, RELAY_ENCRYPTION_KEY, ...) is missing or malformed.
  // A secret is neither in the environment nor readable from GCP Secret Manager (the message names both).
  secret_unavailable: { exit: 2, retryable: false, fix: 'export the variable, or create the secret in the configured GCP project' },
  relay_config_invalid: { exit: 2, retryable: false, fix: 'set the relay variables the message names (README: the relay)' },
  // The relay could not get or keep a Linear app token (code exchange, refresh, client_credentials).
  relay_oauth_failed: {
    exit: 1,
    retryable: true,
    fix: 'see the message; if Linear refused the grant, reinstall the app via /oauth/authorize',
  },
  // A sealed token cannot be opened: the encryption key changed or the value was altered.
  relay_key_mismatch: {
    exit: 2,
    retryable: false,
    fix: 'restore the RELAY_ENCRYPTION_KEY (or encryption.key) the tokens were sealed with, or reinstall the app via /oauth/authorize',
  },
  // No usable install for a workspace: never installed, or Linear revoked it.
  relay_not_installed: { exit: 1, retryable: false, fix: 'install the Linear app in the workspace via /oauth/authorize' },
  relay_store_failed: {
    exit: 1,
    retryable: true,
    fix: 'check the queue path is writable (--local-queue) or the database is reachable (--queue-url / RELAY_DATABASE_URL)',
  },
  // retry/cancel/status --issue on a key state.json does not know (a bad argument: exit 2).
  issue_unknown: { exit: 2, retryable: false, fix: 'check the key: rose-factory status --all lists every issue on record' },
  // retry/cancel refused by the state machine for the issue's phase (the message says why and what to do).
  phase_conflict: { exit: 1, retryable: false },
  // systemctl/launchctl refused to load or start the service install-daemon wrote.
  daemon_failed: {
    exit: 1,
    retryable: false,
    fix: 'see the message; the unit file is written, fix the cause and run install-daemon again',
  },
  // A worker and its relay (lib/relay-client.ts): the worker token was refused (config, not retried).
  relay_auth: {
    exit: 1,
    retryable: false,
    fix: "set FACTORY_RELAY_WORKER_TOKEN (the agent's tracker.token_env) to one of the relay's worker tokens",
  },
  // The relay did not answer, timed out or failed (5xx): the worker polls again with backoff.
  relay_unreachable: { exit: 1, retryable: true, fix: 'check tracker.relay_url and that the relay runs (GET /healthz)' },
  // The relay refused a request (4xx) or answered something this worker cannot read.
  relay_refused: { exit: 1, retryable: false, fix: 'check tracker.relay_url points at a rose-factory relay of the same version' },
  // Linear refused a request as the caller's mistake (GraphQL `userError`, e.g. the agent session is gone): final, never retried.
  tracker_refused: { exit: 1, retryable: false, fix: 'nothing to retry: the agent session or its issue is gone or the input was refused' },
  internal: { exit: 1, retryable: true },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

/** True when `code` is one of ours (a string read back from state.json may be anything). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code)
}

/** Failures worth another attempt. Limits, a missing engine and bad config are not: they would fail the same way. */
export function isRetryable(code: string): boolean {
  return isErrorCode(code) ? ERRORS[code].retryable : true
}

export class FactoryError extends Error {
  readonly code: ErrorCode
  readonly fix?: string
  readonly details?: Record<string, unknown>
  constructor(code: ErrorCode, message: string, opts: { fix?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, { cause: opts.cause })
    this.name = 'FactoryError'
    this.code = code
    this.fix = opts.fix ?? (ERRORS[code] as ErrorSpec).fix
    this.details = opts.details
  }

  /** The exit code the CLI entry uses for this failure. */
  get exitCode(): 1 | 2 {
    return ERRORS[this.code].exit
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
