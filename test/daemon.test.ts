/**
 * install-daemon / uninstall-daemon: the systemd unit (checked by systemd-analyze verify), the
 * launchd plist (checked as a property list), --print writing nothing, paths with spaces, and the
 * commands run (recorded through the deps seam, never run against this machine's service manager).
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { applyDaemon, type DaemonDeps, daemonRequest, planDaemon, realDeps, systemdQuote, uninstallDaemon } from '../lib/daemon.ts'
import { FactoryError } from '../lib/errors.ts'
import { ROOT, tempDir } from './helpers.ts'

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** A temp HOME with a space in its path, an env file and an executable launcher. */
function setup() {
  const dir = tempDir('rose-daemon-')
  dirs.push(dir)
  const home = join(dir, 'my home')
  mkdirSync(join(home, 'rose factory'), { recursive: true })
  const envFile = join(home, 'rose factory', 'daemon.env')
  writeFileSync(envFile, '# tokens\nLINEAR_API_KEY=lin_api_daemon_test\nexport FACTORY_GITHUB_TOKEN="gh test value"\n')
  const launcher = join(dir, 'bin dir', 'rose-factory')
  mkdirSync(join(dir, 'bin dir'))
  writeFileSync(launcher, '#!/bin/sh\nexit 0\n')
  chmodSync(launcher, 0o755)
  const paths = { home, factoryHome: join(home, 'rose factory'), launcher, uid: 1000 }
  return { dir, home, envFile, launcher, paths }
}

/** deps that record the commands and pretend systemctl/launchctl succeed. */
function recordingDeps(opts: { has?: boolean; linger?: boolean } = {}): DaemonDeps & { ran: string[][] } {
  const ran: string[][] = []
  return {
    ...realDeps,
    ran,
    has: () => opts.has ?? true,
    run(cmd) {
      ran.push(cmd)
      return { code: 0, out: cmd[0] === 'loginctl' ? `Linger=${opts.linger ? 'yes' : 'no'}` : '' }
    },
  }
}

const cli = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts', 'cli.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  })

