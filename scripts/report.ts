#!/usr/bin/env bun
/** report: commit, push, PR, one summary comment, In Review; records the run. */
import { defineCommand } from 'citty'
import { lockIssue, resolveIssue } from '../lib/steps/claim.ts'
import { routedContext } from '../lib/route.ts'
import { commonArgs, contextFromArgs, issueArg, isEntry, runCli, printJson } from '../lib/cli.ts'
import { FactoryError } from '../lib/errors.ts'
import { type ReportPlan, reportRun } from '../lib/steps/report.ts'
import { readState, updateRecord } from '../lib/state.ts'
import { planWorktree } from '../lib/steps/worktree.ts'

const command = defineCommand({
  meta: {
    name: 'report',
    description:
      "Report the issue's finished run: commit and push the branch, open/update the PR, post the summary comment, move to In Review.",
  },
  args: { ...commonArgs, ...issueArg },
  async run({ args, data }) {
    const agentCtx = await contextFromArgs(args, 'report', data)
    const { issue } = await resolveIssue(agentCtx, args.issue)
    const record = readState(agentCtx.paths.state).agents[agentCtx.agent.name]?.issues[issue.id]
    const ctx = routedContext(agentCtx, issue, record?.repo)
    const run = record?.runs.at(-1)
    if (!record || !run)
      throw new FactoryError('usage', `${issue.identifier} has no run to report`, { fix: 'claim, worktree and run-engine first' })
    const wt = planWorktree(ctx, issue)
    const lock = ctx.dryRun ? null : lockIssue(ctx, issue.identifier, 'report')
    try {
      const { plan, event } = await reportRun(ctx, { issue, record, runNumber: run.n, worktree: wt.path, branch: wt.branch })
      if (event) updateRecord(ctx.paths.state, ctx.agent.name, issue.id, event, ctx.now())
      if (args.json) printJson({ ...plan, dryRun: ctx.dryRun })
      else if (ctx.dryRun) process.stdout.write(describeReportPlan(plan, issue.state.name))
      else ctx.log.info(`${issue.identifier}: reported run #${run.n} (${plan.outcome})`)
      return plan.outcome === 'failed' ? 1 : 0
    } finally {
      lock?.stop()
    }
  },
})

/** The dry run's account of what the real report does, step by step. */
function describeReportPlan(plan: ReportPlan, currentState: string): string {
  const files = plan.commitFiles
  return [
    `outcome: ${plan.outcome}`,
    `commit: ${files.length ? `${files.length} file(s): ${files.join(', ')}` : 'nothing to commit'}`,
    `push: ${plan.push ? `${plan.branch} to origin` : 'no'}`,
    `PR: ${plan.pr ? `open or update ${plan.pr.repo.owner}/${plan.pr.repo.name} "${plan.pr.title}"` : `none${plan.prSkipped ? ` (${plan.prSkipped})` : ''}`}`,
    `move to: ${plan.moveTo?.name ?? '(stay)'}${plan.moveTo?.name === currentState ? ' (already there)' : ''}`,
    `--- comment ${plan.comment.id} ---`,
    plan.comment.body,
    '',
  ].join('\n')
}

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
