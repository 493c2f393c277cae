/** The poll step's promise about the cursor (invariant 3): it never passes an issue that is not durably recorded. */
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { loadConfig } from '../lib/config.ts'
import { agentContext } from '../lib/context.ts'
import { readState } from '../lib/state.ts'
import { pollAgent } from '../lib/steps/poll.ts'
import { createLinearTracker } from '../lib/tracker/linear.ts'
import type { Tracker } from '../lib/tracker/types.ts'
import { AGENT_KEY, type Fixture, fixture } from './helpers.ts'

let fx: Fixture | undefined
afterEach(async () => {
  await fx?.cleanup()
  fx = undefined
})

describe('poll', () => {
  test('a failure while recording the polled issues leaves the cursor where it was, so the next poll still queues them', async () => {
    fx = await fixture({
      issues: [
        { team: 'ENG', title: 'First', assignee: 'agent@rose.test' },
        { team: 'ENG', title: 'Second', assignee: 'agent@rose.test' },
      ],
    })
    const { config, path } = loadConfig(fx.configPath, fx.env)
    const real = createLinearTracker({ apiKey: AGENT_KEY, apiUrl: fx.sandbox.url })
    let inject = true
    // The real sandbox answer, except that recording its last issue fails once (as a full disk or a crash would).
    const tracker: Tracker = {
      ...real,
      async poll(cursor, opts) {
        const res = await real.poll(cursor, opts)
        if (inject) {
          inject = false
          Object.defineProperty(res.issues.at(-1)!, 'title', {
            get() {
              throw new Error('injected failure while recording the issue')
            },
          })
        }
        return res
      },
    }
    const ctx = agentContext({ config, configPath: path, agent: config.agents[0]!, env: { ...process.env, ...fx.env }, tracker })
    const statePath = join(fx.home, 'state.json')
    const cursor = () => readState(statePath).agents.tester?.cursor ?? null

    await expect(pollAgent(ctx)).rejects.toThrow('injected failure')
    expect(cursor()).toBeNull()

    const next = await pollAgent(ctx)
    expect(next.items.map((i) => [i.issue.identifier, i.decision.action]).sort()).toEqual([
      ['ENG-1', 'queue'],
      ['ENG-2', 'queue'],
    ])
    const records = Object.values(readState(statePath).agents.tester!.issues)
    expect(records.map((r) => [r.identifier, r.phase]).sort()).toEqual([
      ['ENG-1', 'queued'],
      ['ENG-2', 'queued'],
    ])
    expect(cursor()).not.toBeNull()
  }, 30_000)
})