describe('the systemd unit', () => {
  test('passes systemd-analyze verify, with the launcher and the env file in paths with spaces', () => {
    const { dir, envFile, paths } = setup()
    const plan = planDaemon(daemonRequest({ platform: 'linux', name: 'rose-factory', envFile, args: ['start'], paths, print: false }))
    expect(plan.file.content).toContain(`ExecStart=${systemdQuote(paths.launcher)} "start"`)
    expect(plan.file.content).toContain(`EnvironmentFile=${envFile}\n`)
    for (const line of ['Restart=always', 'RestartSec=5', 'KillMode=mixed', 'KillSignal=SIGTERM', 'StandardOutput=journal'])
      expect(plan.file.content).toContain(`${line}\n`)
    const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim()
    if (!analyze) {
      console.warn('skipped systemd-analyze verify: systemd-analyze is not installed (Debian package systemd)')
      return
    }
    const unit = join(dir, plan.file.path.split('/').pop()!)
    writeFileSync(unit, plan.file.content)
    const verified = spawnSync(analyze, ['verify', unit], { encoding: 'utf8' })
    expect(verified.stderr).toBe('')
    expect(verified.status).toBe(0)
    // The check is real: the same unit with a launcher that does not exist fails it.
    writeFileSync(unit, plan.file.content.replace(paths.launcher, `${paths.launcher}-missing`))
    const broken = spawnSync(analyze, ['verify', unit], { encoding: 'utf8' })
    expect(broken.status).not.toBe(0)
    expect(broken.stderr).toContain(`${paths.launcher}-missing`)
  })

  test('quotes every word so spaces, quotes, $ and % reach the command unchanged', () => {
    expect(systemdQuote('/a b/c')).toBe('"/a b/c"')
    expect(systemdQuote('say "hi"\\')).toBe('"say \\"hi\\"\\\\"')
    expect(systemdQuote('$HOME 50%')).toBe('"$$HOME 50%%"')
  })

  test('the two documented examples plan verbatim: start, and a relay named rose-relay with its own arguments', () => {
    const { envFile, paths } = setup()
    const start = planDaemon(daemonRequest({ platform: 'linux', name: 'rose-factory', envFile, args: ['start'], paths, print: false }))
    expect(start.file.path).toBe(join(paths.home, '.config/systemd/user/rose-factory.service'))
    const relay = planDaemon(
      daemonRequest({ platform: 'linux', name: 'rose-relay', envFile, args: ['relay', '--local-queue'], paths, print: false }),
    )
    expect(relay.file.path).toBe(join(paths.home, '.config/systemd/user/rose-relay.service'))
    expect(relay.file.content).toContain(`ExecStart=${systemdQuote(paths.launcher)} "relay" "--local-queue"`)
    expect(relay.commands).toEqual([
      ['systemctl', '--user', 'daemon-reload'],
      ['systemctl', '--user', 'enable', 'rose-relay.service'],
      ['systemctl', '--user', 'restart', 'rose-relay.service'],
    ])
  })

  test('installing writes the unit, reloads, enables and starts it, and advises lingering when it is off', () => {
    const { envFile, paths } = setup()
    const deps = recordingDeps({ linger: false })
    const plan = planDaemon(daemonRequest({ platform: 'linux', name: 'rose-factory', envFile, args: ['start'], paths, print: false }))
    const lines = applyDaemon(plan, 'linux', deps)
    expect(existsSync(plan.file.path)).toBe(true)
    expect(deps.ran.map((c) => c.join(' '))).toEqual([
      'systemctl --user daemon-reload',
      'systemctl --user enable rose-factory.service',
      'systemctl --user restart rose-factory.service',
      expect.stringMatching(/^loginctl show-user \S+ -p Linger$/),
    ])
    expect(lines.join('\n')).toContain('loginctl enable-linger')
    expect(applyDaemon(plan, 'linux', recordingDeps({ linger: true })).join('\n')).not.toContain('enable-linger')
  })

  test('without systemctl the unit is written and the commands to run are printed instead', () => {
    const { paths } = setup()
    const deps = recordingDeps({ has: false })
    const plan = planDaemon(daemonRequest({ platform: 'linux', name: 'rose-factory', args: ['start'], paths, print: false }))
    const lines = applyDaemon(plan, 'linux', deps)
    expect(deps.ran).toEqual([])
    expect(lines.join('\n')).toContain('systemctl not found')
    expect(lines.join('\n')).toContain('systemctl --user enable rose-factory.service')
  })

  test('uninstalling disables and stops the service, then removes the unit', () => {
    const { paths } = setup()
    const plan = planDaemon(daemonRequest({ platform: 'linux', name: 'rose-relay', args: ['start'], paths, print: false }))
    applyDaemon(plan, 'linux', recordingDeps({ linger: true }))
    const deps = recordingDeps()
    uninstallDaemon('linux', 'rose-relay', paths, deps)
    expect(existsSync(plan.file.path)).toBe(false)
    expect(deps.ran[0]).toEqual(['systemctl', '--user', 'disable', '--now', 'rose-relay.service'])
    expect(() => uninstallDaemon('linux', 'rose-relay', paths, recordingDeps())).toThrow(/no service named rose-relay/)
  })
})

describe('the launchd plist', () => {
  test('is a valid property list with KeepAlive, RunAtLoad, the arguments, the log paths and the env file variables', () => {
    const { dir, envFile, paths } = setup()
    const plan = planDaemon(
      daemonRequest({ platform: 'darwin', name: 'rose-relay', envFile, args: ['relay', '--local-queue'], paths, print: false }),
    )
    expect(plan.file.path).toBe(join(paths.home, 'Library/LaunchAgents/rose-relay.plist'))
    expect(plan.file.mode).toBe(0o600)
    const plist = parsePlist(plan.file.content)
    expect(plist).toEqual({
      Label: 'rose-relay',
      ProgramArguments: [paths.launcher, 'relay', '--local-queue'],
      RunAtLoad: true,
      KeepAlive: true,
      ThrottleInterval: 5,
      ExitTimeOut: 45,
      StandardOutPath: join(paths.factoryHome, 'logs', 'rose-relay.out.log'),
      StandardErrorPath: join(paths.factoryHome, 'logs', 'rose-relay.err.log'),
      EnvironmentVariables: { LINEAR_API_KEY: 'lin_api_daemon_test', FACTORY_GITHUB_TOKEN: 'gh test value' },
    })
    expect(plan.commands).toEqual([
      ['launchctl', 'bootout', 'gui/1000/rose-relay'],
      ['launchctl', 'bootstrap', 'gui/1000', plan.file.path],
    ])
    const plutil = spawnSync('sh', ['-c', 'command -v plutil'], { encoding: 'utf8' }).stdout.trim()
    if (plutil) {
      writeFileSync(join(dir, 'x.plist'), plan.file.content)
      expect(spawnSync(plutil, ['-lint', join(dir, 'x.plist')]).status).toBe(0)
    }
  })
})

