/**
 * One issue in full (`status --issue`, `GET /api/v1/issues/:key`): its phase and what happens
 * next, every run with its state and transcript path, the PR, the worktree, the logs and the last
 * error with its fix. Paths are never cut; text from Linear is printed escaped.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { RESUME_HINT } from './controls.ts'
import { ERRORS, isErrorCode } from './errors.ts'
import { inspectLock, LOCK_STALE_MS } from './lock.ts'
import { sanitizeKey } from './paths.ts'
import { printable } from './printable.ts'
import type { IssueRecord } from './state.ts'
import { groupOf, runState, type StatusGroup } from './status.ts'

export interface RunDetail {
  n: number
  state: string
  status: string
  engine?: string
  startedAt: string
  endedAt?: string
  costUsd?: number
  errorCode?: string
  summary?: string
  prUrl?: string
  commit?: string
  /** The run's transcript (absent once the logs were removed). */
  transcript: { path: string; exists: boolean }
}

export interface IssueDetail {
  agent: string
  identifier: string
  title: string
  url?: string
  /** The issue's Linear state as last seen (In Progress, In Review, ...). */
  linearState?: string
  phase: string
  group: StatusGroup
  /** What happens next, or what a human does. */
  next: string
  owner?: { pid: number; host: string; since: string; step?: string; enginePid?: number }
  attempts: number
  nextRetryAt?: string
  escalatedAt?: string
  cancelledAt?: string
  releasedReason?: string
  prUrl?: string
  branch?: string
  worktree?: string
  repo?: string
  logDir: string
  bootstrapLog?: string
  lastError?: { code: string; message: string; fix?: string }
  costUsd: number
  runs: RunDetail[]
}

function nextStep(r: IssueRecord, group: StatusGroup, owner: IssueDetail['owner']): string {
  const key = r.identifier
  switch (group) {
    case 'running':
      return owner
        ? `running (pid ${owner.pid} on ${owner.host}${owner.step ? `, ${owner.step}` : ''}); rose-factory cancel --issue ${key} stops it`
        : 'its run lost its owner: the next tick resumes it'
    case 'queued':
      return r.lastError ? `queued, held up by ${r.lastError.code}; the next tick tries again` : 'queued: the next tick runs it'
    case 'retrying':
      return `attempt ${r.attempts + 1} at ${r.nextRetryAt}; rose-factory retry --issue ${key} makes it due now`
    case 'escalated':
    case 'failed':
      return `waits for a human: a comment on the issue in Linear, or rose-factory retry --issue ${key}`
    case 'released':
      return r.cancelledAt
        ? `cancelled; runs again on ${RESUME_HINT} ${key}`
        : `released (${r.releasedReason}); runs again if it becomes the agent's again`
    case 'done':
      return 'done: a comment on the issue in Linear asks for changes'
    case 'idle':
      return 'seen outside an active state; runs when it moves to one'
  }
}

/** The whole picture of one record of `agent` under FACTORY_HOME `home`. */
export function issueDetail(home: string, agent: string, r: IssueRecord): IssueDetail {
  const lock = inspectLock(join(home, 'locks', sanitizeKey(agent), `${sanitizeKey(r.identifier)}.lock`), LOCK_STALE_MS)
  const live = lock.owner && !lock.stale ? lock.owner : undefined
  const group: StatusGroup = live ? 'running' : groupOf(r)
  const owner = live && { pid: live.pid, host: live.host, since: live.startedAt, step: live.note, enginePid: live.engine?.pid }
  const logDir = join(home, 'logs', sanitizeKey(agent), sanitizeKey(r.identifier))
  const code = r.lastError?.code
  const fix = r.lastError?.fix ?? (code && isErrorCode(code) ? (ERRORS[code] as { fix?: string }).fix : undefined)
  return {
    agent,
    identifier: r.identifier,
    title: r.title,
    url: r.snapshot.url,
    linearState: r.snapshot.state?.name,
    phase: r.phase,
    group,
    next: nextStep(r, group, owner),
    owner,
    attempts: r.attempts,
    nextRetryAt: r.nextRetryAt,
    escalatedAt: r.escalatedAt,
    cancelledAt: r.cancelledAt,
    releasedReason: r.releasedReason,
    prUrl: r.prUrl,
    branch: r.branch,
    worktree: r.worktree,
    repo: r.repo,
    logDir,
    bootstrapLog: existsSync(join(logDir, 'bootstrap.log')) ? join(logDir, 'bootstrap.log') : undefined,
    lastError: r.lastError && { ...r.lastError, fix },
    costUsd: r.runs.reduce((sum, x) => sum + (x.costUsd ?? 0), 0),
    runs: r.runs.map((x, i) => {
      const path = x.logPath ?? join(logDir, `run-${x.n}.log`)
      // Earlier runs were settled before the last one started: only the last follows the issue's group.
      const state = runState(x, i === r.runs.length - 1 ? group : 'failed')
      return {
        n: x.n,
        state,
        status: x.status,
        engine: x.engine,
        startedAt: x.startedAt,
        endedAt: x.endedAt,
        costUsd: x.costUsd,
        errorCode: x.errorCode,
        summary: x.summary?.split('\n')[0],
        prUrl: x.prUrl ?? (x.reportedAt ? r.prUrl : undefined),
        commit: x.commit,
        transcript: { path, exists: existsSync(path) },
      }
    }),
  }
}

/** The detail as text: one fact a line, paths whole, Linear's text escaped. */
export function renderIssueDetail(d: IssueDetail): string {
  const lines: [string, string | undefined][] = [
    ['phase', `${d.phase} (${d.group})${d.linearState ? `; Linear: ${d.linearState}` : ''}`],
    ['next', d.next],
    ['attempts', String(d.attempts)],
    ['last error', d.lastError && `${d.lastError.code}: ${d.lastError.message}`],
    ['fix', d.lastError?.fix],
    ['PR', d.prUrl],
    ['Linear', d.url],
    ['repository', d.repo],
    ['branch', d.branch],
    ['worktree', d.worktree],
    ['logs', d.logDir],
    ['bootstrap', d.bootstrapLog],
    ['cost', d.costUsd > 0 ? `$${d.costUsd.toFixed(2)}` : undefined],
  ]
  const out = [`${d.identifier}  ${d.title}  (agent ${d.agent})`]
  for (const [k, v] of lines) if (v !== undefined && v !== '') out.push(`  ${k.padEnd(10)} ${v}`)
  out.push(d.runs.length ? '  runs' : '  runs       none yet')
  for (const r of [...d.runs].reverse()) {
    const cost = r.costUsd ? ` $${r.costUsd.toFixed(2)}` : ''
    out.push(
      `    #${r.n} ${r.state}  ${r.engine ?? ''}  ${r.startedAt}${r.endedAt ? ` -> ${r.endedAt}` : ''}${cost}${r.errorCode ? `  ${r.errorCode}` : ''}`,
    )
    out.push(`       transcript ${r.transcript.path}${r.transcript.exists ? '' : ' (removed)'}`)
    if (r.summary) out.push(`       summary    ${r.summary}`)
    if (r.prUrl) out.push(`       PR         ${r.prUrl}`)
  }
  return `${out.map((l) => printable(l)).join('\n')}\n`
}
