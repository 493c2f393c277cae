/** Token usage arithmetic (Codex reports a thread's running total; each run keeps its own share). */
import type { EngineUsage } from './types.ts'

/** `total - prev`, never below zero (a thread restarted from scratch counts in full). */
export function usageDelta(total: EngineUsage, prev: EngineUsage): EngineUsage {
  const d = (a: number | undefined, b: number | undefined) => Math.max(0, (a ?? 0) - (b ?? 0))
  if (total.inputTokens < prev.inputTokens) return total
  return {
    inputTokens: d(total.inputTokens, prev.inputTokens),
    outputTokens: d(total.outputTokens, prev.outputTokens),
    cachedInputTokens: d(total.cachedInputTokens, prev.cachedInputTokens),
  }
}
