/**
 * The run as Linear shows it (lib/activities.ts, lib/activity-runner.ts): engine events as
 * activities, the volume bounds (one progress activity per interval, a cap per run, the final
 * always), stable ids, the plan, a session Linear refuses; then one run streamed through a real
 * relay process into the sandbox's session.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { activityId, activityOf, activityStream, LIMITS, type StreamPost } from '../lib/activities.ts'
import { activityRunner, sessionPost } from '../lib/activity-runner.ts'
import type { EngineEvent } from '../lib/engines/types.ts'
import { FactoryError } from '../lib/errors.ts'
import { sandboxDelegate, sandboxSessions } from '../lib/sandbox/client.ts'
import type { Sandbox } from '../lib/sandbox/server.ts'
import { agentSessionClient } from '../lib/tracker/agent-session.ts'
import type { RelayProcess } from './fakes/relay-process.ts'
import { sandboxWithRelay, type SandboxRelay } from './fakes/sandbox-relay.ts'
import { WORKER_TOKEN } from './fakes/webhooks.ts'

const action = (tool: string, input: string): EngineEvent => ({ kind: 'action', tool, input })
const result = (tool: string, output: string, isError = false): EngineEvent => ({ kind: 'action_result', tool, output, isError })
const thought = (text: string): EngineEvent => ({ kind: 'thought', text })

/** A stream on a clock the test moves. */
function clocked(opts: { intervalMs?: number; maxActivities?: number; runKey?: string } = {}) {
  const clock = { t: 1_000_000 }
  const stream = activityStream({ sessionId: 'sess-1', runKey: opts.runKey ?? 'run-1', now: () => clock.t, ...opts })
  return { clock, stream }
}
const types = (posts: StreamPost[]) => posts.map((p) => (p.kind === 'plan' ? 'plan' : `${p.content.type}${p.ephemeral ? '~' : ''}`))

describe('engine events as activities', () => {
  test('assistant text and thinking are thoughts; a tool call is an ephemeral action showing its command; nothing else shows', () => {
    expect(activityOf({ kind: 'text', text: 'Looking at the failing test' })).toEqual({
      content: { type: 'thought', body: 'Looking at the failing test' },
      ephemeral: false,
    })
    expect(activityOf(thought('  '))).toBeNull()
    expect(activityOf(action('Bash', '{"command":"bun test","description":"run the tests"}'))).toEqual({
      content: { type: 'action', action: 'Bash', parameter: 'bun test' },
      ephemeral: true,
    })
    expect(activityOf(action('shell', 'ls -la'))?.content).toEqual({ type: 'action', action: 'shell', parameter: 'ls -la' })
    for (const e of [{ kind: 'started' }, { kind: 'error', message: 'x' }, { kind: 'spawned', pid: 1, pgid: 1, tag: 't' }] as EngineEvent[])
      expect(activityOf(e)).toBeNull()
  })

  test('a result is at most 500 characters, without terminal colors, control characters or local paths, secrets redacted', () => {
    const output = `\u001b[31mFAIL\u001b[0m /home/dev/rose-factory/worktrees/ENG-1/src/a.ts token-123\u0000 ${'x'.repeat(2_000)}`
    const a = activityOf(result('Bash', output), { parameter: 'bun test', redact: (s) => s.replaceAll('token-123', '***') })!
    expect(a.ephemeral).toBe(false)
    const content = a.content as { result: string; parameter: string }
    expect(content.parameter).toBe('bun test')
    expect(content.result.length).toBe(LIMITS.result)
    expect(content.result.startsWith('FAIL …/a.ts *** xxx')).toBe(true)
    expect(content.result).not.toMatch(/[\u0000-\u0008\u001b]/)
    expect(activityOf(result('Bash', '', true))?.content).toMatchObject({ result: 'Error: failed' })
  })
})

