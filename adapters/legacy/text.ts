/**
 * Free text in legacy headers: unstructured fields (Subject, unknown fields) and display
 * names (RFC 5322 phrase). RFC 2047 encoded-words are produced by libmime; this module
 * decides when they are needed (docs/protocol.md §51.3).
 */
import libmime from 'libmime';
import { canFold } from './fold.ts';

/** Characters of an encoded-word payload chunk before encoding (keeps each word ≤ 75). */
const WORD_CHUNK = 52;

// Text a decoder would take for an encoded-word (RFC 2047 §2): must not be written as is,
// or the reader would see its decoding instead of the text.
const LOOKS_ENCODED = /=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=/;
// RFC 5322 atext, ASCII only.
const ATOM = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]+";
const PHRASE_OF_ATOMS = new RegExp(`^${ATOM}(?: ${ATOM})*$`);
const ATOM_ONLY = new RegExp(`^${ATOM}$`);
const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
const UTF8_QTEXT = /^[\x20-\x7e\u0080-\u{10ffff}]*$/u;

/** Whole value as encoded-words (UTF-8, Q), split so that each word is at most 75 chars. */
export function encodedWords(value: string): string {
  return libmime.encodeWord(value, 'Q', WORD_CHUNK);
}

/**
 * An unstructured field value (RFC 5322 §3.2.5) for the legacy peer.
 * "Non-ASCII text is written as RFC 2047 encoded-words (charset UTF-8) when the peer does
 * not offer SMTPUTF8, and as UTF-8 (RFC 6532) when it does." (§51.3.2) Text that looks like
 * an encoded-word, or that has a word too long for a 998-octet line, is encoded whole so
 * that every decoder shows the original text.
 */
export function unstructured(name: string, value: string, smtputf8: boolean): string {
  if (LOOKS_ENCODED.test(value) || !canFold(name, value)) return encodedWords(value);
  if (ASCII_PRINTABLE.test(value) || smtputf8) return value;
  // Only the words holding non-ASCII become encoded-words; the rest stays readable.
  const out = libmime.encodeWords(value, 'Q', WORD_CHUNK);
  return canFold(name, out) ? out : encodedWords(value);
}

/**
 * A display name as an RFC 5322 phrase: atoms as they are, other ASCII as a quoted-string,
 * non-ASCII as a UTF-8 quoted-string (RFC 6532 §3.2) with SMTPUTF8. Otherwise ASCII atoms
 * stay plain and each run of other words becomes encoded-words (RFC 2047 §5(3); libmime's
 * Q form encodes every special, so the words are phrase-safe). Keeping atoms plain means a
 * long name is rarely split inside a word: some decoders (CPython 3.11's address parser)
 * wrongly keep the space between two adjacent encoded-words (RFC 2047 §6.2).
 */
export function phrase(name: string, smtputf8: boolean): string {
  if (LOOKS_ENCODED.test(name)) return encodedWords(name);
  // RFC 6532 §3.2 adds UTF8-non-ascii to atext: toward SMTPUTF8 peers such words are atoms.
  if (PHRASE_OF_ATOMS.test(smtputf8 ? name.replace(/[^\p{ASCII}]/gu, 'a') : name)) return name;
  if (ASCII_PRINTABLE.test(name) || (smtputf8 && UTF8_QTEXT.test(name))) {
    return `"${name.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  }
  const isAtom = (w: string): boolean => ATOM_ONLY.test(w);
  const out: string[] = [];
  let run: string[] = [];
  for (const w of name.split(' ')) {
    if (isAtom(w)) {
      // The space after a run is written inside it, so no space sits between two
      // encoded-words and none is lost.
      if (run.length > 0) out.push(encodedWords(run.join(' ')));
      run = [];
      out.push(w);
    } else {
      run.push(w);
    }
  }
  if (run.length > 0) out.push(encodedWords(run.join(' ')));
  return out.join(' ');
}

/** True when every character is ASCII. */
export function isAscii(s: string): boolean {
  return !/[^\p{ASCII}]/u.test(s);
}
