/**
 * Header line writing: `Name: value` folded at spaces (docs/protocol.md §51.3).
 *
 * RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998 characters, and
 * SHOULD be no more than 78 characters, excluding the CRLF." Folding inserts CRLF before a
 * space (§2.2.3), so unfolding (removing the CRLF) gives back the exact value.
 */
import { NmtpError } from '../../src/core/errors/index.ts';
import { isValidFieldName } from '../../src/core/frame/index.ts';

/** RFC 5322 §2.1.1 hard limit, in octets, excluding CRLF. */
export const MAX_LINE = 998;
/** RFC 5322 §2.1.1 recommended limit. */
export const FOLD_AT = 78;

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

// The frame's field-value rule (src/core/frame/fields.ts): C0 (TAB included), DEL, C1.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Splits a value into foldable segments: each segment starts at the first space of a run
 * of spaces (so a fold never leaves a line ending in whitespace, and never produces a line
 * of whitespace only, which RFC 5322 §3.2.2 forbids).
 */
function segments(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 1; i < value.length; i++) {
    const c = value[i - 1];
    // Never inside a quoted-string (RFC 5322 allows it, but some MIME parameter readers
    // do not unfold there); a quoted-pair's escaped character does not toggle.
    if (c === '"' && value[i - 2] !== '\\') quoted = !quoted;
    if (!quoted && value[i] === ' ' && c !== ' ') {
      out.push(value.slice(start, i));
      start = i;
    }
  }
  out.push(value.slice(start));
  return out;
}

/** True when `name: value` can be folded into lines of at most 998 octets. */
export function canFold(name: string, value: string): boolean {
  const segs = segments(value);
  if (octets(name) + 2 + octets(segs[0] ?? '') > MAX_LINE) return false;
  return segs.every((s) => octets(s) <= MAX_LINE);
}

/**
 * Writes one header field, folded to at most 78 octets per line where a fold point allows
 * it, and never more than 998 (else NMTP_ERR_LEGACY_LINE_TOO_LONG). Returns the lines
 * with their CRLF.
 */
export function foldField(name: string, value: string): string {
  // Every header line passes here. A decoded framed message holds no control character
  // ("no C0 controls (incl. TAB), no DEL, no C1", §10.3), but a FramedMessage built in code
  // is not decoded: a CR or LF written here would start another header field, or end the
  // header section, or (with a "." line) read as the end of DATA to a lenient SMTP server.
  if (!isValidFieldName(name) || CONTROL.test(value)) {
    throw new NmtpError(
      'NMTP_ERR_FRAME_CONTROL_CHAR',
      `${JSON.stringify(name)}: control character`,
      {
        field: name,
      },
    );
  }
  if (!canFold(name, value)) {
    throw new NmtpError(
      'NMTP_ERR_LEGACY_LINE_TOO_LONG',
      `${name}: a token does not fit in ${MAX_LINE} octets`,
      { field: name },
    );
  }
  if (value === '') return `${name}:\r\n`;
  const segs = segments(value);
  let out = '';
  let line = `${name}: ${segs[0]!}`;
  let len = octets(line);
  for (const seg of segs.slice(1)) {
    const n = octets(seg);
    if (len + n > FOLD_AT) {
      out += `${line}\r\n`;
      line = seg;
      len = n;
    } else {
      line += seg;
      len += n;
    }
  }
  return `${out}${line}\r\n`;
}
