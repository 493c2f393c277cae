/**
 * rose-factory as a service of the user: a systemd --user unit on Linux, a launchd agent on macOS.
 * planDaemon decides (the file's text and the commands, pure); installDaemon/uninstallDaemon act,
 * through `deps`. The unit stops the factory the way Ctrl-C does: SIGTERM to the driver only
 * (KillMode=mixed), which stops its runs (they queue again) within 15 s; SIGKILL only after
 * TimeoutStopSec, to whatever is left.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FactoryError } from './errors.ts'

export type DaemonPlatform = 'linux' | 'darwin'

export interface DaemonPaths {
  /** The user's home (~/.config/systemd/user, ~/Library/LaunchAgents). */
  home: string
  /** FACTORY_HOME (launchd's log files go to its logs/). */
  factoryHome: string
  /** The command the service runs: the installed launcher, absolute. */
  launcher: string
  /** The user's uid (launchd's gui/<uid> domain). */
  uid: number
}

export interface DaemonRequest {
  platform: DaemonPlatform
  name: string
  /** Absolute path of the env file (KEY=VALUE lines), if any. */
  envFile?: string
  /** Its variables (launchd has no EnvironmentFile: they go into the plist). */
  envVars?: Record<string, string>
  /** rose-factory's arguments, e.g. ['start'] or ['relay', '--local-queue']. */
  args: string[]
  paths: DaemonPaths
  /** Variables of the installing shell the service keeps (PATH, so the engine CLIs and git are found; FACTORY_HOME). */
  keepEnv?: Record<string, string>
}

export interface DaemonPlan {
  /** The unit or plist. */
  file: { path: string; content: string; mode: number }
  /** Directories to create first (launchd's log directory). */
  dirs: string[]
  /** What to run after writing it, in order. */
  commands: string[][]
}

/** Seconds systemd/launchd wait after SIGTERM before SIGKILL: the driver gives its runs 15 s to stop and queue again. */
export const STOP_TIMEOUT_SECONDS = 45

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/

/** A unit/label name, or a usage error naming it. */
export function checkName(name: string): string {
  if (!NAME_RE.test(name))
    throw new FactoryError('usage', `invalid --name ${JSON.stringify(name)}`, {
      fix: 'use letters, digits, ".", "_" and "-", e.g. --name rose-relay',
    })
  return name
}

/** One word of a systemd command line or assignment: always double-quoted, `\`, `"` escaped, `$` and `%` doubled (no expansion). */
export function systemdQuote(word: string): string {
  const body = word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\$/g, '$$$$').replace(/%/g, '%%')
  return `"${body}"`
}

/** A path in a systemd setting that takes the rest of the line as one path (EnvironmentFile=): only `%` is special. */
const systemdPath = (path: string) => path.replace(/%/g, '%%')

function systemdUnit(req: DaemonRequest): string {
  const env = Object.entries(req.keepEnv ?? {}).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`)
  return [
    '[Unit]',
    `Description=rose-factory ${req.args.join(' ')}`,
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[req.paths.launcher, ...req.args].map(systemdQuote).join(' ')}`,
    ...env,
    ...(req.envFile ? [`EnvironmentFile=${systemdPath(req.envFile)}`] : []),
    'Restart=always',
    'RestartSec=5',
    // SIGTERM to the driver alone: it stops its runs, which queue again; SIGKILL to what is left only after the timeout.
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${STOP_TIMEOUT_SECONDS}`,
    'StandardOutput=journal',
    'StandardError=journal',
    `SyslogIdentifier=${req.name}`,
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n')
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const str = (s: string) => `<string>${xml(s)}</string>`

function launchdPlist(req: DaemonRequest, logs: string): string {
  const env = { ...req.keepEnv, ...req.envVars }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `  <key>Label</key>${str(req.name)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...[req.paths.launcher, ...req.args].map((a) => `    ${str(a)}`),
    '  </array>',
    '  <key>RunAtLoad</key><true/>',
    '  <key>KeepAlive</key><true/>',
    '  <key>ThrottleInterval</key><integer>5</integer>',
    `  <key>ExitTimeOut</key><integer>${STOP_TIMEOUT_SECONDS}</integer>`,
    `  <key>StandardOutPath</key>${str(join(logs, `${req.name}.out.log`))}`,
    `  <key>StandardErrorPath</key>${str(join(logs, `${req.name}.err.log`))}`,
    '  <key>EnvironmentVariables</key>',
    '  <dict>',
    ...Object.entries(env).map(([k, v]) => `    <key>${xml(k)}</key>${str(v)}`),
    '  </dict>',
    '</dict>',
    '</plist>',
    '',
  ].join('\n')
}

