#!/usr/bin/env bun
/** claim: take one issue (ownership lock, a run in state.json) and move it to the team's started state. */
import { defineCommand } from 'citty'
import { claimIssue, lockIssue, resolveIssue } from '../lib/steps/claim.ts'
import { routedContext } from '../lib/route.ts'
import { updateRecord } from '../lib/state.ts'
import { assertIssueLockFree } from '../lib/preview.ts'
import { commonArgs, contextFromArgs, issueArg, isEntry, runCli, printJson } from '../lib/cli.ts'

const command = defineCommand({
  meta: { name: 'claim', description: 'Claim an issue: lock it, open its run, move it to In Progress (the team started state).' },
  args: {
    ...commonArgs,
    ...issueArg,
    // By hand, state.json's snapshot may be old (unassigned since): read Linear so only what is ours is claimed.
  },
  async run({ args, data }) {
    const agentCtx = await contextFromArgs(args, 'claim', data)
    const { issue, viewerId, record } = await resolveIssue(agentCtx, args.issue)
    const ctx = routedContext(agentCtx, issue, record?.repo)
    // A dry run takes no lock, but refuses exactly when the real claim would (a live owner holds it).
    if (ctx.dryRun) assertIssueLockFree(ctx, issue.identifier)
    const lock = ctx.dryRun ? null : lockIssue(ctx, issue.identifier, 'claim')
    try {
      const { plan, event } = await claimIssue(ctx, issue, viewerId, record)
      if (!ctx.dryRun) updateRecord(ctx.paths.state, ctx.agent.name, issue.id, event, ctx.now())
      const out = {
        issue: issue.identifier,
        run: plan.runNumber,
        resumesRun: plan.resumesRun,
        moveTo: plan.moveTo?.name ?? null,
        dryRun: ctx.dryRun,
      }
      if (args.json) printJson(out)
      else
        ctx.log.info(
          `${issue.identifier}: run #${plan.runNumber}${plan.resumesRun ? ' (resumed)' : ''}; ${plan.moveTo ? `${ctx.dryRun ? 'would move' : 'moved'} to ${plan.moveTo.name}` : `stays in ${issue.state.name}`}`,
        )
    } finally {
      lock?.stop()
    }
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
