/**
 * The loop: for each agent, tick = poll -> record -> dispatch. Each issue runs in a child process
 * (scripts/run.ts) so a crash cannot take the loop down. Poll failures back off (until Linear's
 * reset for rate limits, exponentially otherwise) and the loop goes on; nothing queued is lost,
 * because queued issues live in state.json until a run takes them.
 */
import { fileURLToPath } from 'node:url'
import { type AgentConfig, agentSecretEnvs, type FactoryConfig, type RepoEntry } from './config.ts'
import { agentContext, type AgentContext, realSleep } from './context.ts'
import { asFactoryError } from './errors.ts'
import { inspectLock, LOCK_STALE_MS } from './lock.ts'
import { logger, redactorFor } from './log.ts'
import { reapEngineOfDeadRun } from './orphans.ts' // the driver owns the engine watchdog of the runs it spawns
import { decisionLine, type PollBackoff, type PollPlan, pollBackoffMs, pollWithBackoff } from './steps/poll.ts'
import { intakeWithBackoff, workerId } from './steps/intake.ts'
import { relayClient, type RelayClient } from './relay-client.ts'
import { type ChildHandle, spawnScript } from './proc.ts'
import { processEnv } from './secret-channel.ts'
import { agentState, readState, type IssueRecord, updateRecords } from './state.ts'
import type { Tracker } from './tracker/types.ts'
import { reconcileTick } from './reconcile.ts'
import {
  type DispatchSummary,
  heldIssues,
  planDispatch,
  previewDispatch,
  type SpawnBackoff,
  spawnBackoff,
  summarizeDispatch,
} from './dispatch.ts'
import { lockPathFor } from './steps/claim.ts'

const RUN_SCRIPT = fileURLToPath(new URL('../scripts/run.ts', import.meta.url))

export interface DriverOptions {
  config: FactoryConfig
  configPath: string
  agents: AgentConfig[]
  dryRun: boolean
  env?: NodeJS.ProcessEnv
  /** Test seam: how a run is started (default: a child process running scripts/run.ts). */
  spawnRun?: (agent: AgentConfig, issueId: string) => ChildHandle
  tracker?: (agent: AgentConfig) => Tracker
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  now?: () => number
}

export type RunOutcome = { agent: string; identifier: string; exitCode: number | null }

export interface TickReport {
  agent: string
  ok: boolean
  error?: { code: string; message: string }
  plan?: PollPlan
  /** Runs started this tick (a dry run starts none: see `dispatch.start`). */
  started: string[]
  /** The dispatch decision: what starts (a dry run: would start), what waits and why. */
  dispatch?: DispatchSummary
}

