/**
 * Charset labels and text decoding (spec §50.5.2, §50.3.1, §50.3.2).
 *
 * A label is resolved in the order §50.5.2 gives: the WHATWG Encoding Standard's label table
 * (with its ISO-8859 labels kept to their IANA meaning), then the aliases of the IANA
 * character-sets registry and of Python's codec registry and the spellings mail software
 * writes (charset-aliases.ts), then iconv-lite's own names. Decoding is strict: an octet
 * sequence the charset does not define is an error, never a silent U+FFFD.
 */
import { isUtf8 as bufferIsUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';
import { MAIL_ALIASES, PYTHON_ALIASES, PYTHON_CODECS, labelKey } from './charset-aliases.ts';

/** How a resolved charset is decoded. */
export type CharsetDecoder =
  | { readonly kind: 'ascii' }
  | { readonly kind: 'utf-8' }
  | { readonly kind: 'utf-16'; readonly endian?: 'le' | 'be' }
  | { readonly kind: 'utf-32'; readonly endian?: 'le' | 'be' }
  | { readonly kind: 'windows-1252' }
  | { readonly kind: 'whatwg'; readonly name: string }
  | { readonly kind: 'iconv'; readonly name: string }
  /** 7-bit shift encodings no library here reads, decoded in this file. */
  | { readonly kind: 'iso-2022-kr' | 'hz-gb-2312' }
  /** A charset we know the meaning of but cannot decode (e.g. iso-2022-kr, EBCDIC). */
  | { readonly kind: 'none'; readonly name: string };

export interface Charset {
  /** Canonical name (WHATWG name, or the iconv-lite / Python codec name). */
  readonly name: string;
  readonly decoder: CharsetDecoder;
}

const ASCII: Charset = { name: 'us-ascii', decoder: { kind: 'ascii' } };
const UTF8: Charset = { name: 'utf-8', decoder: { kind: 'utf-8' } };

/** Labels meaning US-ASCII (IANA aliases of ANSI_X3.4-1968), compared as label keys. */
const ASCII_KEYS = new Set([
  'usascii',
  'ascii',
  'ansix341968',
  'ansix341986',
  'iso646us',
  'iso646irv1991',
  'isoir6',
  'us',
  'ibm367',
  'cp367',
  'csascii',
  '646',
]);

/** WHATWG labels whose encoding is UTF-16 without a stated byte order. */
const UTF16_KEYS = new Set([
  'utf16',
  'ucs2',
  'unicode',
  'csunicode',
  'iso10646ucs2',
  'unicodefeff',
]);

/** The label as written, made comparable: ASCII whitespace and one pair of quotes removed. */
export function cleanLabel(label: string): string {
  let s = label.replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '');
  if (s.length >= 2 && (s[0] === '"' || s[0] === "'") && s.at(-1) === s[0]) {
    s = s.slice(1, -1).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '');
  }
  return s.toLowerCase();
}

function whatwgName(label: string): string | undefined {
  try {
    return new TextDecoder(label).encoding;
  } catch {
    return undefined;
  }
}

/**
 * WHATWG encodings that also stand for ISO labels: label key → the ISO charset, or
 * undefined when the label names the Windows code page itself.
 */
const ISO_LABELS: Record<string, (key: string) => string | undefined> = {
  'windows-1252': (k) =>
    ['cp1252', 'windows1252', 'xcp1252'].includes(k) ? undefined : 'iso-8859-1',
  'windows-1254': (k) =>
    ['cp1254', 'windows1254', 'xcp1254'].includes(k) ? undefined : 'iso-8859-9',
  'windows-874': (k) =>
    ['windows874', 'dos874'].includes(k)
      ? undefined
      : k.includes('tis')
        ? 'tis-620'
        : 'iso-8859-11',
};

