#!/usr/bin/env bun
/** report: commit, push, PR, one summary comment, In Review; records the run. */
import { defineCommand } from 'citty'
import { lockIssue, resolveIssue } from '../lib/steps/claim.ts'
import { commonArgs, contextFromArgs, isEntry, main, need, printJson } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { reportRun } from '../lib/steps/report.ts'
import { readState, updateRecord } from '../lib/state.ts'
import { planWorktree } from '../lib/steps/worktree.ts'

const command = defineCommand({
  meta: {
    name: 'report',
    description:
      "Report the issue's finished run: commit and push the branch, open/update the PR, post the summary comment, move to In Review.",
  },
  args: { ...commonArgs, issue: { type: 'string', description: 'issue id or identifier (ENG-12)' } },
  async run({ args }) {
    const ctx = await contextFromArgs(args, 'report')
    const { issue } = await resolveIssue(ctx, need(args.issue, 'issue', 'pass the issue: --issue ENG-12'))
    const record = readState(ctx.paths.state).agents[ctx.agent.name]?.issues[issue.id]
    const run = record?.runs.at(-1)
    if (!record || !run)
      throw new FactoryError('usage', `${issue.identifier} has no run to report`, { fix: 'claim, worktree and run-engine first' })
    const wt = planWorktree(ctx, issue)
    const lock = ctx.dryRun ? null : lockIssue(ctx, issue.identifier, 'report')
    try {
      const { plan, event } = await reportRun(ctx, { issue, record, runNumber: run.n, worktree: wt.path, branch: wt.branch })
      if (event) updateRecord(ctx.paths.state, ctx.agent.name, issue.id, event, ctx.now())
      if (args.json) printJson({ ...plan, dryRun: ctx.dryRun })
      else if (ctx.dryRun)
        process.stdout.write(
          `outcome: ${plan.outcome}\npush: ${plan.push}\nPR: ${plan.pr ? `${plan.pr.repo.owner}/${plan.pr.repo.name} "${plan.pr.title}"` : `none (${plan.prSkipped})`}\nmove to: ${plan.moveTo?.name ?? '(stay)'}\n--- comment ${plan.comment.id} ---\n${plan.comment.body}\n`,
        )
      else ctx.log.info(`${issue.identifier}: reported run #${run.n} (${plan.outcome})`)
      if (plan.outcome === 'failed') process.exitCode = 1
    } finally {
      lock?.stop()
    }
  },
})

export default command

if (isEntry(import.meta.url)) await main(command)
