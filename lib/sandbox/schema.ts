/**
 * The sandbox's executable GraphQL schema, built from SANDBOX_SDL (lib/sandbox/sdl.ts: a subset of
 * Linear's public schema, proven by test/sandbox-schema.test.ts), with Linear's input-side scalar
 * checks.
 */
import { buildSchema, GraphQLError, GraphQLScalarType, Kind, type GraphQLSchema } from 'graphql'
import { parseDateTimeOrDuration } from './filter.ts'
import { SANDBOX_SDL } from './sdl.ts'

function invalid(message: string): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code: 'INVALID_INPUT', type: 'invalid input', userPresentableMessage: message },
  })
}

/** Input-side scalar checks: a bad DateTimeOrDuration fails at validation, naming the value. */
function patchScalars(schema: GraphQLSchema): void {
  const dod = schema.getType('DateTimeOrDuration') as GraphQLScalarType
  dod.parseValue = (value: unknown) => {
    if (typeof value !== 'string' || parseDateTimeOrDuration(value, 0) === null) {
      throw invalid(
        `Invalid DateTimeOrDuration ${JSON.stringify(value)}: use an ISO date (2024-05-01T12:00:00Z) or an ISO-8601 duration relative to now (-PT15M, -P1D)`,
      )
    }
    return value
  }
  dod.parseLiteral = (ast) => {
    if (ast.kind !== Kind.STRING) throw invalid('DateTimeOrDuration must be a string')
    return dod.parseValue(ast.value)
  }
  for (const name of ['JSONObject', 'JSON']) (schema.getType(name) as GraphQLScalarType).serialize = (value: unknown) => value
}

let cached: GraphQLSchema | undefined

/** The sandbox's executable schema (resolvers are attached by lib/sandbox/resolvers.ts). */
export function sandboxSchema(): GraphQLSchema {
  if (!cached) {
    cached = buildSchema(SANDBOX_SDL)
    patchScalars(cached)
  }
  return cached
}

/** A fresh, resolver-less schema from the SDL (for schema tests). */
export function buildSandboxSdlSchema(): GraphQLSchema {
  return buildSchema(SANDBOX_SDL)
}
