#!/usr/bin/env bun
/**
 * A worker process for the relay scale test: long-polls relay URLs (round robin), and for each
 * event proves from the file system that no other worker holds its session at the same time and
 * that the session's events come in order, then acks. Argv: <dir> <worker id> <url,url,...>.
 * Writes <dir>/violations-<id>.txt (empty when none) and <dir>/done-<id>.json when <dir>/stop exists.
 */
import { appendFileSync, existsSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ack, poll } from './webhooks.ts'

const [dir, id, list] = process.argv.slice(2) as [string, string, string]
const urls = list.split(',')
const violations = join(dir, `violations-${id}.txt`)
writeFileSync(violations, '')
let handled = 0
let redelivered = 0
let i = 0

while (!existsSync(join(dir, 'stop'))) {
  const url = urls[i++ % urls.length]!
  let events: Awaited<ReturnType<typeof poll>>
  try {
    events = await poll(url, id, 1, 10)
  } catch (e) {
    appendFileSync(violations, `poll failed: ${String(e)}\n`)
    continue
  }
  for (const e of events) {
    if (e.attempts > 1) redelivered++
    const lock = join(dir, 'sessions', `${e.sessionId}.lock`)
    try {
      closeSync(openSync(lock, 'wx'))
    } catch {
      appendFileSync(violations, `session ${e.sessionId} held by two workers at once (${id} got ${e.action} #${e.payload.n})\n`)
      continue
    }
    const lastFile = join(dir, 'sessions', `${e.sessionId}.last`)
    const last = existsSync(lastFile) ? Number(readFileSync(lastFile, 'utf8')) : -1
    if (e.payload.n !== last + 1) appendFileSync(violations, `session ${e.sessionId}: got #${e.payload.n} after #${last}\n`)
    writeFileSync(lastFile, String(e.payload.n))
    handled++
    rmSync(lock)
  }
  if (events.length > 0) {
    const res = await ack(
      url,
      id,
      events.map((e) => e.id),
    )
    if (res.refused?.length) appendFileSync(violations, `ack refused: ${res.refused.join(',')}\n`)
  }
}
writeFileSync(join(dir, `done-${id}.json`), JSON.stringify({ handled, redelivered }))