/** The unit (Linux) or plist (macOS) for `req`, where it goes, and the commands that load and start it. Pure. */
export function planDaemon(req: DaemonRequest): DaemonPlan {
  checkName(req.name)
  if (req.platform === 'linux') {
    const unit = `${req.name}.service`
    return {
      file: { path: join(req.paths.home, '.config', 'systemd', 'user', unit), content: systemdUnit(req), mode: 0o644 },
      dirs: [],
      commands: [
        ['systemctl', '--user', 'daemon-reload'],
        ['systemctl', '--user', 'enable', unit],
        // restart, not start: a reinstall must pick up the new unit.
        ['systemctl', '--user', 'restart', unit],
      ],
    }
  }
  const logs = join(req.paths.factoryHome, 'logs')
  const path = join(req.paths.home, 'Library', 'LaunchAgents', `${req.name}.plist`)
  return {
    // 0600: the env file's variables (tokens) are in it.
    file: { path, content: launchdPlist(req, logs), mode: 0o600 },
    dirs: [logs],
    commands: [
      ['launchctl', 'bootout', `gui/${req.paths.uid}/${req.name}`],
      ['launchctl', 'bootstrap', `gui/${req.paths.uid}`, path],
    ],
  }
}

/** What uninstalling `name` removes and runs. Pure. */
export function planUninstall(
  platform: DaemonPlatform,
  name: string,
  paths: Pick<DaemonPaths, 'home' | 'uid'>,
): { path: string; commands: string[][] } {
  const { home, uid } = paths
  checkName(name)
  if (platform === 'linux') {
    const unit = `${name}.service`
    return {
      path: join(home, '.config', 'systemd', 'user', unit),
      commands: [
        ['systemctl', '--user', 'disable', '--now', unit],
        ['systemctl', '--user', 'daemon-reload'],
      ],
    }
  }
  return { path: join(home, 'Library', 'LaunchAgents', `${name}.plist`), commands: [['launchctl', 'bootout', `gui/${uid}/${name}`]] }
}

/** KEY=VALUE lines of an env file (systemd's EnvironmentFile format: `#` comments, optional quotes), or a usage error naming the line. */
export function parseEnvFile(text: string, path: string): Record<string, string> {
  const vars: Record<string, string> = {}
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) return
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (!m)
      throw new FactoryError('usage', `${path}:${i + 1}: not a KEY=VALUE line`, {
        fix: 'write one KEY=VALUE per line (# starts a comment)',
      })
    const v = m[2]!
    vars[m[1]!] = /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v
  })
  return vars
}

/** The launcher the service runs: bin/rose-factory.js of this package (lib/ and the bundle's dist/ are both one level under its root). */
export function launcherPath(): string {
  return fileURLToPath(new URL('../bin/rose-factory.js', import.meta.url))
}

export interface DaemonDeps {
  /** Run a command; returns its exit code and output. */
  run: (cmd: string[]) => { code: number; out: string }
  /** True when `bin` is on PATH. */
  has: (bin: string) => boolean
  write: (path: string, content: string, mode: number) => void
  remove: (path: string) => void
  mkdir: (path: string) => void
  exists: (path: string) => boolean
  read: (path: string) => string
}

export const realDeps: DaemonDeps = {
  run(cmd) {
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' })
    return { code: r.status ?? 1, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() }
  },
  has: (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0,
  write(path, content, mode) {
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, content, { mode })
  },
  remove: (path) => rmSync(path, { force: true }),
  mkdir: (path) => void mkdirSync(path, { recursive: true, mode: 0o700 }),
  exists: existsSync,
  read: (path) => readFileSync(path, 'utf8'),
}

/** `~/x` and relative paths made absolute. */
export function expandPath(path: string, home = homedir()): string {
  return resolve(path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path)
}

export interface InstallOptions {
  platform: NodeJS.Platform
  name: string
  envFile?: string
  args: string[]
  paths: DaemonPaths
  keepEnv?: Record<string, string>
  /** Print only: write nothing, run nothing. */
  print: boolean
}

