/**
 * Text bodies → UTF-8 (spec §50.5.2). iconv-lite knows the charsets legacy mail uses
 * (iso-2022-jp, gb18030, big5, euc-kr, koi8-r, windows-125x, ...).
 */
import iconv from 'iconv-lite';

export type Transcoded =
  | { readonly ok: true; readonly utf8: Uint8Array }
  | { readonly ok: false; readonly reason: 'unknown-charset' | 'invalid-octets' };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const enc = new TextEncoder();

/**
 * Charsets iconv-lite lacks (iso-2022-jp above all) are decoded by the WHATWG Encoding
 * decoders built into Node (ICU), in fatal mode so that invalid octets are detected.
 * iconv-lite is asked first because WHATWG maps iso-8859-1 to windows-1252, which is
 * not what the label means (and not what Python does).
 */
function whatwgDecode(octets: Uint8Array, cs: string): Transcoded {
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder(cs, { fatal: true, ignoreBOM: true });
  } catch {
    return { ok: false, reason: 'unknown-charset' };
  }
  try {
    return { ok: true, utf8: enc.encode(decoder.decode(octets)) };
  } catch {
    return { ok: false, reason: 'invalid-octets' };
  }
}

/** Aliases seen in real mail that iconv-lite does not list. */
const ALIASES: Record<string, string> = {
  'ks_c_5601-1987': 'cp949',
  'x-unknown': 'us-ascii',
  'unicode-1-1-utf-7': 'utf-7',
  'x-user-defined': 'windows-1252',
};

function isUtf8Family(cs: string): boolean {
  return cs === 'utf-8' || cs === 'utf8';
}

/**
 * Transcodes `octets` declared as `charset` (undefined: none declared) to UTF-8 (spec §50.5.2).
 *
 * - No charset, or us-ascii (RFC 2045 §5.2 default): valid UTF-8 is taken as UTF-8 (8-bit
 *   UTF-8 in such parts is what writers meant in practice); anything else is unconvertible.
 * - utf-8: must be valid UTF-8, else unconvertible (never silently replaced by U+FFFD).
 * - Other known charsets: decoded. A U+FFFD in the result that does not round-trip to the
 *   input is a decoder substitution, so the part is unconvertible.
 */
export function transcodeToUtf8(octets: Uint8Array, charset: string | undefined): Transcoded {
  let cs = (charset ?? 'us-ascii').trim().toLowerCase();
  cs = ALIASES[cs] ?? cs;
  if (cs === 'us-ascii' || cs === 'ascii' || cs === 'ansi_x3.4-1968' || isUtf8Family(cs)) {
    try {
      strictUtf8.decode(octets);
      return { ok: true, utf8: octets };
    } catch {
      return { ok: false, reason: 'invalid-octets' };
    }
  }
  if (!iconv.encodingExists(cs)) return whatwgDecode(octets, cs);
  const text = iconv.decode(Buffer.from(octets.buffer, octets.byteOffset, octets.length), cs, {
    stripBOM: false,
  });
  if (text.includes('\ufffd')) {
    // Round-trip check: if re-encoding gives back the input, the U+FFFD was genuine.
    const back = iconv.encode(text, cs);
    if (!Buffer.from(octets.buffer, octets.byteOffset, octets.length).equals(back)) {
      return { ok: false, reason: 'invalid-octets' };
    }
  }
  return { ok: true, utf8: enc.encode(text) };
}
