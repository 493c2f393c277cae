/**
 * The sandbox serves a strict subset of Linear's schema: every type, field, argument, input
 * field and enum value exists in Linear's real schema with the identical type.
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isNonNullType,
  isObjectType,
  isScalarType,
  isSpecifiedScalarType,
  isUnionType,
  type GraphQLNamedType,
  type GraphQLSchema,
} from 'graphql'
import { SANDBOX_SDL } from '../lib/sandbox/sdl.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const realPath = resolve(root, process.env.LINEAR_SCHEMA ?? '../shared/linear/schema.graphql')
const haveReal = existsSync(realPath)
const why = haveReal ? '' : ` (skipped: Linear's schema is not at ${realPath}; set LINEAR_SCHEMA)`

interface SubsetReport {
  problems: string[]
  counts: { types: number; fields: number; args: number; inputFields: number; enumValues: number }
}

const kind = (t: GraphQLNamedType) =>
  isObjectType(t)
    ? 'type'
    : isInterfaceType(t)
      ? 'interface'
      : isInputObjectType(t)
        ? 'input'
        : isEnumType(t)
          ? 'enum'
          : isScalarType(t)
            ? 'scalar'
            : isUnionType(t)
              ? 'union'
              : 'unknown'

/** Every named thing `sub` declares must exist in `full` with the same kind and type. */
function checkSubset(sub: GraphQLSchema, full: GraphQLSchema): SubsetReport {
  const problems: string[] = []
  const counts = { types: 0, fields: 0, args: 0, inputFields: 0, enumValues: 0 }
  for (const op of ['getQueryType', 'getMutationType', 'getSubscriptionType'] as const) {
    const a = sub[op]()?.name
    if (a && a !== full[op]()?.name) problems.push(`root ${op.slice(3)} is ${a}, Linear's is ${full[op]()?.name}`)
  }
  for (const type of Object.values(sub.getTypeMap())) {
    if (type.name.startsWith('__') || isSpecifiedScalarType(type)) continue
    counts.types++
    const other = full.getType(type.name)
    if (!other) {
      problems.push(`type ${type.name} does not exist in Linear's schema`)
      continue
    }
    if (kind(type) !== kind(other)) {
      problems.push(`${type.name} is a ${kind(type)}, Linear's is a ${kind(other)}`)
      continue
    }
    if ((isObjectType(type) || isInterfaceType(type)) && (isObjectType(other) || isInterfaceType(other))) {
      const otherIfaces = other.getInterfaces().map((i) => i.name)
      for (const i of type.getInterfaces())
        if (!otherIfaces.includes(i.name)) problems.push(`${type.name} implements ${i.name}, Linear's does not`)
      const otherFields = other.getFields()
      for (const field of Object.values(type.getFields())) {
        counts.fields++
        const of = otherFields[field.name]
        if (!of) {
          problems.push(`${type.name}.${field.name} does not exist in Linear's schema`)
          continue
        }
        if (String(field.type) !== String(of.type)) problems.push(`${type.name}.${field.name} is ${field.type}, Linear's is ${of.type}`)
        for (const arg of field.args) {
          counts.args++
          const oa = of.args.find((x) => x.name === arg.name)
          if (!oa) problems.push(`${type.name}.${field.name}(${arg.name}) does not exist in Linear's schema`)
          else if (String(arg.type) !== String(oa.type))
            problems.push(`${type.name}.${field.name}(${arg.name}) is ${arg.type}, Linear's is ${oa.type}`)
        }
        for (const oa of of.args) {
          if (isNonNullType(oa.type) && oa.defaultValue === undefined && !field.args.some((x) => x.name === oa.name)) {
            problems.push(`${type.name}.${field.name} lacks Linear's required argument ${oa.name}: ${oa.type}`)
          }
        }
      }
    }
    if (isInputObjectType(type) && isInputObjectType(other)) {
      const otherFields = other.getFields()
      for (const field of Object.values(type.getFields())) {
        counts.inputFields++
        const of = otherFields[field.name]
        if (!of) problems.push(`input ${type.name}.${field.name} does not exist in Linear's schema`)
        else if (String(field.type) !== String(of.type))
          problems.push(`input ${type.name}.${field.name} is ${field.type}, Linear's is ${of.type}`)
      }
      for (const of of Object.values(otherFields)) {
        if (isNonNullType(of.type) && of.defaultValue === undefined && !type.getFields()[of.name]) {
          problems.push(`input ${type.name} lacks Linear's required field ${of.name}: ${of.type}`)
        }
      }
    }
    if (isEnumType(type) && isEnumType(other)) {
      const values = other.getValues().map((v) => v.name)
      for (const v of type.getValues()) {
        counts.enumValues++
        if (!values.includes(v.name)) problems.push(`enum ${type.name}.${v.name} does not exist in Linear's schema`)
      }
    }
  }
  return { problems, counts }
}

