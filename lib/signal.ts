/**
 * Who is alive and how to stop a process tree, read from /proc (Linux): process groups, every
 * descendant of a pid, zombies counted as dead.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** Send `sig` to the process group led by `pid`; a group already gone is fine. */
export function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return
  try {
    process.kill(-pid, sig)
  } catch {
    try {
      process.kill(pid, sig)
    } catch {}
  }
}

/**
 * Every live process below `pid` (children, grandchildren, ...), each with its process group, read
 * from /proc (Linux; elsewhere an empty list). Engines, git and bootstraps run detached in their
 * own groups, so killing a script's child alone would leave them running.
 */
export function descendants(pid: number): { pid: number; pgid: number }[] {
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  const byParent = new Map<number, { pid: number; pgid: number }[]>()
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    try {
      // "pid (comm) STATE PPID PGRP ...": comm may hold spaces or parens, so split after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (state === 'Z') continue
      const list = byParent.get(Number(ppid)) ?? []
      list.push({ pid: Number(name), pgid: Number(pgrp) })
      byParent.set(Number(ppid), list)
    } catch {} // gone meanwhile
  }
  const out: { pid: number; pgid: number }[] = []
  const todo = [pid]
  while (todo.length) {
    for (const c of byParent.get(todo.pop()!) ?? []) {
      out.push(c)
      todo.push(c.pid)
    }
  }
  return out
}

/**
 * SIGKILL everything below `pid`, including whole process groups led by a descendant (an engine's
 * group keeps members whose parent already died), then `pid` itself unless `self` is false.
 * For forced stops; returns how many processes below `pid` were signalled.
 */
export function killTree(pid: number, opts: { self?: boolean } = {}): number {
  const below = descendants(pid)
  for (const d of below) if (d.pgid === d.pid) signalGroup(d.pgid, 'SIGKILL')
  for (const d of below) {
    try {
      process.kill(d.pid, 'SIGKILL')
    } catch {}
  }
  if (opts.self !== false) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
  return below.length
}

/** True when a process with this pid exists on this host and is not a zombie (dead, not yet reaped). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    // /proc/<pid>/stat: "pid (comm) STATE ..."; comm may contain spaces or parens, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}
