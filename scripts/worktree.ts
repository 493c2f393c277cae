#!/usr/bin/env bun
/** worktree: base clone (fetched) + the issue's worktree + bootstrap, idempotent. */
import { defineCommand } from 'citty'
import { lockIssue, resolveIssue } from '../lib/steps/claim.ts'
import { routedContext } from '../lib/route.ts'
import { commonArgs, contextFromArgs, issueArg, isEntry, runCli, printJson } from '../lib/cli.ts'
import { updateRecord } from '../lib/state.ts'
import { assertIssueLockFree, previewWorktree } from '../lib/preview.ts'
import { ensureWorktree } from '../lib/steps/worktree.ts'

const command = defineCommand({
  meta: {
    name: 'worktree',
    description: "Create (or find) the issue's git worktree on its branch from origin/<base>, and run the bootstrap once.",
  },
  args: {
    ...commonArgs,
    ...issueArg,
    'repo-root': { type: 'string', description: 'use this existing checkout instead of the base clone' },
    fetch: { type: 'boolean', description: 'fetch origin first (--no-fetch to skip)', default: true },
  },
  async run({ args, data }) {
    const agentCtx = await contextFromArgs(args, 'worktree', data)
    const { issue, record } = await resolveIssue(agentCtx, args.issue)
    const ctx = routedContext(agentCtx, issue, record?.repo)
    if (ctx.dryRun) {
      assertIssueLockFree(ctx, issue.identifier)
      const plan = await previewWorktree(ctx, issue, args['repo-root'])
      if (args.json) printJson({ ...plan, dryRun: true })
      else
        process.stdout.write(
          [
            plan.clone
              ? `would clone ${ctx.agent.repo.url} into ${plan.baseRepo}`
              : `base clone: ${plan.baseRepo}${args.fetch ? ' (fetched)' : ''}`,
            plan.created
              ? `would create ${plan.path} on ${plan.branch} (from ${plan.startPoint} unless the branch exists)`
              : `would find ${plan.path} on ${plan.branch}`,
            plan.bootstrap ? `would run the bootstrap: ${plan.bootstrap}` : 'no bootstrap to run',
            '',
          ].join('\n'),
        )
      return
    }
    const lock = lockIssue(ctx, issue.identifier, 'worktree')
    try {
      const wt = await ensureWorktree(ctx, issue, { fetch: args.fetch, repoRoot: args['repo-root'] })
      updateRecord(ctx.paths.state, ctx.agent.name, issue.id, { type: 'worktree_ready', path: wt.path, branch: wt.branch }, ctx.now())
      if (args.json) printJson(wt)
      else ctx.log.info(`${issue.identifier}: ${wt.created ? 'created' : 'found'} ${wt.path} on ${wt.branch}`)
    } finally {
      lock.stop()
    }
  },
})

export default command

if (isEntry(import.meta.url)) process.exit((await runCli(command)).code)
