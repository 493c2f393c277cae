/**
 * How a mistake in agents.yaml is described: the key path (`agents[1].repo.branch`), where it is in
 * the file (line and column, from the YAML document's node ranges) and, for an unknown key, the
 * known key it most likely meant (a small edit distance).
 */
import { isMap, isSeq, type Document, type LineCounter, type Node } from 'yaml'

/** Format a zod issue path like `agents[1].repo.url`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p)
  return out || '(top level)'
}

/** Levenshtein distance (small strings: config keys). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]!
}

/** The known key closest to `key`, when it is close enough to be a typo (at most 2 edits, and under half the key). */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined
  for (const name of known) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase())
    if (d < (best?.d ?? Infinity)) best = { name, d }
  }
  return best && best.d <= Math.min(2, Math.ceil(key.length / 2)) ? best.name : undefined
}

/** The keys a JSON Schema allows at `path` (arrays by index, objects by key), for did-you-mean. */
export function keysAt(schema: unknown, path: readonly PropertyKey[]): string[] {
  let s = schema as { properties?: Record<string, unknown>; items?: unknown } | undefined
  for (const p of path) s = (typeof p === 'number' ? s?.items : s?.properties?.[String(p)]) as typeof s
  return Object.keys(s?.properties ?? {})
}

/** ` (line L, column C)` of the node at `path` (or of `key` in the map there), else of its nearest ancestor in the file. */
export function where(doc: Document, lines: LineCounter, path: readonly PropertyKey[], key?: string): string {
  let node = doc.contents as Node | null
  let offset = node?.range?.[0]
  const steps: PropertyKey[] = key === undefined ? [...path] : [...path, key]
  for (const step of steps) {
    let next: { key?: unknown; node?: unknown } | undefined
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === step)
      next = pair ? { key: pair.key, node: pair.value } : undefined
    } else if (isSeq(node) && typeof step === 'number') next = { node: node.items[step] }
    if (!next) break
    // An unknown key is shown where the key is written; anything else where its value is.
    const at = (step === key && next.key ? next.key : next.node) as Node | undefined
    if (at?.range) offset = at.range[0]
    node = (next.node ?? null) as Node | null
  }
  if (offset === undefined) return ''
  const pos = lines.linePos(offset)
  return ` (line ${pos.line}, column ${pos.col})`
}