/** Build a driver; `tick()` runs one round for every agent, `loop()` runs until `stop()`. */
export function createDriver(opts: DriverOptions) {
  const env = opts.env ?? processEnv()
  const log = logger('start', redactorFor(env, opts.config.agents.flatMap(agentSecretEnvs)))
  const now = opts.now ?? Date.now
  const contexts = new Map<string, AgentContext>()
  const running = new Map<string, { agent: string; identifier: string; child: ChildHandle }>()
  const backoff: PollBackoff = new Map()
  /** Per `agent/issue id`: run children that exited without taking their queued issue (dispatch.ts spawnBackoff). */
  const spawnBackoffs = new Map<string, SpawnBackoff>()
  const outcomes: RunOutcome[] = []
  const stopper = new AbortController()
  /** Aborted by wake() (POST /api/v1/refresh): each agent ticks now, or again right after the tick it is in. */
  let waker = new AbortController()

  const ctxFor = (agent: AgentConfig): AgentContext => {
    const made = contexts.get(agent.name)
    if (made) return made
    const { config, configPath, dryRun } = opts
    const ctx = agentContext({ config, configPath, agent, env, dryRun, tag: 'start', tracker: opts.tracker?.(agent) })
    // The stop signal reaches the git commands the driver runs (a hung clone or fetch is killed on stop).
    contexts.set(agent.name, Object.assign(ctx, { signal: stopper.signal }))
    return ctx
  }

  const spawnRun =
    opts.spawnRun ??
    ((agent: AgentConfig, issueId: string) =>
      // Invariant "no-secrets-in-reach": the child's environ gets no token (deny-listed names and every
      // agent's token_env); they go on its fd 3 and it reads them once (lib/secret-channel.ts).
      spawnScript(RUN_SCRIPT, ['--config', opts.configPath, '--agent', agent.name, '--issue', issueId, '--no-fetch', '--only-queued'], {
        env,
        secretNames: opts.config.agents.flatMap(agentSecretEnvs),
      }))

  /** One tick of one agent; `background`: start the dispatch without waiting for it (the loop). */
  async function tickAgent(agent: AgentConfig, background = false): Promise<TickReport> {
    tickNos.set(agent.name, (tickNos.get(agent.name) ?? 0) + 1)
    if (agent.tracker.mode === 'agent_session') return tickSessions(agent, background)
    const ctx = ctxFor(agent)
    const polled = await pollWithBackoff(ctx, backoff, now())
    if (!polled.ok) return { agent: agent.name, ok: false, error: polled.error, started: [] }
    const plan = polled.plan
    for (const { issue, decision } of plan.items) {
      const line = decisionLine(decision)
      log[line.routine ? 'debug' : 'info'](`${agent.name}: ${issue.identifier} [${issue.state.name}] ${line.text}`)
      if (decision.ignoredComments)
        log.warn(`${agent.name}: ${issue.identifier}: ignored ${decision.ignoredComments} comment(s) from people not in allow_commenters`)
    }
    if (plan.items.length === 0) log.debug(`${agent.name}: nothing changed since ${plan.cursorBefore ?? 'the start'}`)
    if (opts.dryRun) {
      // What the real tick would start, planned by the same planDispatch as the real dispatch. Nothing is written.
      const lockOf = (identifier: string) => inspectLock(lockPathFor(ctx, identifier), LOCK_STALE_MS)
      const state = agentState(readState(ctx.paths.state), agent.name)
      const dispatch = previewDispatch(state, plan, lockOf, capsFor(agent), ctx.now())
      if (agent.repos.length > 1) {
        // Several repositories: where each issue it would start goes (a recorded choice, else the rules).
        const { describeRoute } = await import('./route.ts')
        for (const key of dispatch.start) {
          const r = Object.values(state.issues).find((x) => x.identifier === key)
          const issue = plan.items.find((i) => i.issue.identifier === key)?.issue ?? r?.snapshot
          if (issue) log.info(`${agent.name}: ${key} would run ${describeRoute(issue, agent, r?.repo)}`)
        }
      }
      return { agent: agent.name, ok: true, plan, started: [], dispatch }
    }
    await reconcileTick(ctx, plan, hereOf(agent))
    if (background) {
      kick(agent)
      return { agent: agent.name, ok: true, plan, started: [] }
    }
    const { started, plan: dispatchPlan, error } = await dispatch(agent)
    return { agent: agent.name, ok: !error, error, plan, started, dispatch: dispatchPlan }
  }

  const relays = new Map<string, RelayClient>()
  /** agent_session: the relay's events instead of a Linear poll (the long poll is the wait); then as api_key. */
  async function tickSessions(agent: AgentConfig, background: boolean): Promise<TickReport> {
    const ctx = ctxFor(agent)
    if (!relays.has(agent.name))
      relays.set(
        agent.name,
        relayClient({ url: agent.tracker.relay_url!, token: ctx.env[agent.tracker.token_env]!, workerId: workerId(agent.name) }),
      )
    const wait = oncePending || opts.dryRun ? 2 : Math.min(25, opts.config.poll_interval_seconds)
    const intake = { now: now(), waitSeconds: wait, dryRun: opts.dryRun, signal: stopper.signal, backoffMs: pollBackoffMs }
    const got = await intakeWithBackoff(ctx, relays.get(agent.name)!, backoff, intake)
    const failed = got.ok ? undefined : got.error
    if (opts.dryRun) return { agent: agent.name, ok: got.ok, error: failed, started: [] }
    // What was recorded is durable: runs start even while the relay is backing off.
    await reconcileTick(ctx, { viewer: { id: '' }, watch: [], watched: [] }, hereOf(agent))
    if (background) return (kick(agent), { agent: agent.name, ok: got.ok, error: failed, started: [] })
    const { started, plan, error } = await dispatch(agent)
    return { agent: agent.name, ok: got.ok && !error, error: failed ?? error, started, dispatch: plan }
  }
  const hereOf = (agent: AgentConfig) =>
    new Set([...running.keys()].filter((k) => k.startsWith(`${agent.name}/`)).map((k) => k.slice(agent.name.length + 1)))

  const capsFor = (agent: AgentConfig) => ({
    agent: agent.concurrency,
    machine: opts.config.max_concurrency,
    runningAgent: [...running.values()].filter((r) => r.agent === agent.name).length,
    runningMachine: running.size,
  })

  /** The dispatch decision for an agent as things are now (records, runs in flight, locks, backoffs). */
  function decide(agent: AgentConfig, ctx: AgentContext) {
    const records = Object.values(readState(ctx.paths.state).agents[agent.name]?.issues ?? {})
    const here = hereOf(agent)
    const lockOf = (identifier: string) => inspectLock(lockPathFor(ctx, identifier), LOCK_STALE_MS)
    const held = heldIssues(
      records.filter((r) => !here.has(r.id)),
      lockOf,
    )
    const backingOff = new Map(
      [...spawnBackoffs].filter(([k]) => k.startsWith(`${agent.name}/`)).map(([k, b]) => [k.slice(agent.name.length + 1), b.until]),
    )
    return planDispatch(records, here, capsFor(agent), now(), held, backingOff)
  }

  /** Start runs for queued issues, within the agent's and the machine's concurrency. */
  async function dispatch(
    agent: AgentConfig,
  ): Promise<{ started: string[]; plan?: DispatchSummary; error?: { code: string; message: string } }> {
    if (stopper.signal.aborted) return { started: [] }
    const ctx = ctxFor(agent)
    const first = decide(agent, ctx)
    const pick = first.start
    if (pick.length === 0) return { started: [], plan: summarizeDispatch(first) }
    // Fetch once per tick; runs dispatched between ticks (a slot freed) use that fetch. One base
    // clone per repository the picked issues run in; a repository that fails holds up only its issues.
    const tickNo = tickNos.get(agent.name) ?? 0
    const { ensureBaseRepo } = await import('./steps/worktree.ts') // only when a run starts: an idle tick loads no git code
    const { repoOfRecord, withRepo } = await import('./route.ts')
    const blocked = new Set<string>()
    let failure: { code: string; message: string } | undefined
    const byRepo = new Map<RepoEntry, IssueRecord[]>()
    for (const r of pick) {
      const repo = repoOfRecord(agent, r) ?? agent.repo
      byRepo.set(repo, [...(byRepo.get(repo) ?? []), r])
    }
    for (const [repo, records] of byRepo) {
      try {
        await ensureBaseRepo(withRepo(ctx, repo), { fetch: fetchedTick.get(`${agent.name} ${repo.url}`) !== tickNo })
        fetchedTick.set(`${agent.name} ${repo.url}`, tickNo)
      } catch (err) {
        // stop() killed the clone or fetch: nothing is wrong with the base clone.
        if (stopper.signal.aborted) return { started: [], plan: summarizeDispatch(first) }
        const e = asFactoryError(err)
        log.error(`${agent.name}: cannot update the base clone of ${repo.url}; ${records.length} issue(s) stay queued: ${e.describe()}`)
        // Shown by status on each issue it holds up (they stay queued; no attempt is used).
        const error = { code: e.code, message: `cannot update the base clone: ${e.message}`, fix: e.fix }
        records.forEach((r) => blocked.add(r.id))
        failure = { code: e.code, message: error.message }
        try {
          updateRecords(
            ctx.paths.state,
            agent.name,
            records.map((r) => ({ issueId: r.id, event: { type: 'blocked' as const, error } })),
            ctx.now(),
          )
        } catch {}
      }
    }
    if (blocked.size === pick.length) return { started: [], plan: summarizeDispatch(first), error: failure }
    // stop() may have come during the fetch: it signalled the runs it knew of, start no more.
    if (stopper.signal.aborted) return { started: [], plan: summarizeDispatch(first) }
    // Decided again now that the base clone is ready: other agents' dispatches (they run
    // concurrently) may have taken the machine's slots meanwhile. No await from here to the spawns.
    const decided = decide(agent, ctx)
    decided.start = decided.start.filter((r) => !blocked.has(r.id))
    for (const r of decided.start) {
      const child = spawnRun(agent, r.id)
      const key = `${agent.name}/${r.id}`
      running.set(key, { agent: agent.name, identifier: r.identifier, child })
      log.info(`${agent.name}: ${r.identifier} started (pid ${child.pid})`)
      void child.exited.then((code) => {
        reapEngineOfDeadRun(lockPathFor(ctx, r.identifier), child.pid, code, r.identifier, agent.limits.timeout_minutes, log)
        running.delete(key)
        outcomes.push({ agent: agent.name, identifier: r.identifier, exitCode: code })
        const how = code === 0 ? 'finished' : stopper.signal.aborted ? `stopped (exit ${code})` : `failed (exit ${code})`
        log.info(`${agent.name}: ${r.identifier} ${how}`)
        noteSpawnOutcome(ctx, key, r, code)
        if (!oncePending) kick(agent)
      })
    }
    return { started: decided.start.map((r) => r.identifier), plan: summarizeDispatch(decided) }
  }

  /** Per agent: the dispatch under way (in the loop, a slow base-clone fetch never holds up the agent's polls and reconciliation). */
  const dispatching = new Map<string, Promise<unknown>>()

  /**
   * Dispatch for `agent` in the background. A kick while one is under way asks for one more pass
   * after it: what became due after its last decision (a session recorded meanwhile) starts then,
   * not a tick later.
   */
  function kick(agent: AgentConfig): void {
    if (dispatching.has(agent.name)) return void kickAgain.add(agent.name)
    const p = dispatch(agent)
      .catch((e) => log.error(`${agent.name}: dispatch failed: ${asFactoryError(e).describe()}`))
      .finally(() => {
        dispatching.delete(agent.name)
        if (kickAgain.delete(agent.name) && !stopper.signal.aborted) kick(agent)
      })
    dispatching.set(agent.name, p)
  }
  const kickAgain = new Set<string>()

  /**
   * A child that left its record as it found it never took the issue (agents.yaml broken since the
   * driver loaded it, an id it could not parse): the issue backs off instead of being started
   * again at once, which would spawn dozens of children a second.
   */
  function noteSpawnOutcome(ctx: AgentContext, key: string, before: IssueRecord, code: number | null): void {
    if (stopper.signal.aborted) return
    let after: IssueRecord | undefined
    try {
      after = readState(ctx.paths.state).agents[ctx.agent.name]?.issues[before.id]
    } catch {
      return
    }
    const changed = !after || after.updatedAt !== before.updatedAt || after.phase !== before.phase
    const next = spawnBackoff(spawnBackoffs.get(key), changed, now())
    if (!next) return void spawnBackoffs.delete(key)
    spawnBackoffs.set(key, next)
    log.warn(
      `${ctx.agent.name}: ${before.identifier}: its run exited ${code ?? 'on a signal'} without taking the issue (${next.failures} time(s) in a row); not started again before ${new Date(next.until).toISOString()}`,
    )
  }

  let oncePending = false
  /** Per agent: ticks so far, and the tick whose dispatch fetched the base clone (fetched once per tick). */
  const tickNos = new Map<string, number>()
  const fetchedTick = new Map<string, number>()

  /** One tick for every agent, the agents side by side (one agent's slow remote does not hold up another). */
  async function tick(): Promise<TickReport[]> {
    return Promise.all(opts.agents.map((agent) => tickAgent(agent)))
  }

  /** Wait for every running child to exit. */
  async function drain(): Promise<void> {
    while (running.size > 0) await Promise.race([...running.values()].map((r) => r.child.exited))
  }
  const sleep = opts.sleep ?? realSleep

  return {
    outcomes,
    running,
    /** Tick every agent now, without waiting for the poll interval (the loop). */
    wake: () => waker.abort(),
    /** When the agent's next poll may happen (after a failure), or undefined. */
    backoffUntil: (agent: string) => backoff.get(agent)?.until,
    tick,
    drain,
    /** `--once`: one tick, wait for the runs it started; true when everything succeeded. */
    async once(): Promise<{ ok: boolean; reports: TickReport[]; outcomes: RunOutcome[] }> {
      oncePending = true
      const reports = await tick()
      await drain()
      const ok = reports.every((r) => r.ok) && outcomes.every((o) => o.exitCode === 0)
      return { ok, reports, outcomes }
    },
    /** Tick every poll interval until stop(). */
    async loop(): Promise<void> {
      // Each agent on its own clock; dispatch (which may wait on a git remote) runs in the
      // background, so polls and reconciliation go on. stop() ends the loop at once: a tick still
      // waiting on Linear is dropped (what it had not written is simply polled again next start).
      const stopped = new Promise<void>((r) => (stopper.signal.aborted ? r() : stopper.signal.addEventListener('abort', () => r())))
      const loops = Promise.all(
        opts.agents.map(async (agent) => {
          while (!stopper.signal.aborted) {
            if (waker.signal.aborted) waker = new AbortController()
            let ok = false
            try {
              ok = (await tickAgent(agent, true)).ok
            } catch (err) {
              log.error(`${agent.name}: tick failed: ${asFactoryError(err).describe()}`)
            }
            // An agent_session tick waited in its long poll already; after a failure it waits like a poll.
            const pause = agent.tracker.mode === 'agent_session' && ok ? 0 : opts.config.poll_interval_seconds * 1000
            await sleep(pause, AbortSignal.any([stopper.signal, waker.signal]))
          }
        }),
      )
      await Promise.race([loops, stopped])
    },
    /** Stop ticking, ask running children to stop, wait for them (SIGKILL after `graceMs`). */
    async stop(graceMs = 15_000): Promise<void> {
      stopper.abort()
      for (const r of running.values()) r.child.kill('SIGTERM')
      const timer = setTimeout(() => {
        for (const r of running.values()) r.child.kill('SIGKILL')
      }, graceMs)
      await drain()
      clearTimeout(timer)
    },
  }
}
