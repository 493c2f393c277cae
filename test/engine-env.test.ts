/** What an engine process gets: its scrubbed env, its credential, its switches, and which binary. */
import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FactoryError } from '../lib/errors.ts'
import { claudeEnvAdditions } from '../lib/engines/claude.ts'
import { engineEnv } from '../lib/engines/env.ts'
import { projectEngineBin, resolveEngineBin } from '../lib/engines/resolve.ts'
import { DENIED_ENV_NAMES } from '../lib/secrets.ts'

const everythingDenied = Object.fromEntries(
  [...DENIED_ENV_NAMES, 'LINEAR_API_KEY', 'LANGFUSE_SECRET_KEY', 'FACTORY_SECRET_X', 'MY_AGENT_TOKEN'].map((n) => [n, `value-of-${n}`]),
)

describe('engineEnv', () => {
  for (const engine of ['claude', 'codex', 'console'] as const) {
    test(`${engine} gets none of the denied variables nor the agent's token, and keeps harmless ones`, () => {
      const env = engineEnv(engine, { ...everythingDenied, PATH: '/usr/bin', HOME: '/home/x', HARMLESS: 'yes' }, ['MY_AGENT_TOKEN'])
      for (const name of Object.keys(everythingDenied)) expect(env[name]).toBeUndefined()
      expect(env).toMatchObject({ PATH: '/usr/bin', HOME: '/home/x', HARMLESS: 'yes' })
    })
  }

  test("claude gets the factory's CLAUDE_AUTH_TOKEN as CLAUDE_CODE_OAUTH_TOKEN, and only claude does", () => {
    const processEnv = { CLAUDE_AUTH_TOKEN: 'fake-subscription-oauth-token', PATH: '/bin' }
    expect(engineEnv('claude', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBe('fake-subscription-oauth-token')
    expect(engineEnv('claude', processEnv).CLAUDE_AUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', processEnv).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
    expect(engineEnv('codex', { ...processEnv, CLAUDE_CODE_OAUTH_TOKEN: 'stray' }).CLAUDE_CODE_OAUTH_TOKEN).toBeUndefined()
  })

  test('claude without CLAUDE_AUTH_TOKEN keeps a CLAUDE_CODE_OAUTH_TOKEN the user exported', () => {
    expect(engineEnv('claude', { CLAUDE_CODE_OAUTH_TOKEN: 'own' }).CLAUDE_CODE_OAUTH_TOKEN).toBe('own')
  })

  test('claude runs get the quiet offline switches, and IS_SANDBOX only when bypassing permissions as root', () => {
    const quiet = { DISABLE_TELEMETRY: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1' }
    expect(claudeEnvAdditions({ permissionMode: 'acceptEdits' })).toEqual(quiet)
    const root = process.getuid?.() === 0
    expect(claudeEnvAdditions({ permissionMode: 'bypassPermissions' })).toEqual(root ? { ...quiet, IS_SANDBOX: '1' } : quiet)
  })
})

describe('resolveEngineBin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rose-resolve-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const executable = (path: string) => {
    mkdirSync(join(path, '..'), { recursive: true })
    writeFileSync(path, '#!/bin/sh\n')
    chmodSync(path, 0o755)
    return path
  }
  const onPath = executable(join(dir, 'path', 'claude'))
  const configured = executable(join(dir, 'configured', 'my-claude'))
  const fromEnv = executable(join(dir, 'env', 'claude-env'))

  test('a configured path wins over the env variable and PATH', () => {
    expect(resolveEngineBin('claude', configured, { ROSE_CLAUDE_BIN: fromEnv, PATH: join(dir, 'path') })).toBe(configured)
  })

  test('ROSE_CLAUDE_BIN / ROSE_CODEX_BIN win over PATH', () => {
    expect(resolveEngineBin('claude', undefined, { ROSE_CLAUDE_BIN: fromEnv, PATH: join(dir, 'path') })).toBe(fromEnv)
  })

  test('without either, the binary on PATH is used', () => {
    expect(resolveEngineBin('claude', undefined, { PATH: `/nonexistent:${join(dir, 'path')}` })).toBe(onPath)
  })

  test('a configured path that does not exist is an engine_missing error naming it and the fix, not a fallback', () => {
    const missing = join(dir, 'nope', 'claude')
    let err: unknown
    try {
      resolveEngineBin('claude', missing, { PATH: join(dir, 'path') })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FactoryError)
    expect((err as FactoryError).code).toBe('engine_missing')
    expect((err as FactoryError).message).toContain(missing)
    expect((err as FactoryError).fix).toContain('npm install -g @anthropic-ai/claude-code')
    expect(() => resolveEngineBin('codex', undefined, { ROSE_CODEX_BIN: missing })).toThrow(/ROSE_CODEX_BIN/)
  })

  test("with nothing on PATH it falls back to the project's engines/ install, or says how to get one", () => {
    for (const name of ['claude', 'codex'] as const) {
      let found: string | undefined
      let err: FactoryError | undefined
      try {
        found = resolveEngineBin(name, undefined, { PATH: '' })
      } catch (e) {
        err = e as FactoryError
      }
      if (found) expect(found).toBe(projectEngineBin(name))
      else expect(err?.fix).toContain('make engines')
    }
    expect(projectEngineBin('codex')).toEndWith('/engines/node_modules/.bin/codex')
  })
})
