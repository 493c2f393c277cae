#!/bin/sh
':' /*
# The installed `rose-factory` command. This file is both a POSIX sh script and a JavaScript module.
# Run as a command, sh executes the lines down to `exec`: it finds the Bun this package depends on
# and replaces itself with `bun dist/cli.js ARGS` (same pid: no extra process, so signals, exit codes
# and systemd's KillMode reach the CLI itself, and no Node start-up, ~60 ms, is paid on each call).
# Only when no Bun is found does sh hand this file to node, which reads it as JavaScript (everything
# from `':' /*` to the closing comment marker is a string and a comment there): it looks again and
# falls back to tsx, else prints what to do.
# Builtins only on the way (each forked tool costs ~1 ms of a start-up budgeted in tens of ms):
# ${f%/*} for dirname, no subshell, and `-ef` before `wc` below.
f=$0
while [ -L "$f" ]; do
  l=$(readlink "$f")
  case $l in /*) f=$l ;; *) case $f in *"/"*) f=${f%/*}/$l ;; *) f=$l ;; esac ;; esac
done
case $f in *"/"*) d=${f%/*} ;; *) d=. ;; esac
# Not canonicalised (a subshell less): the kernel resolves the path as `cd -P` would.
pkg=$d/..
# The bundle made when packing; a git checkout runs the sources.
cli=$pkg/dist/cli.js
[ -f "$cli" ] || cli=$pkg/scripts/cli.ts
for b in "$pkg/node_modules/bun/bin/bun.exe" "$pkg/../bun/bin/bun.exe" "$pkg/node_modules/.bin/bun" "$pkg/../.bin/bun"; do
  [ -x "$b" ] || continue
  # The npm package's bin/bun.exe is a placeholder until its postinstall put the real binary there,
  # hard-linked as bun.exe and bunx.exe (one file: no need to read its size); else it must be > 1 MB.
  case $b in *.exe) x=${b%bun.exe}bunx.exe ;; *) x=${b}x ;; esac
  if [ "$b" -ef "$x" ] || [ "$(wc -c < "$b")" -gt 1000000 ]; then exec "$b" "$cli" "$@"; fi
done
exec node "$f" "$@"
*/

import { spawn } from 'node:child_process'
import { existsSync, realpathSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = dirname(dirname(realpathSync(fileURLToPath(import.meta.url))))
const require = createRequire(join(pkg, 'package.json'))

/** The bun binary of this package's `bun` dependency (its platform package when the postinstall did not run), else undefined. */
function findBun() {
  const candidates = []
  try {
    const bunPkg = dirname(require.resolve('bun/package.json'))
    candidates.push(join(bunPkg, 'bin', 'bun.exe'))
    const arch = process.arch === 'arm64' ? 'aarch64' : 'x64'
    const platform = process.platform === 'win32' ? 'windows' : process.platform
    for (const name of [`@oven/bun-${platform}-${arch}`, `@oven/bun-${platform}-${arch}-musl`]) {
      try {
        const dir = dirname(createRequire(join(bunPkg, 'package.json')).resolve(`${name}/package.json`))
        candidates.push(join(dir, 'bin', process.platform === 'win32' ? 'bun.exe' : 'bun'))
      } catch {}
    }
  } catch {}
  return candidates.find((c) => existsSync(c) && statSync(c).size > 1_000_000)
}

/** The tsx CLI, when installed beside this package. */
function findTsx() {
  try {
    return join(dirname(require.resolve('tsx/package.json')), 'dist', 'cli.mjs')
  } catch {
    return undefined
  }
}

const args = process.argv.slice(2)
const bun = findBun()
const tsx = bun ? undefined : findTsx()
const bundle = join(pkg, 'dist', 'cli.js')
let child
if (bun) child = spawn(bun, [existsSync(bundle) ? bundle : join(pkg, 'scripts', 'cli.ts'), ...args], { stdio: 'inherit' })
else if (tsx) child = spawn(process.execPath, [tsx, join(pkg, 'scripts', 'cli.ts'), ...args], { stdio: 'inherit' })
else {
  process.stderr.write(
    `rose-factory: Bun not found: the \`bun\` package this command depends on has no binary for ${process.platform}-${process.arch} (was it installed with --ignore-scripts or --omit=optional?)\n` +
      '  fix: reinstall without those flags (npm i -g rose-factory), or install Bun and put it on PATH\n',
  )
  process.exit(127)
}
// Signals go to the CLI (it stops its runs cleanly); the launcher leaves with the CLI's exit code or signal.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
child.on('error', (err) => {
  process.stderr.write(`rose-factory: could not start ${child.spawnfile}: ${err.message}\n`)
  process.exit(127)
})
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
  } else process.exit(code ?? 1)
})
