/**
 * Text from Linear (identifiers, titles) printed to a terminal or a log: control characters
 * (C0, DEL, C1: NUL, escape sequences, carriage returns) are shown escaped (`\x1b`, `\0`), never
 * sent raw, so an identifier cannot hide itself, rewrite the screen or forge a log line.
 * The one helper for it: status cells and the log sink use it.
 */

/** `text` with control characters escaped; `keepNewlines` leaves `\n` and `\t` as they are (multi-line log messages). */
export function printable(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (ch) => {
    if (opts.keepNewlines && (ch === '\n' || ch === '\t')) return ch
    if (ch === '\0') return '\\0'
    if (ch === '\n') return '\\n'
    if (ch === '\r') return '\\r'
    if (ch === '\t') return '\\t'
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`
  })
}
