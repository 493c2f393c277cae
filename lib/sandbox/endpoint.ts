/**
 * One /graphql request, as Linear answers it: faults first, then auth, validation, complexity,
 * rate limits and execution. Returns what to send; the HTTP plumbing lives in server.ts.
 */
import { execute, GraphQLError, Kind, parse, specifiedRules, validate, type DocumentNode, type OperationDefinitionNode } from 'graphql'
import { estimateComplexity, MAX_COMPLEXITY } from './complexity.ts'
import { FaultInjector, RateLimiter, type RateLimits } from './faults.ts'
import { executableSchema, type SandboxContext } from './resolvers.ts'
import type { SandboxStore } from './store.ts'
import type { SandboxStats } from './types.ts'

export type Outcome =
  | { kind: 'json'; status: number; headers: Record<string, string>; body: unknown }
  | { kind: 'text'; status: number; headers: Record<string, string>; body: string }
  | { kind: 'hang'; ms: number }

export function emptyStats(): SandboxStats {
  return {
    requests: 0,
    queries: 0,
    mutations: 0,
    byOperation: {},
    complexity: { last: 0, max: 0, total: 0 },
    faultsInjected: 0,
    requestsDuringRateLimit: 0,
  }
}

function err(message: string, code: string, type: string, userPresentableMessage: string, extra: Record<string, unknown> = {}) {
  return { message, extensions: { code, type, userError: true, userPresentableMessage, ...extra } }
}

const AUTH_ERROR = err(
  'Authentication required, not authenticated',
  'AUTHENTICATION_ERROR',
  'authentication error',
  'You need to authenticate to access this operation.',
)

function formatErrors(errors: readonly GraphQLError[], code: string, type: string) {
  return errors.map((e) => ({ ...e.toJSON(), extensions: { code, type, userPresentableMessage: e.message, ...e.extensions } }))
}

export class GraphqlEndpoint {
  stats: SandboxStats = emptyStats()
  readonly faults = new FaultInjector()
  readonly limiter: RateLimiter

  constructor(
    private readonly store: SandboxStore,
    private readonly baseUrl: () => string,
    limits: RateLimits = {},
    /** Order of nested comment lists (Linear's docs do not say; clients must cope with either). */
    private readonly commentOrder: 'newest_first' | 'oldest_first' = 'newest_first',
  ) {
    this.limiter = new RateLimiter(limits)
  }

  private ratelimited(now: number, reset: number, limiterKey: string): Outcome {
    const headers = this.limiter.headers(limiterKey, now, null)
    headers['X-RateLimit-Requests-Remaining'] = '0'
    headers['X-RateLimit-Requests-Reset'] = String(reset)
    const e = err(
      'Rate limit exceeded',
      'RATELIMITED',
      'ratelimited',
      'You have exceeded the rate limit of the Linear API. Please try again later.',
      { retryAfterMs: Math.max(0, reset - now) },
    )
    return { kind: 'json', status: 400, headers, body: { errors: [e] } }
  }

  private count(doc: DocumentNode | null, operationName: string | undefined): OperationDefinitionNode | undefined {
    const ops = (doc?.definitions ?? []).filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined
    if (!op) return undefined
    if (op.operation === 'mutation') this.stats.mutations++
    else this.stats.queries++
    const name = op.name?.value ?? 'anonymous'
    this.stats.byOperation[name] = (this.stats.byOperation[name] ?? 0) + 1
    return op
  }