describe("the sandbox's schema", () => {
  const sandbox = buildSchema(SANDBOX_SDL)

  test.skipIf(!haveReal)(
    `declares only types, fields, arguments, input fields and enum values Linear has, with identical types${why}`,
    () => {
      const report = checkSubset(sandbox, buildSchema(readFileSync(realPath, 'utf8')))
      const c = report.counts
      console.log(
        `checked against ${realPath}: ${c.types} types, ${c.fields} fields, ${c.args} arguments, ${c.inputFields} input fields, ${c.enumValues} enum values`,
      )
      expect(report.problems).toEqual([])
      expect(c.types).toBeGreaterThan(40)
      expect(c.fields).toBeGreaterThan(100)
    },
  )

  test.skipIf(!haveReal)(
    `a deliberately altered copy is caught: wrong type, nullability, list, unknown field, argument and enum value${why}`,
    () => {
      const real = buildSchema(readFileSync(realPath, 'utf8'))
      const alterations: [string, string, string][] = [
        ['  number: Float!', '  number: Int!', 'Issue.number is Int!'],
        ['  identifier: String!', '  identifier: String', 'Issue.identifier is String'],
        ['  labelIds: [String!]!', '  labelIds: [String]!', 'Issue.labelIds is [String]!'],
        ['  priority: Int\n', '  priority: Float\n', 'input IssueUpdateInput.priority is Float'],
        ['  branchName: String!', '  branchName: String!\n  sandboxOnly: String', 'Issue.sandboxOnly does not exist'],
        ['issue(id: String!): Issue!', 'issue(id: String!, sandboxOnly: Int): Issue!', 'Query.issue(sandboxOnly) does not exist'],
        ['  updatedAt\n}', '  updatedAt\n  sandboxOnly\n}', 'enum PaginationOrderBy.sandboxOnly does not exist'],
        [
          'issueUpdate(id: String!, input: IssueUpdateInput!)',
          'issueUpdate(input: IssueUpdateInput!)',
          "lacks Linear's required argument id",
        ],
      ]
      for (const [from, to, expected] of alterations) {
        expect(SANDBOX_SDL).toContain(from)
        const altered = buildSchema(SANDBOX_SDL.replace(from, to))
        const { problems } = checkSubset(altered, real)
        expect(problems.join('\n')).toContain(expected)
      }
    },
  )

  test('the checker itself catches a changed type against a small stand-in schema', () => {
    const full = buildSchema('type Query { a(x: Int!): String! b: [Int!] } input I { p: Int q: String! } enum E { X Y }')
    expect(
      checkSubset(buildSchema('type Query { a(x: Int!): String! } input I { p: Int q: String! } enum E { X }'), full).problems,
    ).toEqual([])
    const bad = buildSchema('type Query { a(x: Int!): String b: [Int] c: Int } input I { p: Float } enum E { Z }')
    expect(checkSubset(bad, full).problems).toEqual([
      "Query.a is String, Linear's is String!",
      "Query.b is [Int], Linear's is [Int!]",
      "Query.c does not exist in Linear's schema",
      "input I.p is Float, Linear's is Int",
      "input I lacks Linear's required field q: String!",
      "enum E.Z does not exist in Linear's schema",
    ])
  })
})
