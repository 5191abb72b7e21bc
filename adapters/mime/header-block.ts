/**
 * A raw legacy header block → unfolded fields with text values (spec §50.3).
 *
 * Folding: RFC 5322 §2.2.3 "Unfolding is accomplished by simply removing any CRLF that is
 * immediately followed by WSP." Octets: RFC 6532 allows raw UTF-8 in header values, so a
 * value that is valid UTF-8 is taken as UTF-8; anything else (raw 8-bit in a legacy
 * charset) cannot be interpreted and is read as windows-1252, with a warning (§50.3.1).
 */
import { decodeWindows1252 } from './charset.ts';

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
  /** Offset where the body starts inside the block (its empty line missing), if it does. */
  readonly bodyAt: number | undefined;
}

// ignoreBOM: a byte order mark inside a value is handled below, not by the decoder.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const latin1 = new TextDecoder('latin1');

function text(bytes: Uint8Array): { s: string; fallback: boolean } {
  let s: string;
  let fallback = false;
  try {
    s = utf8.decode(bytes);
  } catch {
    // §50.3.1: "Any other value is decoded as windows-1252" (all of it, 0x80–0x9F included).
    s = decodeWindows1252(bytes);
    fallback = true;
  }
  // §50.3.1: a UTF-8 byte order mark that starts a value is consumed by decoding.
  if (!fallback) s = s.replace(/^([ \t]*)\ufeff/, '$1');
  return { s, fallback };
}

/** Field names: RFC 5322 ftext = %d33-57 / %d59-126. */
const FTEXT = /^[\x21-\x39\x3b-\x7e]+$/;

interface Line {
  /** The line without its line break (and without a leading byte order mark). */
  readonly bytes: Uint8Array;
  /** Offset of the line in the raw block. */
  readonly start: number;
  readonly kind: 'blank' | 'continuation' | 'field' | 'other';
  readonly name: string;
  readonly colon: number;
}

function classify(raw: Uint8Array): Line[] {
  const lines: Line[] = [];
  let start = 0;
  // Split on LF; a preceding CR is removed. Bare CR stays in the line (it becomes a
  // control and is replaced by sanitising, §50.3.3).
  while (start < raw.length) {
    let end = raw.indexOf(0x0a, start);
    if (end < 0) end = raw.length;
    let bytes = raw.subarray(start, end);
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
    // A UTF-8 byte order mark before the first field is not part of its name (§50.3.1).
    if (start === 0 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      bytes = bytes.subarray(3);
    }
    let kind: Line['kind'];
    let name = '';
    let colon = -1;
    if (bytes.length === 0) kind = 'blank';
    else if (bytes[0] === 0x20 || bytes[0] === 0x09) kind = 'continuation';
    else {
      colon = bytes.indexOf(0x3a);
      name = colon < 0 ? '' : latin1.decode(bytes.subarray(0, colon)).trim();
      kind = colon >= 0 && FTEXT.test(name) ? 'field' : 'other';
    }
    lines.push({ bytes, start, kind, name, colon });
    start = end + 1;
  }
  return lines;
}

/**
 * §50.3.1: a line that is neither a field nor a continuation, after which no field follows,
 * is where the header block really ended (its empty line is missing): that line and the rest
 * of the block are the start of the body. Returns its offset in the raw block, or undefined.
 */
function bodyStart(lines: readonly Line[]): number | undefined {
  let at: number | undefined;
  for (let i = lines.length - 1; i >= 0; i--) {
    const k = lines[i]!.kind;
    if (k === 'field') break;
    if (k === 'other') at = i;
  }
  // Before the first field, a continuation line continues nothing: it goes with the body
  // only when no field follows at all (then the block holds no field and is all body).
  if (at === undefined && !lines.some((l) => l.kind === 'field')) {
    const first = lines.findIndex((l) => l.kind !== 'blank');
    if (first >= 0) at = first;
  }
  return at === undefined ? undefined : lines[at]!.start;
}

export function parseHeaderBlock(raw: Uint8Array): HeaderBlock {
  const fields: { name: string; parts: Uint8Array[] }[] = [];
  let dropped = 0;
  let fallback = false;
  const lines = classify(raw);
  const end = bodyStart(lines);
  // Whether the previous line was dropped: its continuation lines go with it (§50.3.1),
  // rather than being glued onto the field before the dropped line.
  let skipping = false;
  for (const line of lines) {
    if (end !== undefined && line.start >= end) break;
    switch (line.kind) {
      case 'blank':
        continue; // the empty line ending the block
      case 'continuation':
        if (skipping || fields.length === 0) dropped++;
        else fields.at(-1)!.parts.push(line.bytes);
        continue;
      case 'other':
        // §50.3.1: "A header line that is neither a field nor a continuation is dropped"
        // when fields follow it.
        dropped++;
        skipping = true;
        continue;
      case 'field':
        skipping = false;
        fields.push({ name: line.name, parts: [line.bytes.subarray(line.colon + 1)] });
    }
  }
  const out: RawField[] = [];
  for (const f of fields) {
    // Unfold: the CRLF is removed and the WSP kept (RFC 5322 §2.2.3).
    const { s, fallback: fb } = text(joinBytes(f.parts));
    fallback ||= fb;
    out.push({ name: f.name, value: s });
  }
  return { fields: out, dropped, notUtf8: fallback, bodyAt: end };
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