  /** Answer one POST /graphql with its JSON body (already parsed) and Authorization header. */
  handle(body: unknown, authorization: string | undefined): Outcome {
    this.stats.requests++
    const now = this.store.now()
    const req = (body && typeof body === 'object' ? body : {}) as { query?: unknown; variables?: unknown; operationName?: unknown }
    const key = (authorization ?? '').replace(/^Bearer\s+/i, '').trim()
    const viewer = this.store.userByApiKey(key)
    const limiterKey = viewer?.id ?? 'anonymous'
    const headers = (complexity: number | null) => this.limiter.headers(limiterKey, now, complexity)
    const bad = (status: number, errors: unknown[], complexity: number | null = null): Outcome => ({
      kind: 'json',
      status,
      headers: headers(complexity),
      body: { errors },
    })

    let doc: DocumentNode | null = null
    let parseError: GraphQLError | null = null
    if (typeof req.query !== 'string' || !req.query.trim()) {
      parseError = new GraphQLError('Must provide query string.')
    } else {
      try {
        doc = parse(req.query)
      } catch (e) {
        parseError = e instanceof GraphQLError ? e : new GraphQLError(String(e))
      }
    }
    const operationName = typeof req.operationName === 'string' ? req.operationName : undefined
    this.count(doc, operationName)

    // Faults: an open rate-limit window refuses everything, then injected faults.
    if (this.faults.blockedUntil > now) {
      this.stats.requestsDuringRateLimit++
      return this.ratelimited(now, this.faults.blockedUntil, limiterKey)
    }
    const fault = this.faults.next()
    if (fault) {
      this.stats.faultsInjected++
      if (fault === 'ratelimited') {
        this.faults.blockedUntil = now + this.faults.resetMs
        return this.ratelimited(now, this.faults.blockedUntil, limiterKey)
      }
      if (fault === '5xx')
        return { kind: 'text', status: 503, headers: headers(null), body: 'Service Unavailable (injected by the Linear sandbox)' }
      return { kind: 'hang', ms: this.faults.hangMs }
    }

    if (!viewer) return bad(400, [AUTH_ERROR])
    if (parseError) return bad(400, formatErrors([parseError], 'GRAPHQL_PARSE_FAILED', 'graphql error'))
    const schema = executableSchema()
    const validationErrors = validate(schema, doc!, specifiedRules)
    if (validationErrors.length) return bad(400, formatErrors(validationErrors, 'GRAPHQL_VALIDATION_FAILED', 'graphql error'))
    const variables = (req.variables && typeof req.variables === 'object' ? req.variables : {}) as Record<string, unknown>

    const complexity = Math.round(estimateComplexity(schema, doc!, variables, operationName))
    const c = this.stats.complexity
    c.last = complexity
    c.max = Math.max(c.max, complexity)
    c.total += complexity
    if (complexity > MAX_COMPLEXITY) {
      const message = `Query too complex: its complexity is ${complexity}, the maximum is ${MAX_COMPLEXITY}. Request fewer items per page (first/last) or fewer nested connections.`
      return bad(
        400,
        [err(message, 'QUERY_TOO_COMPLEX', 'invalid input', message, { complexity, maxComplexity: MAX_COMPLEXITY })],
        complexity,
      )
    }
    if (!this.limiter.consume(limiterKey, complexity, now)) {
      this.stats.requestsDuringRateLimit++
      return this.ratelimited(now, this.limiter.bucket(limiterKey, now).reset, limiterKey)
    }

    const context: SandboxContext = { store: this.store, viewer, baseUrl: this.baseUrl(), now, commentOrder: this.commentOrder }
    const result = execute({ schema, document: doc!, variableValues: variables, operationName, contextValue: context })
    if (result instanceof Promise) throw new Error('sandbox resolvers must be synchronous')
    // Variables that do not fit their types are rejected before execution, like a validation error.
    if (!('data' in result) || result.data === undefined) {
      return bad(400, formatErrors(result.errors ?? [], 'BAD_USER_INPUT', 'invalid input'), complexity)
    }
    const errors = result.errors?.map((e) => {
      const json = e.toJSON()
      if (e.originalError && !(e.originalError instanceof GraphQLError)) {
        return {
          ...json,
          message: `Internal sandbox error: ${e.message}`,
          extensions: { code: 'INTERNAL_SERVER_ERROR', type: 'internal error', userPresentableMessage: 'Internal error' },
        }
      }
      return json
    })
    return { kind: 'json', status: 200, headers: headers(complexity), body: errors ? { data: result.data, errors } : { data: result.data } }
  }
}
