#!/usr/bin/env bun
/** run-engine: build the prompt and run the agent's engine in the issue's worktree. */
import { defineCommand } from 'citty'
import { lockIssue, resolveIssue } from '../lib/steps/claim.ts'
import { routedContext } from '../lib/route.ts'
import { commonArgs, contextFromArgs, issueArg, isEntry, runCli, printJson } from '../lib/cli.ts'
import { enterWithoutSecrets } from '../lib/secret-channel.ts'
import { assertIssueLockFree } from '../lib/preview.ts'
import { planEngineRun, runEngineStep } from '../lib/steps/run-engine.ts'
import { FactoryError } from '../lib/errors.ts'
import { readState, updateRecord } from '../lib/state.ts'
import { planWorktree } from '../lib/steps/worktree.ts'

const command = defineCommand({
  meta: {
    name: 'run-engine',
    description: "Run the agent's engine (claude, codex or console) for the issue's open run, in its worktree. Claim and worktree first.",
  },
  args: { ...commonArgs, ...issueArg },
  async run({ args, data }) {
    const agentCtx = await contextFromArgs(args, 'run-engine', data)
    const { issue, viewerId } = await resolveIssue(agentCtx, args.issue)
    const record = readState(agentCtx.paths.state).agents[agentCtx.agent.name]?.issues[issue.id]
    const ctx = routedContext(agentCtx, issue, record?.repo)
    const run = record?.runs.at(-1)
    if (!record || !run || run.reportedAt)
      throw new FactoryError('usage', `${issue.identifier} has no open run`, {
        fix: `claim it first: bun scripts/claim.ts --agent ${ctx.agent.name} --issue ${issue.identifier}`,
      })
    const wt = planWorktree(ctx, issue)
    if (ctx.dryRun) {
      assertIssueLockFree(ctx, issue.identifier)
      const plan = planEngineRun(ctx, issue, record, run.n, viewerId, wt.branch)
      if (args.json) printJson({ engine: ctx.agent.engine, cwd: wt.path, ...plan, dryRun: true })
      else
        process.stdout.write(
          `engine ${ctx.agent.engine} in ${wt.path}${plan.resume ? ` resuming ${plan.resume}` : ''}\n--- prompt ---\n${plan.prompt}`,
        )
      return
    }
    const lock = lockIssue(ctx, issue.identifier, 'engine')
    const abort = new AbortController()
    const onSignal = () => abort.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      const { result, event } = await runEngineStep(ctx, { issue, record, runNumber: run.n, viewerId, worktree: wt, signal: abort.signal })
      updateRecord(ctx.paths.state, ctx.agent.name, issue.id, event, ctx.now())
      if (args.json) printJson(result)
      else ctx.log.info(`${issue.identifier}: ${result.status}: ${result.summary.split('\n')[0]}`)
      return result.status === 'success' ? 0 : 1
    } finally {
      lock.stop()
    }
  },
})

export default command

if (isEntry(import.meta.url)) {
  // Invariant "no-secrets-in-reach": no token stays in this process's environ (an engine could read it).
  await enterWithoutSecrets()
  process.exit((await runCli(command)).code)
}