describe('the stream', () => {
  test('at most one progress activity per interval: the latest waits and goes out when the interval has passed', () => {
    const { clock, stream } = clocked()
    expect(types(stream.push(thought('first')))).toEqual(['thought'])
    clock.t += 1_000
    expect(stream.push(action('Bash', '{"command":"ls"}'))).toEqual([])
    clock.t += 1_000
    expect(stream.push(result('Bash', 'README.md'))).toEqual([])
    expect(stream.nextFlushAt()).toBe(clock.t + 1_000)
    clock.t += 999
    expect(stream.flush()).toEqual([])
    clock.t += 1
    const [late] = stream.flush()
    expect(late).toMatchObject({ kind: 'activity', content: { type: 'action', action: 'Bash', parameter: 'ls', result: 'README.md' } })
    expect(stream.nextFlushAt()).toBeNull()
    expect(stream.counts()).toEqual({ posted: 2, dropped: 1, plans: 0 })
  })

  test('a 200-tool-call run posts at most max_activities progress activities, and its final always', () => {
    const { clock, stream } = clocked({ maxActivities: 60 })
    const posts: StreamPost[] = []
    for (let i = 0; i < 200; i++) {
      posts.push(...stream.push(action('Bash', `{"command":"step ${i}"}`)))
      clock.t += 2_000
      posts.push(...stream.push(result('Bash', `ok ${i}`)))
      clock.t += 2_000
      posts.push(...stream.flush())
    }
    posts.push(...stream.finish('response', 'All done.'))
    const progress = posts.filter((p) => p.kind === 'activity' && !p.final)
    expect(progress).toHaveLength(60)
    expect(posts.at(-1)).toEqual({
      kind: 'activity',
      id: activityId('sess-1', 'run-1', 'final'),
      content: { type: 'response', body: 'All done.' },
      ephemeral: false,
      final: true,
    })
    const ids = posts.map((p) => (p.kind === 'activity' ? p.id : ''))
    expect(new Set(ids).size).toBe(ids.length)
  })

  test('ids are the same when the same run is streamed again, and differ for another run or session', () => {
    const run = (runKey: string) => {
      const { clock, stream } = clocked({ runKey })
      const out = [...stream.push(thought('a'))]
      clock.t += 5_000
      out.push(...stream.push(action('Read', '{"file_path":"src/a.ts"}')), ...stream.finish('error', 'The tests fail.'))
      return out.map((p) => (p.kind === 'activity' ? p.id : ''))
    }
    expect(run('run-1')).toEqual(run('run-1'))
    expect(run('run-2')).not.toEqual(run('run-1'))
    expect(activityId('other-session', 'run-1', 1)).not.toBe(activityId('sess-1', 'run-1', 1))
  })

  test('the plan goes out whole, an unchanged plan not again, a quick change waits for the interval, and the last one before the final', () => {
    const { clock, stream } = clocked()
    const plan = (status: 'pending' | 'inProgress' | 'completed'): EngineEvent => ({
      kind: 'plan',
      items: [
        { content: 'Read /home/dev/src/a.ts', status: 'completed' },
        { content: 'Fix it', status },
      ],
    })
    expect(stream.push(plan('inProgress'))).toEqual([
      {
        kind: 'plan',
        plan: [
          { content: 'Read …/a.ts', status: 'completed' },
          { content: 'Fix it', status: 'inProgress' },
        ],
      },
    ])
    clock.t += 1_000
    expect(stream.push(plan('inProgress'))).toEqual([])
    clock.t += 1_000
    expect(stream.push(plan('completed'))).toEqual([])
    const end = stream.finish('response', 'Fixed.')
    expect(types(end)).toEqual(['plan', 'response'])
    expect(end[0]).toMatchObject({ plan: [{ status: 'completed' }, { content: 'Fix it', status: 'completed' }] })
  })

  test('after a stop (the session is gone) nothing more is posted, not even the final', () => {
    const { stream } = clocked()
    stream.push(thought('a'))
    stream.stop('Entity not found: AgentSession')
    expect(stream.push(thought('b'))).toEqual([])
    expect(stream.finish('response', 'done')).toEqual([])
    expect(stream.stopped).toBe('Entity not found: AgentSession')
  })
})

