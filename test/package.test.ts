/**
 * The packed command: `npm pack` (its prepack bundles dist/), the tarball's contents, and the
 * installed `rose-factory` run the way a user runs it, with no bun on PATH.
 *
 * Why the install is laid out by hand: `npm i -g --prefix <tmp> <tarball>` must resolve the
 * package's dependencies from the registry (even with --offline: npm's cache holds the tarballs
 * `npm ci` fetched, not the registry metadata a fresh resolution needs), and tests have no
 * internet. So the test does what npm's global install does, from the real tarball: unpack it into
 * <prefix>/lib/node_modules/rose-factory, give it its dependencies (this repository's installed
 * node_modules, which hold the same versions, bun's platform binary included) as its own
 * node_modules, and link <prefix>/bin/rose-factory to its bin file. What is under test is all of
 * ours: the files list, the bundle, the launcher finding the package's own Bun, every path the
 * code builds from its own location.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ROOT, tempDir } from './helpers.ts'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const dir = tempDir('rose-pack-')
const prefix = join(dir, 'prefix')
const installed = join(prefix, 'lib', 'node_modules', 'rose-factory')
const command = join(prefix, 'bin', 'rose-factory')
let files: string[] = []

/** A user's environment: node and the system tools on PATH, no bun, a home of its own. */
const userEnv = { PATH: `${dirname(which('node'))}:/usr/bin:/bin`, HOME: join(dir, 'home'), FACTORY_HOME: join(dir, 'fh') }

function which(bin: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' })
  return r.stdout.trim() || `/usr/bin/${bin}`
}

const run = (cmd: string, args: string[], env: Record<string, string> = userEnv) => {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

beforeAll(() => {
  mkdirSync(join(dir, 'home'))
  const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  if (packed.status !== 0) throw new Error(`npm pack failed: ${packed.stderr}`)
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[]
  files = info!.files.map((f) => f.path)
  mkdirSync(installed, { recursive: true })
  const untar = spawnSync('tar', ['-xzf', join(dir, info!.filename), '-C', installed, '--strip-components=1'])
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`)
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(installed, 'node_modules'))
  mkdirSync(join(prefix, 'bin'))
  symlinkSync('../lib/node_modules/rose-factory/bin/rose-factory.js', command)
}, 180_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('npm pack', () => {
  test('the tarball holds the launcher, the bundle and the sources, and no tests, benches, engines or mutation set-up', () => {
    expect(files).toContain('bin/rose-factory.js')
    expect(files).toContain('dist/cli.js')
    expect(files).toContain('scripts/run.ts')
    expect(files).toContain('lib/start.ts')
    expect(files.filter((f) => /^(test|bench|mutate|engines)\//.test(f))).toEqual([])
  })
})

describe('the installed rose-factory command (no bun on PATH)', () => {
  test('--version, -v and version print the package version', () => {
    for (const arg of ['--version', '-v', 'version']) {
      const r = run(command, [arg])
      expect(r.code).toBe(0)
      expect(r.stdout).toBe(`${pkg.version}\n`)
    }
  })

  test('--help lists every verb with its description, demo and install-daemon included', () => {
    const r = run(command, ['--help'])
    expect(r.code).toBe(0)
    for (const verb of ['start', 'status', 'config', 'sandbox', 'demo', 'install-daemon', 'uninstall-daemon', 'completion'])
      expect(r.stdout).toContain(verb)
    expect(r.stdout).toContain('Run two tickets end to end on the embedded sandbox')
  })

  test('start --help and help start print the flags of the start verb', () => {
    for (const args of [
      ['start', '--help'],
      ['help', 'start'],
    ]) {
      const r = run(command, args)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain('--once')
      expect(r.stdout).toContain('--dry-run')
    }
  })

  test('completion bash loads the whole command tree from the bundle', () => {
    const r = run(command, ['completion', 'bash'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('install-daemon')
    expect(r.stdout).toContain('--once')
  })

  test('a config check runs the bundled verb end to end (exit 2 naming the missing agents.yaml)', () => {
    const r = run(command, ['config', 'check'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(join(dir, 'fh', 'agents.yaml'))
  })

  test('the demo runs from the installed package: its start and run children are spawned from the shipped sources', () => {
    const r = run(command, ['demo'])
    expect(r.stdout + r.stderr).toContain('FACTORY_NOTES.md')
    expect(r.code).toBe(0)
  }, 120_000)

  test('run by node (the launcher read as JavaScript), it finds the same bun and passes the exit code through', () => {
    expect(run(which('node'), [command, '--version']).stdout).toBe(`${pkg.version}\n`)
    expect(run(which('node'), [command, 'no-such-verb']).code).toBe(2)
  })

  test('without any bun or tsx it exits 127 and says what to do', () => {
    const bare = join(dir, 'bare')
    cpSync(installed, bare, { recursive: true, filter: (src) => !src.endsWith('node_modules') })
    const r = run(join(bare, 'bin', 'rose-factory.js'), ['--version'])
    expect(r.code).toBe(127)
    expect(r.stderr).toContain('Bun not found')
    expect(r.stderr).toContain('fix:')
  })
})
