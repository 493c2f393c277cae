/** Fault injection and Linear-like rate limits for the sandbox's /graphql endpoint. */
import { SandboxError, type FaultKind, type SandboxFaults } from './types.ts'

export const FAULT_KINDS: readonly FaultKind[] = ['ratelimited', '5xx', 'timeout']
const DEFAULT_KINDS: FaultKind[] = ['ratelimited', '5xx']
const FAULT_KEYS = ['rate', 'kinds', 'resetMs', 'latencyMs', 'hangMs', 'failNext', 'seed'] as const

/** mulberry32: a tiny deterministic PRNG in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Check a faults object (from the API, the admin endpoint or the CLI), naming the bad field. */
export function parseFaults(input: unknown): SandboxFaults {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new SandboxError('invalid_input', 'faults must be a JSON object such as {"rate":0.2,"kinds":["5xx"]}', 'faults')
  const f = input as Record<string, unknown>
  for (const key of Object.keys(f)) {
    if (!(FAULT_KEYS as readonly string[]).includes(key))
      throw new SandboxError('invalid_input', `unknown faults field "${key}" (known: ${FAULT_KEYS.join(', ')})`, key)
  }
  const num = (key: (typeof FAULT_KEYS)[number], min: number, max = Number.MAX_SAFE_INTEGER, int = true) => {
    const v = f[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) {
      throw new SandboxError(
        'invalid_input',
        `faults.${key} must be ${int ? 'an integer' : 'a number'} from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'any' : max}, got ${JSON.stringify(v)}`,
        key,
      )
    }
    return v
  }
  let kinds: FaultKind[] | undefined
  if (f.kinds !== undefined && f.kinds !== null) {
    if (!Array.isArray(f.kinds) || f.kinds.length === 0)
      throw new SandboxError('invalid_input', `faults.kinds must be a non-empty list of ${FAULT_KINDS.join(', ')}`, 'kinds')
    for (const k of f.kinds) {
      if (!FAULT_KINDS.includes(k as FaultKind))
        throw new SandboxError('invalid_input', `faults.kinds: unknown kind ${JSON.stringify(k)} (use ${FAULT_KINDS.join(', ')})`, 'kinds')
    }
    kinds = f.kinds as FaultKind[]
  }
  const out: SandboxFaults = {
    rate: num('rate', 0, 1, false),
    kinds,
    resetMs: num('resetMs', 0),
    latencyMs: num('latencyMs', 0),
    hangMs: num('hangMs', 0),
    failNext: num('failNext', 0),
    seed: num('seed', 0),
  }
  for (const key of Object.keys(out) as (keyof SandboxFaults)[]) if (out[key] === undefined) delete out[key]
  return out
}

export class FaultInjector {
  private config: SandboxFaults = {}
  private remaining = 0
  private turn = 0
  private random: () => number = Math.random
  /** Epoch ms until which every request is refused as rate limited (after a ratelimited fault). */
  blockedUntil = 0

  /** Replace the configuration (`{}` turns faults off); also closes an open rate-limit window. */
  set(faults: SandboxFaults): SandboxFaults {
    this.config = parseFaults(faults)
    this.remaining = this.config.failNext ?? 0
    this.turn = 0
    this.random = this.config.seed === undefined ? Math.random : prng(this.config.seed)
    this.blockedUntil = 0
    return this.current()
  }

  /** The active configuration, with failNext counting down. */
  current(): SandboxFaults {
    return { ...this.config, ...(this.config.failNext !== undefined ? { failNext: this.remaining } : {}) }
  }

  get latencyMs(): number {
    return this.config.latencyMs ?? 0
  }

  get resetMs(): number {
    return this.config.resetMs ?? 1000
  }

  get hangMs(): number {
    return this.config.hangMs ?? 30_000
  }

  /** The fault for the next request, or null. */
  next(): FaultKind | null {
    const kinds = this.config.kinds ?? DEFAULT_KINDS
    if (this.remaining > 0) {
      this.remaining--
      return kinds[this.turn++ % kinds.length]!
    }
    const rate = this.config.rate ?? 0
    if (rate > 0 && this.random() < rate) return kinds[Math.floor(this.random() * kinds.length) % kinds.length]!
    return null
  }
}

export interface RateLimits {
  /** Requests per window per user (default 2,500, an API key's hourly budget). */
  requests?: number
  /** Complexity points per window per user (default 3,000,000). */
  complexity?: number
  /** Window length in ms (default one hour). */
  windowMs?: number
}

interface Bucket {
  reset: number
  requests: number
  complexity: number
}

/** Linear's per-user budgets: fixed windows of requests and complexity points. */
export class RateLimiter {
  readonly requestLimit: number
  readonly complexityLimit: number
  readonly windowMs: number
  private buckets = new Map<string, Bucket>()

  constructor(limits: RateLimits = {}) {
    this.requestLimit = limits.requests ?? 2500
    this.complexityLimit = limits.complexity ?? 3_000_000
    this.windowMs = limits.windowMs ?? 3_600_000
  }

  bucket(key: string, now: number): Bucket {
    let b = this.buckets.get(key)
    if (!b || b.reset <= now) {
      b = { reset: now + this.windowMs, requests: this.requestLimit, complexity: this.complexityLimit }
      this.buckets.set(key, b)
    }
    return b
  }

  /** Spend one request and `complexity` points; false when the budget is already spent. */
  consume(key: string, complexity: number, now: number): boolean {
    const b = this.bucket(key, now)
    if (b.requests <= 0 || b.complexity < complexity) return false
    b.requests--
    b.complexity -= complexity
    return true
  }

  headers(key: string, now: number, complexity: number | null): Record<string, string> {
    const b = this.bucket(key, now)
    return {
      'X-RateLimit-Requests-Limit': String(this.requestLimit),
      'X-RateLimit-Requests-Remaining': String(Math.max(0, b.requests)),
      'X-RateLimit-Requests-Reset': String(b.reset),
      'X-Complexity': String(complexity ?? 0),
      'X-RateLimit-Complexity-Limit': String(this.complexityLimit),
      'X-RateLimit-Complexity-Remaining': String(Math.max(0, b.complexity)),
      'X-RateLimit-Complexity-Reset': String(b.reset),
    }
  }
}