describe('install-daemon on the command line', () => {
  test('--print prints the unit and writes nothing in HOME', () => {
    const { home, envFile } = setup()
    const r = cli(['install-daemon', '--print', '--env-file', envFile, '--', 'start'], { HOME: home })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('[Service]')
    expect(r.stdout).toContain(`EnvironmentFile=${envFile}`)
    // (Bun itself may create ~/.bun, its cache: that is the runtime, not install-daemon.)
    expect(readdirSync(home).filter((f) => f !== '.bun')).toEqual(['rose factory'])
  })

  test('a missing env file is exit 2 naming it (a ~/ path is expanded against HOME)', () => {
    const { home } = setup()
    const r = cli(['install-daemon', '--print', '--env-file', '~/rose-factory/daemon.env', '--', 'start'], { HOME: home })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(join(home, 'rose-factory', 'daemon.env'))
  })

  test('a service name systemd or launchd would not take is exit 2 naming it', () => {
    const { home } = setup()
    const r = cli(['install-daemon', '--print', '--name', 'a/b', '--', 'start'], { HOME: home })
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('"a/b"')
  })

  test('a malformed env file line is a usage error naming the file and line', () => {
    const { envFile, paths } = setup()
    writeFileSync(envFile, 'OK=1\nnot a line\n')
    const err = (() => {
      try {
        daemonRequest({ platform: 'linux', name: 'x', envFile, args: [], paths, print: true })
      } catch (e) {
        return e as FactoryError
      }
    })()
    expect(err?.code).toBe('usage')
    expect(err?.message).toContain(`${envFile}:2`)
  })
})

/** A strict reader of the XML property list format (the plist DTD: dict of key/value, array, string, integer, true, false). */
function parsePlist(text: string): unknown {
  const head =
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
  if (!text.startsWith(head)) throw new Error('missing XML declaration or plist DOCTYPE')
  const tokens = text
    .slice(head.length)
    .match(/<[^>]+>|[^<]+/g)!
    .filter((t) => t.trim() !== '')
  let i = 0
  const unescape = (s: string) => {
    if (/&(?!amp;|lt;|gt;|quot;|apos;)/.test(s)) throw new Error(`bad entity in ${s}`)
    return s
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&apos;/g, "'")
      .replace(/&amp;/g, '&')
  }
  const expect_ = (tag: string) => {
    if (tokens[i] !== tag) throw new Error(`expected ${tag} at token ${i}, got ${tokens[i]}`)
    i++
  }
  const text_ = (close: string) => {
    let s = ''
    if (tokens[i] !== close) s = unescape(tokens[i++]!)
    expect_(close)
    return s
  }
  const value = (): unknown => {
    const t = tokens[i++]
    if (t === '<true/>') return true
    if (t === '<false/>') return false
    if (t === '<string>') return text_('</string>')
    if (t === '<integer>') {
      const s = text_('</integer>')
      if (!/^-?\d+$/.test(s)) throw new Error(`bad integer ${s}`)
      return Number(s)
    }
    if (t === '<array>') {
      const out: unknown[] = []
      while (tokens[i] !== '</array>') out.push(value())
      i++
      return out
    }
    if (t === '<dict>') {
      const out: Record<string, unknown> = {}
      while (tokens[i] !== '</dict>') {
        expect_('<key>')
        const k = text_('</key>')
        if (Object.hasOwn(out, k)) throw new Error(`duplicate key ${k}`)
        out[k] = value()
      }
      i++
      return out
    }
    throw new Error(`unexpected token ${t}`)
  }
  expect_('<plist version="1.0">')
  const root = value()
  expect_('</plist>')
  if (i !== tokens.length) throw new Error('trailing content after </plist>')
  return root
}
