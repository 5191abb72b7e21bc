/**
 * RFC 2047 encoded-words → text (spec §50.3.2), with the converter's own charset resolution
 * (charset.ts) so that every label the converter knows for bodies it knows in headers too,
 * and an unknown label is read by what its octets are instead of becoming U+FFFD.
 */
import { cleanLabel, decodeStrict, guessText, resolveCharset, type Charset } from './charset.ts';
import iconv from 'iconv-lite';

/** What decoding found that the caller reports (warnings, provenance). */
export interface WordNotes {
  /** Labels no table knows: their octets were read as UTF-8 or windows-1252. */
  readonly guessed: { label: string; as: 'utf-8' | 'windows-1252' }[];
  /** Words whose octets were invalid in their charset (decoded with U+FFFD). */
  invalid: number;
  /** Labels known but without a decoder: the words were kept as written. */
  readonly unsupported: string[];
}

export const newNotes = (): WordNotes => ({ guessed: [], invalid: 0, unsupported: [] });

// "=?" charset ["*" language] "?" encoding "?" encoded-text "?=" (RFC 2047 §2, RFC 2231 §5).
const WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
const WSP_ONLY = /^[ \t\r\n]*$/;

function qDecode(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f)
      out[o++] = 0x20; // "_" is SP (RFC 2047 §4.2 (2))
    else if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out[o++] = parseInt(text.slice(i + 1, i + 3), 16);
      i += 2;
    } else out[o++] = c & 0xff;
  }
  return out.subarray(0, o);
}

function wordOctets(enc: string, text: string): Uint8Array {
  return enc === 'b' || enc === 'B' ? Buffer.from(text, 'base64') : qDecode(text);
}

/** Octets in a charset that failed strict decoding: decoded leniently (U+FFFD), reported. */
function lenient(octets: Uint8Array, cs: Charset): string {
  const d = cs.decoder;
  if (d.kind === 'whatwg') return new TextDecoder(d.name).decode(octets);
  if (d.kind === 'iconv') return iconv.decode(Buffer.from(octets), d.name);
  if (d.kind === 'utf-16') return new TextDecoder(`utf-16${d.endian ?? 'le'}`).decode(octets);
  return new TextDecoder('utf-8').decode(octets);
}

interface Run {
  readonly label: string;
  readonly cs: Charset | undefined;
  /** Where the run starts and ends in the value (for keeping it literal). */
  readonly start: number;
  end: number;
  readonly octets: Uint8Array[];
}

/**
 * Decodes the encoded-words of an unfolded header value. Linear white space between two
 * adjacent encoded-words is dropped (RFC 2047 §6.2); adjacent words of one charset are
 * decoded together, so a character split across two words (common, though §5 forbids it)
 * comes out whole. A word that does not parse stays literal text.
 */
export function decodeEncodedWords(value: string, notes?: WordNotes): string {
  if (!value.includes('=?')) return value;
  let out = '';
  let last = 0;
  let run: Run | undefined;
  const flush = (): void => {
    if (run === undefined) return;
    out += decodeRun(run, value, notes);
    run = undefined;
  };
  for (const m of value.matchAll(WORD)) {
    const start = m.index;
    const gap = value.slice(last, start);
    const [full, rawLabel = '', enc = 'q', text = ''] = m;
    // RFC 2231 §5: "charset*language" — the language is not part of the charset.
    const label = rawLabel.split('*')[0]!;
    const key = cleanLabel(label);
    if (run !== undefined && WSP_ONLY.test(gap) && cleanLabel(run.label) === key) {
      run.octets.push(wordOctets(enc, text));
      run.end = start + full.length;
    } else {
      if (run === undefined || !WSP_ONLY.test(gap)) {
        flush();
        out += gap;
      } else flush(); // adjacent words of different charsets: the gap is dropped
      run = {
        label,
        cs: resolveCharset(label),
        start,
        end: start + full.length,
        octets: [wordOctets(enc, text)],
      };
    }
    last = start + full.length;
  }
  flush();
  return out + value.slice(last);
}

function decodeRun(run: Run, value: string, notes: WordNotes | undefined): string {
  const octets = Buffer.concat(run.octets);
  if (run.cs === undefined) {
    // §50.3.2: an unknown charset is read by what its octets are, never as U+FFFD.
    const g = guessText(octets);
    notes?.guessed.push({ label: run.label, as: g.as });
    return g.text;
  }
  if (run.cs.decoder.kind === 'none') {
    notes?.unsupported.push(run.label);
    return value.slice(run.start, run.end);
  }
  // Each word on its own first (stateful charsets such as iso-2022-jp reset in every word);
  // joined only when some word cannot stand alone (a character split across words).
  const cs = run.cs;
  const each = run.octets.map((o) => decodeStrict(o, cs));
  if (each.every((t) => t !== undefined)) return each.join('');
  const text = decodeStrict(octets, cs);
  if (text !== undefined) return text;
  if (notes !== undefined) notes.invalid++;
  return lenient(octets, run.cs);
}
