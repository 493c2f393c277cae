/**
 * Linear's query complexity estimate, as documented: ~0.1 point per scalar field, 1 per object,
 * and a connection multiplies its list children (`nodes`, `edges`) by its page size (`first` or
 * `last`, default 50). One query may cost at most 10,000 points.
 */
import {
  getNamedType,
  getNullableType,
  isLeafType,
  isListType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql'
import { DEFAULT_PAGE } from './connection.ts'

export const MAX_COMPLEXITY = 10_000
const SCALAR = 0.1
const OBJECT = 1

function argValue(node: ValueNode | undefined, variables: Record<string, unknown>): unknown {
  if (!node) return undefined
  if (node.kind === Kind.VARIABLE) return variables[node.name.value]
  if (node.kind === Kind.INT || node.kind === Kind.FLOAT) return Number(node.value)
  return undefined
}

/** A field's page size when it returns a connection (an object with `nodes`/`edges`), else null. */
function pageSize(field: GraphQLField<unknown, unknown>, args: Map<string, ValueNode>, variables: Record<string, unknown>): number | null {
  const type = getNamedType(field.type)
  if (!isObjectType(type) || !('nodes' in type.getFields() || 'edges' in type.getFields())) return null
  for (const name of ['first', 'last']) {
    const v = argValue(args.get(name), variables)
    if (typeof v === 'number' && Number.isFinite(v)) return Math.max(0, v)
  }
  return DEFAULT_PAGE
}

/** The estimated cost of one operation of `document` (the named one, or the only one). */
export function estimateComplexity(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> = {},
  operationName?: string | null,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>()
  const operations: OperationDefinitionNode[] = []
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def)
    if (def.kind === Kind.OPERATION_DEFINITION) operations.push(def)
  }
  const op = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0]
  if (!op) return 0
  const root =
    op.operation === 'mutation'
      ? schema.getMutationType()
      : op.operation === 'subscription'
        ? schema.getSubscriptionType()
        : schema.getQueryType()
  if (!root) return 0

  /** Cost of a selection set on `type`; `multiplier` applies to list-of-object children. */
  const walk = (set: SelectionSetNode, type: GraphQLObjectType, multiplier: number, seen: Set<string>): number => {
    let total = 0
    for (const sel of set.selections) {
      if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const frag = fragments.get(sel.name.value)
        if (!frag || seen.has(frag.name.value)) continue
        const on = schema.getType(frag.typeCondition.name.value)
        const target = isObjectType(on) ? on : type
        total += walk(frag.selectionSet, target, multiplier, new Set([...seen, frag.name.value]))
        continue
      }
      if (sel.kind === Kind.INLINE_FRAGMENT) {
        const on = sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : type
        total += walk(sel.selectionSet, isObjectType(on) ? on : type, multiplier, seen)
        continue
      }
      if (sel.name.value.startsWith('__')) continue
      const field = type.getFields()[sel.name.value]
      if (!field) continue
      const named = getNamedType(field.type)
      if (isLeafType(named) || !sel.selectionSet || !isObjectType(named)) {
        total += SCALAR
        continue
      }
      const args = new Map((sel.arguments ?? []).map((a) => [a.name.value, a.value]))
      const page = pageSize(field, args, variables)
      const isList = isListType(getNullableType(field.type))
      const count = isList ? multiplier : 1
      // A connection's own object costs 1; its list children are multiplied by its page size.
      total += count * (OBJECT + walk(sel.selectionSet, named, page ?? DEFAULT_PAGE, seen))
    }
    return total
  }
  return walk(op.selectionSet, root, DEFAULT_PAGE, new Set())
}
