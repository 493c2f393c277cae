/**
 * Every GraphQL document the factory sends validates against Linear's real schema and against
 * the sandbox's schema (so the sandbox serves all of it), and the poll stays under the
 * 10,000-point complexity cap.
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildSchema, parse, validate, type GraphQLSchema } from 'graphql'
import { estimateComplexity, MAX_COMPLEXITY } from '../lib/sandbox/complexity.ts'
import { buildSandboxSdlSchema } from '../lib/sandbox/schema.ts'
import * as documents from '../lib/tracker/documents.ts'
import { ALL_DOCUMENTS, COMMENTS_PAGE, ISSUE_COMMENTS_QUERY, POLL_PAGE, POLL_QUERY } from '../lib/tracker/documents.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const realPath = resolve(root, process.env.LINEAR_SCHEMA ?? '../shared/linear/schema.graphql')
const haveReal = existsSync(realPath)
const why = haveReal ? '' : ` (skipped: Linear's schema is not at ${realPath}; set LINEAR_SCHEMA)`
let real: GraphQLSchema | undefined
const realSchema = () => (real ??= buildSchema(readFileSync(realPath, 'utf8')))
const sandbox = buildSandboxSdlSchema()

const messages = (schema: GraphQLSchema, doc: string) => validate(schema, parse(doc)).map((e) => e.message)

describe("the factory's GraphQL documents", () => {
  test('are all listed in ALL_DOCUMENTS, so every one is checked below', () => {
    const exported = Object.keys(documents)
      .filter((k) => /_(QUERY|MUTATION)$/.test(k))
      .sort()
    expect(exported.length).toBeGreaterThanOrEqual(7)
    expect(Object.keys(ALL_DOCUMENTS).sort()).toEqual(exported)
  })

  for (const [name, doc] of Object.entries(ALL_DOCUMENTS)) {
    test.skipIf(!haveReal)(`${name} validates against Linear's real schema${why}`, () => {
      expect(messages(realSchema(), doc)).toEqual([])
    })

    test(`${name} validates against the sandbox's schema, so the sandbox serves it`, () => {
      expect(messages(sandbox, doc)).toEqual([])
    })
  }

  test.skipIf(!haveReal)(`a document with a field Linear does not have fails the real-schema check${why}`, () => {
    const broken = POLL_QUERY.replace('branchName', 'branchNameTypo')
    expect(messages(realSchema(), broken).join('\n')).toContain('branchNameTypo')
  })

  test('the poll document with the POLL_PAGE sizes stays under the 10,000-point complexity cap', () => {
    const vars = {
      filter: {},
      first: POLL_PAGE.issues,
      commentsFirst: POLL_PAGE.comments,
      statesFirst: POLL_PAGE.states,
      labelsFirst: POLL_PAGE.labels,
      watchFilter: {},
      watchFirst: 50,
    }
    const points = estimateComplexity(sandbox, parse(POLL_QUERY), vars)
    console.log(`FactoryPoll complexity with POLL_PAGE ${JSON.stringify(POLL_PAGE)}: ${Math.round(points)}`)
    expect(points).toBeLessThan(MAX_COMPLEXITY)
    expect(Math.round(points)).toBe(5059)
  })

  test('a page of COMMENTS_PAGE comments (paging on to the last run) is cheap and within the page size Linear allows', () => {
    const points = estimateComplexity(sandbox, parse(ISSUE_COMMENTS_QUERY), { id: 'x', first: COMMENTS_PAGE, after: null })
    console.log(`FactoryIssueComments complexity with first ${COMMENTS_PAGE}: ${Math.round(points)}`)
    expect(points).toBeLessThan(MAX_COMPLEXITY / 10)
    expect(COMMENTS_PAGE).toBeLessThanOrEqual(250)
  })
})
