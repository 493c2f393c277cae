/**
 * One agent, several repositories, in agent_session mode (lib/steps/route.ts), all real processes:
 * the sandbox, a relay process, the worker. When no repos rule decides, Linear's
 * issueRepositorySuggestions is asked (the sandbox gives 0.9 to a candidate whose name is a word
 * of the title, 0.3 to the others); a confident answer is taken, else the user is asked
 * with a `select` elicitation and their reply routes the run.
 */
import { afterAll, afterEach, expect, test } from 'bun:test'
import { join } from 'node:path'
import { sandboxPrompt } from '../lib/sandbox/client.ts'
import { createSampleOrigin } from '../lib/sandbox/sample-repo.ts'
import { removeSetups, setup, type Setup } from './fakes/agent-session-setup.ts'
import { gitSync } from './helpers.ts'

afterAll(removeSetups)
let s: Setup | undefined
afterEach(async () => {
  await s?.stop()
  s = undefined
})

const branchesOf = (bare: string) => gitSync(['for-each-ref', '--format=%(refname:short)', 'refs/heads'], bare).split('\n').filter(Boolean)

/** Two repositories whose rules (labels backend / frontend) never hold for ENG-1 ("Add a health check", no labels). */
async function twoRepos(first: string, second: string): Promise<{ s: Setup; other: string }> {
  let other = ''
  const made = await setup({
    repoLines: (origin, dir) => {
      other = createSampleOrigin(join(dir, 'other'))
      return [
        '    repos:',
        `      - { url: ${first === 'main' ? origin : other}, base: main, github: ${first.includes('/') ? first : 'acme/health'}, match: { labels: [backend] } }`,
        `      - { url: ${first === 'main' ? other : origin}, base: main, github: ${second}, match: { labels: [frontend] } }`,
        '',
      ].join('\n')
    },
  })
  return { s: made, other }
}

test("no rule decides and Linear's suggestion is confident (0.9): the run goes to that repository and the response names it", async () => {
  const t = await twoRepos('main', 'acme/web')
  s = t.s
  const sessionId = await s.delegate()
  const run = await s.start()
  expect(run.code, run.stderr).toBe(0)
  expect(run.stderr).toContain('ENG-1: in acme/health (Linear suggests it (confidence 0.90))')
  expect(branchesOf(s.origin).some((b) => b.includes('eng-1'))).toBe(true)
  expect(branchesOf(t.other)).toEqual(['main'])
  expect(s.gh.prs.map((p) => p.html_url)).toEqual([expect.stringContaining('/acme/health/pull/')])
  const session = await s.session(sessionId)
  const responses = session.activities.filter((a) => a.content.type === 'response')
  expect(responses).toHaveLength(1)
  expect(responses[0]!.content.body).toContain('Repository: acme/health')
  expect(session.activities.some((a) => a.content.type === 'elicitation')).toBe(false)
}, 120_000)

test('not confident: one select elicitation lists the candidates, nothing runs; the reply naming one runs it there', async () => {
  const t = await twoRepos('acme/api', 'acme/web')
  s = t.s
  const sessionId = await s.delegate()
  const held = await s.start()
  expect(held.code).toBe(1)
  expect(held.stderr).toContain('ENG-1 matches no repository of agent rosie')

  const activities = () => s!.sandbox.store.data.agentActivities.filter((a) => a.agentSessionId === sessionId)
  const asked = activities().filter((a) => a.content.type === 'elicitation')
  expect(asked).toHaveLength(1)
  expect(asked[0]!.signal).toBe('select')
  expect(asked[0]!.signalMetadata).toEqual({
    options: [
      { label: 'acme/api', value: 'acme/api' },
      { label: 'acme/web', value: 'acme/web' },
    ],
  })
  expect(String(asked[0]!.content.body)).toContain("Linear's best guess, acme/api, has confidence 0.30, under 0.8")
  expect((await s.session(sessionId)).status).toBe('awaitingInput')
  expect(s.record()?.phase).toBe('escalated')
  expect(branchesOf(s.origin)).toEqual(['main'])
  expect(branchesOf(t.other)).toEqual(['main'])

  // Asking again changes nothing: no second question.
  await s.start()
  expect(activities().filter((a) => a.content.type === 'elicitation')).toHaveLength(1)

  await sandboxPrompt(s.sandbox.baseUrl, { session: sessionId, body: 'acme/web', user: 'riley@rose.test' })
  const run = await s.start()
  expect(run.code, run.stderr).toBe(0)
  expect(run.stderr).toContain('ENG-1: in acme/web (chosen in the agent session)')
  expect(branchesOf(s.origin).some((b) => b.includes('eng-1'))).toBe(true)
  expect(branchesOf(t.other)).toEqual(['main'])
  expect(s.gh.prs.map((p) => p.html_url)).toEqual([expect.stringContaining('/acme/web/pull/')])
  expect(activities().filter((a) => a.content.type === 'response')).toHaveLength(1)
}, 120_000)
