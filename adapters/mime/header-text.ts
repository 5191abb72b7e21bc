/**
 * Decoded header text (spec §50.3.2, §50.3.3): RFC 2047 encoded-words → UTF-8, then the result
 * made a valid framed field value.
 */
import libmime from 'libmime';

/**
 * RFC 2047 §6.2: "any 'linear-white-space' that separates a pair of adjacent
 * 'encoded-word's is ignored." libmime implements that, Q and B, any case, and leaves
 * words it cannot parse as literal text; it knows every charset iconv-lite knows.
 */
export function decodeEncodedWords(value: string): string {
  if (!value.includes('=?')) return value;
  try {
    return libmime.decodeWords(value);
  } catch {
    // A decoder failure leaves the text literal rather than losing the field (§50.3.2).
    return value;
  }
}

/**
 * Makes text a framed field value: "field-value = *uchar ; UTF-8, NFC, no C0 controls
 * (incl. TAB), no DEL, no C1; MUST NOT start or end with SP" (§10.3). Decoders let
 * encoded CR, LF, NUL through; we replace every run of whitespace and controls with one
 * SP rather than refusing, because the text is for people and the run carries no meaning
 * (§50.3.3: "controls are replaced, never refused"). Lone surrogates (from broken UTF-16
 * words) become U+FFFD.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

// C0 except TAB, LF, CR; DEL; C1.
const CONTROL_OTHER_THAN_WHITESPACE = /[^\P{Cc}\t\n\r]/u;

export function toFieldValue(text: string): { value: string; changed: boolean } {
  const value = text
    .replace(LONE_SURROGATE, '\ufffd')
    .normalize('NFC')
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim();
  // "changed" means more than folding whitespace was lost: a control other than TAB/SP/CRLF.
  const changed =
    CONTROL_OTHER_THAN_WHITESPACE.test(text) || new RegExp(LONE_SURROGATE.source).test(text);
  return { value, changed };
}

/** Decodes then sanitises: the text of an unstructured legacy field. */
export function headerText(raw: string): { value: string; changed: boolean } {
  return toFieldValue(decodeEncodedWords(raw));
}