/** A decoder name (WHATWG encoding name or iconv-lite name) → how to decode it. */
function byName(name: string): Charset | undefined {
  const key = labelKey(name);
  if (ASCII_KEYS.has(key)) return ASCII;
  if (key === 'utf8') return UTF8;
  if (UTF16_KEYS.has(key)) return { name: 'utf-16', decoder: { kind: 'utf-16' } };
  if (key === 'utf16le') return { name: 'utf-16le', decoder: { kind: 'utf-16', endian: 'le' } };
  if (key === 'utf16be') return { name: 'utf-16be', decoder: { kind: 'utf-16', endian: 'be' } };
  if (key === 'utf32' || key === 'ucs4') return { name: 'utf-32', decoder: { kind: 'utf-32' } };
  if (key === 'utf32le') return { name: 'utf-32le', decoder: { kind: 'utf-32', endian: 'le' } };
  if (key === 'utf32be') return { name: 'utf-32be', decoder: { kind: 'utf-32', endian: 'be' } };
  const w = whatwgName(name);
  if (w !== undefined && w !== 'replacement' && w !== 'x-user-defined') {
    // ISO-8859 labels mean ISO-8859 (IANA): the WHATWG table reads them as the Windows
    // code page, which differs where ISO assigns the C1 controls (§50.5.2).
    const iso = ISO_LABELS[w]?.(key);
    if (iso !== undefined) return { name: iso, decoder: { kind: 'iconv', name: iso } };
    if (w === 'windows-1252') return { name: w, decoder: { kind: 'windows-1252' } };
    if (w === 'utf-8') return UTF8;
    if (w === 'utf-16le' || w === 'utf-16be') return byName(w);
    return { name: w, decoder: { kind: 'whatwg', name: w } };
  }
  if (iconv.encodingExists(name)) return { name, decoder: { kind: 'iconv', name } };
  return undefined;
}

const cache = new Map<string, Charset | null>();

/**
 * Resolves a charset label (§50.5.2): undefined when no table knows it. The order matters
 * where tables disagree: the curated mail aliases, then WHATWG (gb2312 is gbk, ks_c_5601-1987
 * is UHC: supersets that only fill positions the label leaves unassigned; ISO-8859 labels
 * keep their IANA meaning), then Python's codec aliases, then iconv-lite.
 */
export function resolveCharset(label: string): Charset | undefined {
  const hit = cache.get(label);
  if (hit !== undefined) return hit ?? undefined;
  const r = resolveUncached(label);
  if (cache.size > 1000) cache.clear(); // labels come from input: keep the cache bounded
  cache.set(label, r ?? null);
  return r;
}

function resolveUncached(label: string): Charset | undefined {
  const clean = cleanLabel(label);
  if (clean === '') return undefined;
  const key = labelKey(clean);
  if (ASCII_KEYS.has(key)) return ASCII;
  // Curated first for the few labels where the WHATWG table would lose text (its
  // "replacement" encoding) or means something else than mail software does.
  const mail = MAIL_ALIASES[key];
  if (mail !== undefined) return mail === '' ? undefined : resolveTarget(mail);
  if (UTF16_KEYS.has(key)) return byName('utf-16');
  const w = whatwgName(clean);
  if (w !== undefined && w !== 'replacement' && w !== 'x-user-defined') return byName(clean);
  const py = PYTHON_ALIASES[key] ?? (PYTHON_CODECS[key] !== undefined ? key : undefined);
  if (py !== undefined) return resolveTarget(PYTHON_CODECS[py] ?? py);
  if (w === 'replacement') return { name: clean, decoder: { kind: 'none', name: clean } };
  return byName(clean);
}

const SHIFT_ENCODINGS: Record<string, Charset> = {
  'iso-2022-kr': { name: 'iso-2022-kr', decoder: { kind: 'iso-2022-kr' } },
  'hz-gb-2312': { name: 'hz-gb-2312', decoder: { kind: 'hz-gb-2312' } },
};

