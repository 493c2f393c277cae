/** A local bare "origin" with one commit on main: the stand-in for GitHub in the demo, tests and benchmarks. */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

const IDENTITY = {
  GIT_AUTHOR_NAME: 'sample',
  GIT_AUTHOR_EMAIL: 'sample@localhost',
  GIT_COMMITTER_NAME: 'sample',
  GIT_COMMITTER_EMAIL: 'sample@localhost',
}

/** Create `<dir>/origin.git` holding `files` (default a README) in one commit on main; returns its path. */
export function createSampleOrigin(dir: string, files: Record<string, string> = { 'README.md': '# sample app\n' }): string {
  const bare = join(dir, 'origin.git')
  const work = join(dir, 'sample-work')
  const git = (args: string[], cwd?: string) => execFileSync('git', args, { cwd, stdio: 'ignore', env: { ...process.env, ...IDENTITY } })
  git(['init', '-q', '--bare', '-b', 'main', bare])
  git(['init', '-q', '-b', 'main', work])
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(work, name)), { recursive: true })
    writeFileSync(join(work, name), text)
  }
  git(['add', '.'], work)
  git(['commit', '-q', '-m', 'initial commit'], work)
  git(['push', '-q', bare, 'main'], work)
  rmSync(work, { recursive: true, force: true })
  return bare
}