/** The request for `opts`, reading the env file (missing: a usage error naming it). */
export function daemonRequest(opts: InstallOptions, deps: Pick<DaemonDeps, 'exists' | 'read'> = realDeps): DaemonRequest {
  if (opts.platform !== 'linux' && opts.platform !== 'darwin')
    throw new FactoryError('usage', `install-daemon supports Linux (systemd) and macOS (launchd), not ${opts.platform}`, {
      fix: 'run `rose-factory start` under your platform service manager by hand',
    })
  const envFile = opts.envFile ? expandPath(opts.envFile, opts.paths.home) : undefined
  if (envFile && !deps.exists(envFile))
    throw new FactoryError('usage', `env file ${envFile} does not exist`, {
      fix: `create it (one KEY=VALUE a line, e.g. LINEAR_API_KEY=..., mode 600), or leave out --env-file`,
    })
  const envVars = envFile ? parseEnvFile(deps.read(envFile), envFile) : undefined
  return { platform: opts.platform, name: opts.name, envFile, envVars, args: opts.args, paths: opts.paths, keepEnv: opts.keepEnv }
}

/** Write the plan's file and run its commands (a missing systemctl/launchctl: say what to run). Returns lines for the user. */
export function applyDaemon(plan: DaemonPlan, platform: DaemonPlatform, deps: DaemonDeps = realDeps): string[] {
  const lines: string[] = []
  for (const d of plan.dirs) deps.mkdir(d)
  deps.write(plan.file.path, plan.file.content, plan.file.mode)
  lines.push(`wrote ${plan.file.path}`)
  const tool = platform === 'linux' ? 'systemctl' : 'launchctl'
  if (!deps.has(tool)) {
    lines.push(`${tool} not found: run these where the service manager is available:`, ...plan.commands.map((c) => `  ${c.join(' ')}`))
    return lines
  }
  for (const [i, cmd] of plan.commands.entries()) {
    const r = deps.run(cmd)
    // launchctl bootout of a service not loaded yet fails, harmlessly (the first command of a first install).
    if (r.code !== 0 && !(platform === 'darwin' && i === 0))
      throw new FactoryError('daemon_failed', `\`${cmd.join(' ')}\` exited ${r.code}${r.out ? `: ${r.out}` : ''}`, {
        fix:
          platform === 'linux'
            ? 'check `systemctl --user status` works in this session (a user manager needs a login session or lingering)'
            : 'check `launchctl print gui/$UID` works in this session',
      })
    lines.push(`ran ${cmd.join(' ')}`)
  }
  if (platform === 'linux') {
    const linger = deps.run(['loginctl', 'show-user', userName(), '-p', 'Linger'])
    if (linger.code !== 0 || !/Linger=yes/.test(linger.out))
      lines.push(`lingering is off: the service stops when you log out. To keep it running: loginctl enable-linger ${userName()}`)
  }
  return lines
}

/** Remove the unit/plist after stopping and disabling it. Returns lines for the user. */
export function uninstallDaemon(
  platform: DaemonPlatform,
  name: string,
  paths: Pick<DaemonPaths, 'home' | 'uid'>,
  deps: DaemonDeps = realDeps,
): string[] {
  const plan = planUninstall(platform, name, paths)
  const lines: string[] = []
  const tool = platform === 'linux' ? 'systemctl' : 'launchctl'
  if (!deps.exists(plan.path))
    throw new FactoryError('usage', `no service named ${name}: ${plan.path} does not exist`, {
      fix: 'pass the --name it was installed with',
    })
  if (deps.has(tool))
    for (const cmd of plan.commands) {
      const r = deps.run(cmd)
      lines.push(r.code === 0 ? `ran ${cmd.join(' ')}` : `\`${cmd.join(' ')}\` exited ${r.code}${r.out ? `: ${r.out}` : ''} (continuing)`)
    }
  else lines.push(`${tool} not found: run \`${plan.commands[0]!.join(' ')}\` where the service manager is available`)
  deps.remove(plan.path)
  lines.push(`removed ${plan.path}`)
  return lines
}

function userName(): string {
  try {
    return process.env.USER || userInfo().username
  } catch {
    return process.env.USER ?? 'root'
  }
}
