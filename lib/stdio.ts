/**
 * Writing to stdout and stderr without Node's stream objects: the first touch of `process.stdout`
 * or `process.stderr` under Bun builds a stream (~7 ms of a start-up whose budget is 40 ms for
 * `--help`), while a write(2) on the fd is what the stream does in the end for files, pipes and
 * terminals. Any failure (a full non-blocking pipe: EAGAIN) hands the rest to the stream as before.
 */
import { fstatSync, writeSync } from 'node:fs'

/**
 * Test seam: a function set here receives what writeFd would write to that fd, instead of the fd
 * (an in-process test captures the logs here as well as from process.stderr.write). Unset in use.
 */
export const stdioHooks: Partial<Record<1 | 2, (text: string) => void>> = {}

/** Write all of `text` to fd 1 (stdout) or 2 (stderr), synchronously. */
export function writeFd(fd: 1 | 2, text: string): void {
  const hook = stdioHooks[fd]
  if (hook) return hook(text)
  const data = Buffer.from(text)
  let off = 0
  try {
    while (off < data.length) off += writeSync(fd, data, off)
  } catch {
    ;(fd === 1 ? process.stdout : process.stderr).write(data.subarray(off))
  }
}

/**
 * Whether fd 1 or 2 looks like a terminal, without node:tty (which loads the stream classes): a
 * character device (a terminal, or /dev/null, where colours harm nobody).
 */
export function isTerminal(fd: 1 | 2): boolean {
  try {
    return fstatSync(fd).isCharacterDevice()
  } catch {
    return false
  }
}
