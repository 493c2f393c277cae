/** Fault injection and Linear-like rate limits for the sandbox's /graphql endpoint. */
import { z } from '../zod.ts'
import { SandboxError, type FaultKind, type SandboxFaults } from './types.ts'

export const FAULT_KINDS: readonly FaultKind[] = ['ratelimited', '5xx', 'timeout']
const DEFAULT_KINDS: FaultKind[] = ['ratelimited', '5xx']

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

const int = (min: number) => z.number().int().min(min)
/** The fault knobs; an unknown key is an error that names it. */
const faultsSchema = z.strictObject({
  rate: z.number().min(0).max(1).optional(),
  kinds: z
    .array(z.enum(FAULT_KINDS as [FaultKind, ...FaultKind[]]))
    .min(1)
    .optional(),
  resetMs: int(0).optional(),
  latencyMs: int(0).optional(),
  hangMs: int(0).optional(),
  failNext: int(0).optional(),
  seed: int(0).optional(),
})

/** Check a faults object (from the API, the admin endpoint or the CLI), naming the bad field. */
export function parseFaults(input: unknown): SandboxFaults {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new SandboxError('invalid_input', 'faults must be a JSON object such as {"rate":0.2,"kinds":["5xx"]}', 'faults')
  // null means "not set" (the CLI passes absent flags as null).
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined))
  const parsed = faultsSchema.safeParse(given)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!
    throw new SandboxError('invalid_input', `unknown faults field "${key}" (known: ${Object.keys(faultsSchema.shape).join(', ')})`, key)
  }
  const field = String(issue.path[0] ?? 'faults')
  const got = issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown>)?.[k as PropertyKey], given)
  throw new SandboxError('invalid_input', `faults.${issue.path.join('.')}: ${issue.message}, got ${JSON.stringify(got)}`, field)
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