/** A table target: a decoder name, or "!name" for a charset without a decoder here. */
function resolveTarget(target: string): Charset | undefined {
  const shift = SHIFT_ENCODINGS[target.replace(/^!/, '')];
  if (shift !== undefined) return shift;
  if (target.startsWith('!')) {
    const name = target.slice(1);
    return { name, decoder: { kind: 'none', name } };
  }
  return byName(target);
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
const whatwgDecoders = new Map<string, InstanceType<typeof TextDecoder>>();

function whatwgDecoder(name: string): InstanceType<typeof TextDecoder> {
  let d = whatwgDecoders.get(name);
  if (d === undefined) {
    d = new TextDecoder(name, { fatal: true });
    whatwgDecoders.set(name, d);
  }
  return d;
}

/**
 * windows-1252 as the WHATWG index defines it: every octet maps (0x81, 0x8D, 0x8F, 0x90,
 * 0x9D to the C1 code points). Not Node's TextDecoder: Node 20 decodes the label
 * "windows-1252" as ISO-8859-1, which loses the curly quotes, dashes and euro of 0x80–0x9F.
 */
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

export function decodeWindows1252(octets: Uint8Array): string {
  let s = '';
  let start = 0;
  for (let i = 0; i < octets.length; i++) {
    const c = octets[i]!;
    if (c >= 0x80 && c <= 0x9f) {
      if (i > start) s += latin1(octets.subarray(start, i));
      s += CP1252_HIGH[c - 0x80];
      start = i + 1;
    }
  }
  return start === 0 ? latin1(octets) : s + latin1(octets.subarray(start));
}

function latin1(octets: Uint8Array): string {
  return Buffer.from(octets.buffer, octets.byteOffset, octets.length).toString('latin1');
}

/** Valid UTF-8 → text (a leading byte order mark consumed), else undefined. */
export function decodeUtf8(octets: Uint8Array): string | undefined {
  try {
    return fatalUtf8.decode(octets); // ignoreBOM is false: a leading BOM is consumed
  } catch {
    return undefined;
  }
}

/** True when the octets are well-formed UTF-8. */
export function isUtf8(octets: Uint8Array): boolean {
  // A validator that does not build a string (Node ≥ 18.14).
  return bufferIsUtf8(octets);
}

function bomEndian(octets: Uint8Array, unit: 2 | 4): 'le' | 'be' | undefined {
  const [a, b, c, d] = octets;
  if (unit === 2) {
    if (a === 0xff && b === 0xfe) return 'le';
    if (a === 0xfe && b === 0xff) return 'be';
    return undefined;
  }
  if (a === 0xff && b === 0xfe && c === 0 && d === 0) return 'le';
  if (a === 0 && b === 0 && c === 0xfe && d === 0xff) return 'be';
  return undefined;
}

/**
 * Decodes octets in a resolved charset, strictly: undefined when they are not valid in it
 * (or the charset has no decoder here). A byte order mark of the charset's own encoding
 * form is consumed; for UTF-16/UTF-32 without a stated byte order it selects it, and
 * without one little-endian is read (§50.5.2).
 */
export function decodeStrict(octets: Uint8Array, cs: Charset): string | undefined {
  const d = cs.decoder;
  switch (d.kind) {
    case 'ascii':
    case 'utf-8':
      return decodeUtf8(octets);
    case 'windows-1252':
      return decodeWindows1252(octets);
    case 'utf-16': {
      const bom = bomEndian(octets, 2);
      const endian = d.endian ?? bom ?? 'le';
      // A BOM of the other byte order is not a BOM here: U+FFFE is then decoded (and fails).
      const body = bom !== undefined && bom === endian ? octets.subarray(2) : octets;
      if (body.length % 2 !== 0) return undefined;
      try {
        return whatwgDecoder(`utf-16${endian}`).decode(body);
      } catch {
        return undefined;
      }
    }
    case 'utf-32': {
      const bom = bomEndian(octets, 4);
      const endian = d.endian ?? bom ?? 'le';
      const body = bom !== undefined && bom === endian ? octets.subarray(4) : octets;
      if (body.length % 4 !== 0) return undefined;
      let s = '';
      const view = new DataView(body.buffer, body.byteOffset, body.length);
      for (let i = 0; i < body.length; i += 4) {
        const cp = view.getUint32(i, endian === 'le');
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    case 'whatwg':
      try {
        return whatwgDecoder(d.name).decode(octets);
      } catch {
        return undefined;
      }
    case 'iconv': {
      const buf = Buffer.from(octets.buffer, octets.byteOffset, octets.length);
      let text = iconv.decode(buf, d.name, { stripBOM: false });
      // Round trip: if re-encoding gives back the input, a U+FFFD was in the text itself.
      if (text.includes('\ufffd') && !buf.equals(iconv.encode(text, d.name))) return undefined;
      if (text.startsWith('\ufeff') && labelKey(d.name).startsWith('utf')) text = text.slice(1);
      return text;
    }
    case 'iso-2022-kr':
      return decodeIso2022Kr(octets);
    case 'hz-gb-2312':
      return decodeHz(octets);
    case 'none':
      return undefined;
  }
}

/**
 * ISO-2022-KR (RFC 1557): the designation ESC $ ) C, then SO (0x0E) shifts to KS C 5601
 * (two octets 0x21–0x7E, read as EUC-KR with the high bit set) and SI (0x0F) back to
 * ASCII. Strict: anything else is undefined.
 */
function decodeIso2022Kr(octets: Uint8Array): string | undefined {
  let out = '';
  let shifted = false;
  const pair = new Uint8Array(2);
  for (let i = 0; i < octets.length; i++) {
    const c = octets[i]!;
    if (c === 0x1b) {
      if (octets[i + 1] !== 0x24 || octets[i + 2] !== 0x29 || octets[i + 3] !== 0x43)
        return undefined;
      i += 3;
    } else if (c === 0x0e) shifted = true;
    else if (c === 0x0f) shifted = false;
    else if (c >= 0x80) return undefined;
    else if (!shifted || c < 0x21 || c > 0x7e) {
      if (c === 0x0a || c === 0x0d) shifted = false; // RFC 1557: SI before each line end
      out += String.fromCharCode(c);
    } else {
      const d = octets[i + 1];
      if (d === undefined || d < 0x21 || d > 0x7e) return undefined;
      pair[0] = c | 0x80;
      pair[1] = d | 0x80;
      try {
        out += whatwgDecoder('euc-kr').decode(pair);
      } catch {
        return undefined;
      }
      i++;
    }
  }
  return out;
}

/**
 * HZ (RFC 1843): "~{" enters GB2312 mode (two octets 0x21–0x7E, read as GB2312 with the
 * high bit set), "~}" leaves it, "~~" is "~", "~" LF is a line continuation. Strict.
 */
function decodeHz(octets: Uint8Array): string | undefined {
  let out = '';
  let gb = false;
  const pair = new Uint8Array(2);
  for (let i = 0; i < octets.length; i++) {
    const c = octets[i]!;
    if (c >= 0x80) return undefined;
    if (c === 0x7e) {
      const n = octets[i + 1];
      i++;
      if (n === 0x7b) gb = true;
      else if (n === 0x7d) gb = false;
      else if (n === 0x7e && !gb) out += '~';
      else if (n === 0x0a && !gb) continue;
      else return undefined;
    } else if (!gb) out += String.fromCharCode(c);
    else {
      const d = octets[i + 1];
      if (c < 0x21 || d === undefined || d < 0x21 || d > 0x7e) return undefined;
      pair[0] = c | 0x80;
      pair[1] = d | 0x80;
      try {
        out += whatwgDecoder('gbk').decode(pair);
      } catch {
        return undefined;
      }
      i++;
    }
  }
  return out;
}

export type Transcoded =
  | {
      readonly ok: true;
      readonly utf8: Uint8Array;
      /** Set when the label was unknown and the octets were read as this charset (§50.5.2). */
      readonly guessed?: 'utf-8' | 'windows-1252';
    }
  | {
      readonly ok: false;
      readonly reason: 'invalid-octets' | 'unsupported-charset';
    };

const enc = new TextEncoder();

/** Reads octets whose label is unknown: UTF-8 when they are, else windows-1252 (§50.5.2). */
export function guessText(octets: Uint8Array): { text: string; as: 'utf-8' | 'windows-1252' } {
  const u = decodeUtf8(octets);
  if (u !== undefined) return { text: u, as: 'utf-8' };
  return { text: decodeWindows1252(octets), as: 'windows-1252' };
}

/**
 * Transcodes a text body declared as `charset` (undefined: none declared) to UTF-8 (§50.5.2).
 *
 * - No charset, or us-ascii (RFC 2045 §5.2 default): valid UTF-8 is taken as UTF-8; else
 *   the part is unconvertible.
 * - A resolved charset: decoded strictly; invalid octets make the part unconvertible.
 * - A charset known but without a decoder here: unconvertible.
 * - An unknown label: UTF-8 if the octets are, else windows-1252, and `guessed` is set.
 */
export function transcodeToUtf8(octets: Uint8Array, charset: string | undefined): Transcoded {
  const cs = charset === undefined || cleanLabel(charset) === '' ? ASCII : resolveCharset(charset);
  if (cs === undefined) {
    const g = guessText(octets);
    return {
      ok: true,
      utf8: g.as === 'utf-8' ? stripUtf8Bom(octets) : enc.encode(g.text),
      guessed: g.as,
    };
  }
  if (cs.decoder.kind === 'ascii' || cs.decoder.kind === 'utf-8') {
    // The common case: no decoding, the octets are the result.
    return isUtf8(octets)
      ? { ok: true, utf8: stripUtf8Bom(octets) }
      : { ok: false, reason: 'invalid-octets' };
  }
  if (cs.decoder.kind === 'none') return { ok: false, reason: 'unsupported-charset' };
  const text = decodeStrict(octets, cs);
  if (text === undefined) return { ok: false, reason: 'invalid-octets' };
  return { ok: true, utf8: enc.encode(text) };
}

function stripUtf8Bom(octets: Uint8Array): Uint8Array {
  return octets[0] === 0xef && octets[1] === 0xbb && octets[2] === 0xbf
    ? octets.subarray(3)
    : octets;
}
