/**
 * A raw legacy header block → unfolded fields with text values (spec §50.3).
 *
 * Folding: RFC 5322 §2.2.3 "Unfolding is accomplished by simply removing any CRLF that is
 * immediately followed by WSP." Octets: RFC 6532 allows raw UTF-8 in header values, so a
 * value that is valid UTF-8 is taken as UTF-8; anything else (raw 8-bit in a legacy
 * charset) cannot be interpreted and is read as windows-1252, with a warning (§50.3.1).
 */
export interface RawField {
  /** Field name as written (trimmed of the whitespace some writers put before ":"). */
  readonly name: string;
  /** Unfolded value, not yet decoded (encoded-words still present). */
  readonly value: string;
}

export interface HeaderBlock {
  readonly fields: RawField[];
  /** Lines that were neither a field nor a continuation (no colon): dropped. */
  readonly dropped: number;
  /** True when some value was not UTF-8 and was read as windows-1252. */
  readonly notUtf8: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const cp1252 = new TextDecoder('windows-1252');
const latin1 = new TextDecoder('latin1');

function text(bytes: Uint8Array): { s: string; fallback: boolean } {
  try {
    return { s: utf8.decode(bytes), fallback: false };
  } catch {
    return { s: cp1252.decode(bytes), fallback: true };
  }
}

/** Field names: RFC 5322 ftext = %d33-57 / %d59-126. */
const FTEXT = /^[\x21-\x39\x3b-\x7e]+$/;

export function parseHeaderBlock(raw: Uint8Array): HeaderBlock {
  const fields: { name: string; parts: Uint8Array[] }[] = [];
  let dropped = 0;
  let fallback = false;
  let start = 0;
  const lines: Uint8Array[] = [];
  // Split on LF; a preceding CR is removed. Bare CR stays in the line (it becomes a
  // control and is removed by sanitising, §50.3.3).
  while (start < raw.length) {
    let end = raw.indexOf(0x0a, start);
    if (end < 0) end = raw.length;
    let line = raw.subarray(start, end);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    lines.push(line);
    start = end + 1;
  }
  for (const line of lines) {
    if (line.length === 0) continue; // the blank line ending the block
    const first = line[0];
    if ((first === 0x20 || first === 0x09) && fields.length > 0) {
      fields.at(-1)!.parts.push(line);
      continue;
    }
    const colon = line.indexOf(0x3a);
    const name = colon < 0 ? '' : latin1.decode(line.subarray(0, colon)).trim();
    if (colon < 0 || !FTEXT.test(name)) {
      dropped++;
      continue;
    }
    fields.push({ name, parts: [line.subarray(colon + 1)] });
  }
  const out: RawField[] = [];
  for (const f of fields) {
    // Unfold: the CRLF is removed and the WSP kept (RFC 5322 §2.2.3).
    const { s, fallback: fb } = text(joinBytes(f.parts));
    fallback ||= fb;
    out.push({ name: f.name, value: s });
  }
  return { fields: out, dropped, notUtf8: fallback };
}

function joinBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const total = parts.reduce((n, p) => n + p.length, 0);
  const r = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    r.set(p, o);
    o += p.length;
  }
  return r;
}
