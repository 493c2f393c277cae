/**
 * Write a whole file durably, or fail leaving nothing behind: every byte written (a short write,
 * e.g. on a nearly full disk, is continued, not ignored), fsync'd, closed. On any failure
 * (ENOSPC, EIO, ...) the partial file is removed and the error is rethrown, so a caller that
 * renames or links it into place afterwards never publishes a torn file and the old one stays.
 */
import { closeSync, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs'

/** Write `buf` to `fd` until every byte is written (write(2) may write fewer bytes than asked). */
export function writeAllSync(fd: number, buf: Uint8Array): void {
  let off = 0
  while (off < buf.length) {
    const n = writeSync(fd, buf, off, buf.length - off)
    // A zero-byte write on a non-empty buffer would loop forever: treat it as a full disk.
    if (n <= 0)
      throw Object.assign(new Error(`ENOSPC: no space left on device, write (0 of ${buf.length - off} bytes)`), { code: 'ENOSPC' })
    off += n
  }
}

/** Create (or truncate) `path` with `body`, complete and fsync'd; on failure `path` is removed and the error rethrown. */
export function writeDurableSync(path: string, body: string | Uint8Array, mode = 0o600, opts: { fsync?: boolean } = {}): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body
  // Only a file this call opened is removed on failure (never one it could not even open).
  let fd: number | undefined = openSync(path, 'w', mode)
  try {
    writeAllSync(fd, buf)
    if (opts.fsync !== false) fsyncSync(fd)
    closeSync(fd)
    fd = undefined
  } catch (err) {
    if (fd !== undefined)
      try {
        closeSync(fd)
      } catch {}
    try {
      unlinkSync(path)
    } catch {}
    throw err
  }
}
