/** Pick and configure the agent's engine from agents.yaml (adapters load lazily: a console agent never loads the CLI adapters). */
import type { AgentConfig } from '../config.ts'
import { createConsoleEngine } from './console.ts'
import type { Engine } from './types.ts'

/** The Engine for an agent, with its engine-specific options applied. */
export async function createEngine(agent: AgentConfig): Promise<Engine> {
  switch (agent.engine) {
    case 'console':
      return createConsoleEngine()
    case 'claude': {
      const { createClaudeEngine } = await import('./claude.ts')
      const c = agent.claude
      const budget = agent.limits.max_cost_usd
      return createClaudeEngine({
        bin: c?.bin,
        permissionMode: c?.permission_mode ?? 'bypassPermissions',
        allowedTools: c?.allowed_tools,
        model: c?.model,
        maxTurns: c?.max_turns ?? agent.limits.max_turns,
        // Claude can stop itself at a spend; the factory also checks the reported cost after the run.
        extraArgs: budget !== undefined ? ['--max-budget-usd', String(budget)] : undefined,
      })
    }
    case 'codex': {
      const { createCodexEngine } = await import('./codex.ts')
      const c = agent.codex
      return createCodexEngine({ bin: c?.bin, sandbox: c?.sandbox ?? 'workspace-write', model: c?.model, config: c?.config })
    }
  }
}
