/** Relay-style connections with opaque keyset cursors (first/last/after/before). */
import { GraphQLError } from 'graphql'

export interface PageArgs {
  first?: number | null
  last?: number | null
  after?: string | null
  before?: string | null
}

export interface Connection<T> {
  nodes: T[]
  edges: { node: T; cursor: string }[]
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null }
}

/** Linear's default page size when neither `first` nor `last` is given. */
export const DEFAULT_PAGE = 50

function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'INVALID_INPUT', type: 'invalid input', userPresentableMessage: message } })
}

function encode(sortKey: string | number, id: string): string {
  return Buffer.from(JSON.stringify([sortKey, id])).toString('base64url')
}

function decode(cursor: string, arg: string): [string | number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown
    if (Array.isArray(v) && v.length === 2 && typeof v[1] === 'string') return v as [string | number, string]
  } catch {
    // fall through
  }
  throw badInput(`Invalid cursor ${JSON.stringify(cursor)} in "${arg}": pass a pageInfo.endCursor/startCursor from an earlier page`)
}

/**
 * Page through `items`, already sorted by (sortKey in `direction`, then id ascending).
 * Cursors hold (sortKey, id), so an item that moves between pages is neither skipped twice nor
 * read from a stale position.
 */
export function paginate<T extends { id: string }>(
  items: T[],
  sortKey: (item: T) => string | number,
  direction: 'asc' | 'desc',
  args: PageArgs,
): Connection<T> {
  const cmp = (a: [string | number, string], b: [string | number, string]) => {
    const primary = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
    return (direction === 'asc' ? primary : -primary) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)
  }
  for (const n of ['first', 'last'] as const) {
    const v = args[n]
    if (v != null && (!Number.isInteger(v) || v < 0)) throw badInput(`"${n}" must be a non-negative integer, got ${v}`)
  }
  let list = items
  if (args.after) {
    const c = decode(args.after, 'after')
    list = list.filter((x) => cmp([sortKey(x), x.id], c) > 0)
  }
  if (args.before) {
    const c = decode(args.before, 'before')
    list = list.filter((x) => cmp([sortKey(x), x.id], c) < 0)
  }
  const total = list.length
  let start = 0
  let end = total
  if (args.first != null) end = Math.min(total, args.first)
  else if (args.last == null) end = Math.min(total, DEFAULT_PAGE)
  if (args.last != null) start = Math.max(0, end - args.last)
  const nodes = list.slice(start, end)
  const edges = nodes.map((node) => ({ node, cursor: encode(sortKey(node), node.id) }))
  return {
    nodes,
    edges,
    pageInfo: {
      hasNextPage: end < total,
      hasPreviousPage: start > 0 || Boolean(args.after && items.length > total),
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  }
}

/** Sort then paginate: `orderBy` createdAt/updatedAt, newest first unless `direction` is asc; ties by id. */
export function byTime<T extends { id: string; createdAt: string; updatedAt: string }>(
  items: T[],
  orderBy: string | null | undefined,
  args: PageArgs,
  direction: 'asc' | 'desc' = 'desc',
): Connection<T> {
  const key = orderBy === 'updatedAt' ? (x: T) => x.updatedAt : (x: T) => x.createdAt
  const sign = direction === 'desc' ? 1 : -1
  const sorted = [...items].sort((a, b) => (key(a) < key(b) ? sign : key(a) > key(b) ? -sign : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return paginate(sorted, key, direction, args)
}
