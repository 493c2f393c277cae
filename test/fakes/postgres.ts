/**
 * A throwaway PostgreSQL server for tests and benches: Debian's binaries (initdb, pg_ctl) in a temp
 * dir, listening on 127.0.0.1 only (a free port, `trust` auth for 127.0.0.1 and nothing else),
 * fsync on (durability is what the relay store promises). initdb refuses to run as root, so as root
 * the server runs as `nobody`. Test files share one server per process (`createDatabase()` hands
 * each a fresh database). A watchdog process stops it and removes its dir once the process that
 * started it is gone (`bun test` runs no exit hooks; a killed run must not leave servers behind).
 * Without the binaries,
 * `postgresUnavailable()` says why, for the skip's title.
 */
import { SQL } from 'bun'
import { spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { run } from '../../lib/proc.ts'

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string
  port: number
  /** The temp dir (data dir, socket dir, log); removed by stop(). */
  dir: string
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Promise<string>
  /** The server log so far (shown when something fails). */
  log(): string
  stop(): Promise<void>
}

const START_TIMEOUT_MS = 60_000

/** The directory holding initdb and pg_ctl (PATH first, then Debian's /usr/lib/postgresql/N/bin), or null. */
export function postgresBinDir(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const initdb = join(dir, 'initdb')
    // The Debian symlinks in /usr/local/bin must resolve: pg_ctl finds postgres next to its real path.
    if (existsSync(initdb) && existsSync(join(dir, 'pg_ctl'))) return join(realpathSync(initdb), '..')
  }
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return null
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
  for (const v of versions) {
    const dir = join(root, v, 'bin')
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir
  }
  return null
}

/** Why no PostgreSQL server can be started here, or null when one can. */
export function postgresUnavailable(): string | null {
  if (postgresBinDir()) return null
  return "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin: install Debian's postgresql package"
}

/** As root, the argv prefix that runs a command as nobody (initdb and postgres refuse root). */
function asUnprivileged(): { prefix: string[]; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find(existsSync)
  const prefix = setpriv
    ? [setpriv, '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--']
    : [['/usr/sbin/runuser', '/sbin/runuser'].find(existsSync) ?? 'runuser', '-u', 'nobody', '--']
  const id = (flag: string) => Number(spawnSync('id', [flag, 'nobody'], { encoding: 'utf8' }).stdout.trim())
  return { prefix, uid: id('-u'), gid: id('-g') }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Start a fresh server (initdb, pg_ctl start -w); throws with the server log when it does not come up. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir()
  if (!bin) throw new Error(postgresUnavailable()!)
  const user = asUnprivileged()
  const dir = mkdtempSync(join(tmpdir(), 'relay-pg-'))
  const watchdog = startWatchdog(dir)
  const data = join(dir, 'data')
  const logFile = join(dir, 'server.log')
  mkdirSync(data, { mode: 0o700 })
  writeFileSync(logFile, '')
  if (user) for (const p of [dir, data, logFile]) chownSync(p, user.uid, user.gid)
  const prefix = user?.prefix ?? []
  const readLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '')
  const fail = (what: string, out: string): never => {
    watchdog.stop()
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`test PostgreSQL: ${what}\n${out.trim()}`)
  }

  // --no-sync only skips initdb's own final fsync of the template files; the server runs with fsync on.
  const init = await run([...prefix, join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], {
    cwd: dir,
    timeoutMs: START_TIMEOUT_MS,
  })
  if (init.exitCode !== 0) fail(`initdb failed (${init.killed ?? `exit ${init.exitCode}`})`, init.stdout + init.stderr)
  writeFileSync(join(data, 'pg_hba.conf'), 'host all all 127.0.0.1/32 trust\n')

  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const conf = [
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      'fsync = on',
      'synchronous_commit = on',
      'max_connections = 300',
      "log_min_messages = 'warning'",
    ]
    writeFileSync(join(data, 'postgresql.auto.conf'), conf.join('\n') + '\n')
    if (user) chownSync(join(data, 'postgresql.auto.conf'), user.uid, user.gid)
    const ctl = await run(
      [...prefix, join(bin, 'pg_ctl'), 'start', '-D', data, '-l', logFile, '-w', '-t', String(START_TIMEOUT_MS / 1000)],
      {
        cwd: dir,
        timeoutMs: START_TIMEOUT_MS + 5_000,
      },
    )
    if (ctl.exitCode === 0) {
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`
      return serverHandle({ url, port, dir, data, bin, prefix, readLog, watchdog })
    }
    // Another process may have taken the port between freePort() and the bind: try another.
    if (attempt < 3 && /could not bind|Address already in use/i.test(readLog())) continue
    fail(`pg_ctl start failed (${ctl.killed ?? `exit ${ctl.exitCode}`}); server log:`, ctl.stdout + ctl.stderr + '\n' + readLog())
  }
}

function serverHandle(s: {
  url: string
  port: number
  dir: string
  data: string
  bin: string
  prefix: string[]
  readLog: () => string
  watchdog: { stop(): void }
}) {
  const admin = new SQL(s.url, { max: 1, idleTimeout: 5 })
  let databases = 0
  let stopped = false
  const handle: PostgresServer = {
    url: s.url,
    port: s.port,
    dir: s.dir,
    log: s.readLog,
    async createDatabase() {
      const name = `relay_${process.pid}_${++databases}`
      await admin.unsafe(`CREATE DATABASE ${name}`)
      return s.url.replace(/\/postgres$/, `/${name}`)
    },
    async stop() {
      if (stopped) return
      stopped = true
      s.watchdog.stop()
      await admin.close({ timeout: 1 }).catch(() => {})
      await run([...s.prefix, join(s.bin, 'pg_ctl'), 'stop', '-D', s.data, '-m', 'fast', '-w', '-t', '30'], {
        cwd: s.dir,
        timeoutMs: 35_000,
      })
      rmSync(s.dir, { recursive: true, force: true })
    },
  }
  return handle
}

/**
 * A detached shell that waits for this process to end, then shuts down the postmaster named in
 * postmaster.pid, if any (SIGQUIT: immediate, the data is thrown away), and removes `dir`.
 * Started before initdb, so a run killed during start-up leaves nothing either; stop() kills it.
 */
function startWatchdog(dir: string) {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'pm=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)',
    'if [ -n "$pm" ]; then kill -QUIT "$pm" 2>/dev/null; while kill -0 "$pm" 2>/dev/null; do sleep 0.2; done; fi',
    'rm -rf "$2"',
  ].join('\n')
  const child = spawn('sh', ['-c', script, 'pg-watchdog', String(process.pid), dir], { detached: true, stdio: 'ignore' })
  child.unref()
  return {
    stop() {
      try {
        if (child.pid) process.kill(child.pid, 'SIGKILL')
      } catch {}
    },
  }
}

let shared: Promise<PostgresServer> | undefined

/** The process's shared test server (started on first use, stopped after the process by its watchdog). */
export function sharedPostgres(): Promise<PostgresServer> {
  shared ??= startPostgres()
  return shared
}

/** A fresh database on the shared server; returns its URL. */
export async function createDatabase(): Promise<string> {
  return (await sharedPostgres()).createDatabase()
}
