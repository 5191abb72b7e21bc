/**
 * Decoded header text (spec §50.3.2, §50.3.3): RFC 2047 encoded-words → UTF-8, then the result
 * made a valid framed field value.
 */
import { decodeEncodedWords, type WordNotes } from './encoded-words.ts';

export { decodeEncodedWords, newNotes, type WordNotes } from './encoded-words.ts';

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const HAS_LONE_SURROGATE = new RegExp(LONE_SURROGATE.source);

// C0 (TAB, LF, CR included), DEL, C1: what a framed field value cannot hold (§10.3).
const CONTROL = /\p{Cc}/gu;
// Controls other than the whitespace of folding (TAB, LF, CR): their loss is reported.
const CONTROL_OTHER_THAN_WHITESPACE = /[^\P{Cc}\t\n\r]/u;

/**
 * Makes text a framed field value: "MUST be well-formed UTF-8 … MUST NOT contain a control
 * character … MUST be in Unicode Normalization Form C … MUST NOT start or end with SP" (§10.3).
 * §50.3.3: each control character (TAB, CR, LF and NUL included) becomes one SP, runs of
 * spaces are kept as written (as RFC 5322 unfolding and Python keep them), other Unicode
 * spaces (NBSP, U+3000) are text and stay, lone surrogates become U+FFFD, the result is
 * NFC and trimmed of SP. Controls are replaced, never refused.
 */
export function toFieldValue(text: string): { value: string; changed: boolean } {
  const changed = CONTROL_OTHER_THAN_WHITESPACE.test(text) || HAS_LONE_SURROGATE.test(text);
  let value = text.replace(LONE_SURROGATE, '\ufffd').replace(CONTROL, ' ');
  // Fast path: ASCII is already NFC.
  if (!/^[\x20-\x7e]*$/.test(value)) value = value.normalize('NFC');
  let a = 0;
  let b = value.length;
  while (a < b && value.charCodeAt(a) === 0x20) a++;
  while (b > a && value.charCodeAt(b - 1) === 0x20) b--;
  return { value: a === 0 && b === value.length ? value : value.slice(a, b), changed };
}

/** Decodes then sanitises: the text of an unstructured legacy field. */
export function headerText(raw: string, notes?: WordNotes): { value: string; changed: boolean } {
  return toFieldValue(decodeEncodedWords(raw, notes));
}
