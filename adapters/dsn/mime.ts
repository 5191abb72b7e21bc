/**
 * The little MIME the DSN parser needs: one level of multipart/report, header fields of
 * each part, and its decoded body. Works on a latin1 view of the bytes (one char per
 * octet), so positions are byte positions and 8-bit content survives until a part is
 * explicitly decoded as UTF-8. Tolerates LF-only line ends (messages saved by Unix tools).
 */
import libmime from 'libmime';

export interface HeaderField {
  /** Lower-cased name. */
  readonly name: string;
  /** Unfolded value (CRLF + WSP → the WSP, RFC 5322 §2.2.3), trimmed. */
  readonly value: string;
}

export interface RawPart {
  readonly headers: readonly HeaderField[];
  /** Body as latin1 (octets), transfer encoding not yet removed. */
  readonly body: string;
}

/** Splits at the first empty line; a message without one is all header. */
export function splitEntity(latin1: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(latin1);
  if (m === null) return { head: latin1, body: '' };
  // A part may start with an empty line at once (no header fields at all).
  if (/^\r?\n/.test(latin1)) return { head: '', body: latin1.replace(/^\r?\n/, '') };
  return { head: latin1.slice(0, m.index), body: latin1.slice(m.index + m[0].length) };
}

/** Unfolds and splits header lines; lines without a colon are reported, not fatal. */
export function parseHeaderBlock(head: string): { fields: HeaderField[]; junk: string[] } {
  const fields: HeaderField[] = [];
  const junk: string[] = [];
  const lines = head.split(/\r?\n/);
  const logical: string[] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && logical.length > 0) logical[logical.length - 1] += ' ' + line.trim();
    else if (line.trim() !== '') logical.push(line);
  }
  for (const line of logical) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[\x21-\x39\x3b-\x7e]+$/.test(line.slice(0, colon).trimEnd())) {
      junk.push(line);
      continue;
    }
    fields.push({
      name: line.slice(0, colon).trim().toLowerCase(),
      value: line.slice(colon + 1).trim(),
    });
  }
  return { fields, junk };
}

export function header(fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find((f) => f.name === name)?.value;
}

export interface ContentType {
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

export function contentType(fields: readonly HeaderField[]): ContentType {
  const raw = header(fields, 'content-type');
  // RFC 2045 §5.2: default "text/plain; charset=us-ascii".
  if (raw === undefined || raw.trim() === '') return { type: 'text/plain', params: {} };
  const parsed = libmime.parseHeaderValue(raw);
  return {
    type: String(parsed.value).toLowerCase().replace(/;$/, '').trim(),
    params: parsed.params as Record<string, string>,
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * RFC 2046 §5.1.1: parts are delimited by lines "--" boundary, optionally followed by
 * transport padding (whitespace); the CRLF before a delimiter belongs to the delimiter.
 * Returns undefined when no delimiter occurs at all. A missing close delimiter is
 * tolerated (the last part runs to the end), as most real-world readers do.
 */
export function splitMultipart(body: string, boundary: string): RawPart[] | undefined {
  const re = new RegExp(`(?:^|\\r?\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?:\\r?\\n|$)`, 'g');
  const marks: { start: number; end: number; close: boolean }[] = [];
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    marks.push({ start: m.index, end: m.index + m[0].length, close: m[1] === '--' });
    if (m[1] === '--') break;
    // A zero-width match cannot happen (the delimiter has characters), so no lastIndex fix.
  }
  if (marks.length === 0) return undefined;
  const parts: RawPart[] = [];
  for (let i = 0; i < marks.length; i++) {
    const mark = marks[i]!;
    if (mark.close) break;
    // The regex consumed the line end after the delimiter; a part that starts with an
    // empty line has no header fields.
    const next = marks[i + 1];
    const raw = body.slice(mark.end, next === undefined ? body.length : next.start);
    const startsEmpty = /^\r?\n/.test(raw);
    const { head, body: partBody } = startsEmpty
      ? { head: '', body: raw.replace(/^\r?\n/, '') }
      : splitEntity(raw);
    parts.push({ headers: parseHeaderBlock(head).fields, body: partBody });
  }
  return parts;
}

/** Removes the Content-Transfer-Encoding; unknown encodings are taken as identity. */
export function decodeTransfer(part: RawPart): Buffer {
  const cte = (header(part.headers, 'content-transfer-encoding') ?? '').toLowerCase();
  if (cte === 'base64') return Buffer.from(part.body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (cte === 'quoted-printable') {
    const soft = part.body.replace(/=\r?\n/g, '');
    const bytes: number[] = [];
    for (let i = 0; i < soft.length; i++) {
      const hex = soft.slice(i + 1, i + 3);
      if (soft[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else bytes.push(soft.charCodeAt(i) & 0xff);
    }
    return Buffer.from(bytes);
  }
  return Buffer.from(part.body, 'latin1');
}