describe('the runner', () => {
  test('posts in order; a userError stops the session for good; after another failure the later progress of the run is dropped (an outage cannot hold up the report) and the final still goes', async () => {
    const sent: StreamPost[] = []
    let fail: FactoryError | null = new FactoryError('tracker_unreachable', 'Linear is failing')
    const runner = activityRunner({
      stream: activityStream({ sessionId: 's', runKey: 'r', intervalMs: 0 }),
      deps: {
        post: async (p) => {
          if (fail) {
            const e = fail
            fail = null
            throw e
          }
          sent.push(p)
        },
      },
    })
    runner.onEvent(thought('lost to an outage'))
    runner.onEvent(thought('one'))
    runner.onEvent(action('Bash', '{"command":"ls"}'))
    const done = await runner.finish('response', 'Done.')
    expect(types(sent)).toEqual(['response'])
    expect(done).toMatchObject({ final: 'posted', stopped: null, failed: 3 })

    const refused: StreamPost[] = []
    const gone = activityRunner({
      stream: activityStream({ sessionId: 's', runKey: 'r', intervalMs: 0 }),
      deps: {
        post: async (p) => {
          refused.push(p)
          if (refused.length === 2)
            throw new FactoryError('tracker_refused', 'Linear refused agentActivityCreate: Entity not found: AgentSession')
        },
      },
    })
    for (const t of ['a', 'b', 'c', 'd']) gone.onEvent(thought(t))
    const end = await gone.finish('response', 'Done.')
    expect(refused).toHaveLength(2)
    expect(end).toMatchObject({ final: 'refused', stopped: expect.stringContaining('Entity not found: AgentSession') })
  })

  test('an activity that waited for its interval is posted by the timer, without another event', async () => {
    const sent: StreamPost[] = []
    let posted: () => void = () => {}
    const second = new Promise<void>((resolve) => (posted = resolve))
    const runner = activityRunner({
      stream: activityStream({ sessionId: 's', runKey: 'r', intervalMs: 50 }),
      deps: {
        post: async (p) => {
          sent.push(p)
          if (sent.length === 2) posted()
        },
      },
    })
    runner.onEvent(thought('now'))
    runner.onEvent(thought('waits'))
    await second
    expect(sent.map((p) => (p.kind === 'activity' ? p.content : null))).toEqual([
      { type: 'thought', body: 'now' },
      { type: 'thought', body: 'waits' },
    ])
    expect((await runner.finish('response', 'Done.')).final).toBe('posted')
  })

  test('a final that cannot be posted is reported with its error, not thrown', async () => {
    const runner = activityRunner({
      stream: activityStream({ sessionId: 's', runKey: 'r' }),
      deps: {
        post: async () => {
          throw new FactoryError('relay_unreachable', 'the relay at http://127.0.0.1:9 is unreachable')
        },
      },
    })
    const end = await runner.finish('error', 'The tests fail.')
    expect(end.final).toBe('failed')
    expect(end.error?.code).toBe('relay_unreachable')
  })
})

describe('through the relay into the session', () => {
  let both: SandboxRelay
  let sandbox: Sandbox
  let relay: RelayProcess
  beforeAll(async () => {
    both = await sandboxWithRelay('activities-')
    ;({ sandbox, relay } = both)
  })
  afterAll(async () => {
    await both?.stop()
  })

  test('a run arrives in the session in order with the right types, its tool call replaced by the result, the plan set, one final response', async () => {
    const { session } = await sandboxDelegate(sandbox.baseUrl, { issue: 'ENG-2', user: 'reviewer@sandbox.local', app: 'rosie' })
    const client = agentSessionClient({ relayUrl: relay.url, token: WORKER_TOKEN, orgId: sandbox.store.data.organization.id })
    const runner = activityRunner({
      stream: activityStream({ sessionId: session.id, runKey: 'run-1', intervalMs: 0 }),
      deps: { post: sessionPost(client, session.id) },
    })
    const events: EngineEvent[] = [
      { kind: 'started', sessionId: 'engine-session' },
      { kind: 'plan', items: [{ content: 'Look around', status: 'inProgress' }] },
      thought('Reading the issue'),
      action('Bash', '{"command":"ls"}'),
      result('Bash', 'README.md\nsrc'),
      { kind: 'plan', items: [{ content: 'Look around', status: 'completed' }] },
      { kind: 'text', text: 'Everything is in place.' },
    ]
    for (const e of events) runner.onEvent(e)
    const end = await runner.finish('response', 'Done: nothing needed changing.')
    expect(end).toMatchObject({ final: 'posted', stopped: null, failed: 0 })

    const [s] = (await sandboxSessions(sandbox.baseUrl, 'ENG-2')).filter((x: { id: string }) => x.id === session.id)
    const shown = s.activities
      .filter((a: { content: { body?: string } }) => a.content.body !== 'Received: queued for a worker')
      .map((a: { content: Record<string, string> }) => a.content)
    expect(shown).toEqual([
      { type: 'thought', body: 'Reading the issue' },
      { type: 'action', action: 'Bash', parameter: 'ls', result: 'README.md\nsrc' },
      { type: 'thought', body: 'Everything is in place.' },
      { type: 'response', body: 'Done: nothing needed changing.' },
    ])
    expect(s.plan).toEqual([{ content: 'Look around', status: 'completed' }])
    expect(s.status).toBe('complete')
    // The ephemeral action was posted, then replaced by its result: hidden from the list, still there by id.
    const replaced = sandbox.store.data.agentActivities.filter((a) => a.agentSessionId === session.id && a.replacedAt)
    expect(replaced.map((a) => [a.content.type, a.ephemeral])).toEqual([['action', true]])
    // Posting the same run again duplicates nothing: every id is already there.
    const again = activityRunner({
      stream: activityStream({ sessionId: session.id, runKey: 'run-1', intervalMs: 0 }),
      deps: { post: sessionPost(client, session.id) },
    })
    for (const e of events) again.onEvent(e)
    expect((await again.finish('response', 'Done: nothing needed changing.')).final).toBe('posted')
    const count = sandbox.store.data.agentActivities.filter((a) => a.agentSessionId === session.id).length
    expect(count).toBe(s.activities.length + 1)
  })
})
