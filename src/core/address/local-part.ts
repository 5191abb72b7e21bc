/**
 * NMTP local parts: the PRECIS UsernameCasePreserved profile (RFC 8265 §3.4, built on the
 * IdentifierClass of RFC 8264 §4.2) plus a handful of ASCII delimiters NMTP reserves.
 *
 * Spec: docs/protocol.md §20.4. The derived-property algorithm below follows
 * RFC 8264 §8 in order; each step's Unicode property is evaluated with an ECMAScript
 * property escape, so the Unicode version is the one of the running engine's ICU
 * (Node 20.20: Unicode 17.0, `process.versions.unicode`). Properties ECMAScript cannot
 * express (Bidi_Class, Joining_Type, combining class Virama) come from tr46@6.0.0's
 * generated tables (Unicode 17.0 too).
 */
import regexes from 'tr46/lib/regexes.js';
import { NmtpError } from '../errors/index.ts';

/** "NMTP local parts MUST NOT exceed 64 code points nor 255 octets in UTF-8." (§20.4.4) */
export const LOCAL_MAX_CODE_POINTS = 64;
export const LOCAL_MAX_OCTETS = 255;

/**
 * "In addition to the PRECIS rules, the local part MUST NOT contain "@", "<", ">", ",",
 * '"' or "\"." (§20.4.2) — "@" splits the address, "<" ">" "," delimit address lists in the
 * framed format, '"' and "\" are RFC 5322's quoting and escaping characters: NMTP has no
 * quoting, and keeping them out means every NMTP address maps to legacy mail without
 * quoted-pairs.
 */
export const NMTP_RESERVED_ASCII = new Set(['@', '<', '>', ',', '"', '\\']);

/** RFC 8264 §9.6 Exceptions (F): the only code points whose class is fixed by hand. */
const EXCEPTIONS_PVALID = new Set([0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007]);
const EXCEPTIONS_CONTEXTO = new Set([
  0x00b7, 0x0375, 0x05f3, 0x05f4, 0x30fb, 0x0660, 0x0661, 0x0662, 0x0663, 0x0664, 0x0665, 0x0666,
  0x0667, 0x0668, 0x0669, 0x06f0, 0x06f1, 0x06f2, 0x06f3, 0x06f4, 0x06f5, 0x06f6, 0x06f7, 0x06f8,
  0x06f9,
]);
const EXCEPTIONS_DISALLOWED = new Set([
  0x0640, 0x07fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b,
]);

// Property escapes for the RFC 8264 §9 categories (each evaluated on one code point).
// §9.10 Unassigned = Cn minus noncharacters (which are Cn too and fall to §9.13).
const UNASSIGNED = /^\p{Cn}$/u;
const NONCHARACTER = /^\p{Noncharacter_Code_Point}$/u;
const JOIN_CONTROL = /^\p{Join_Control}$/u; // §9.8
const IGNORABLE = /^\p{Default_Ignorable_Code_Point}$/u; // §9.13 PrecisIgnorableProperties
const CONTROL = /^\p{Cc}$/u; // §9.12
const LETTER_DIGITS = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u; // §9.1
const WHITESPACE = /^[\p{White_Space}\p{Zs}]$/u;

/**
 * RFC 8264 §9.9 OldHangulJamo: Hangul_Syllable_Type L, V or T. ECMAScript has no escape
 * for that property; these are its exact ranges (HangulSyllableType.txt, stable since 5.2).
 */
function isOldHangulJamo(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x11ff) ||
    (cp >= 0xa960 && cp <= 0xa97c) ||
    (cp >= 0xd7b0 && cp <= 0xd7c6) ||
    (cp >= 0xd7cb && cp <= 0xd7fb)
  );
}

export type PrecisClass = 'PVALID' | 'CONTEXTJ' | 'CONTEXTO' | 'DISALLOWED' | 'UNASSIGNED';

/**
 * The IdentifierClass derived property of one code point, RFC 8264 §8, steps in order.
 * ("ID_DIS" of the FreeformClass-only categories is reported as DISALLOWED.)
 */
export function identifierClassOf(cp: number): PrecisClass {
  if (EXCEPTIONS_PVALID.has(cp)) return 'PVALID';
  if (EXCEPTIONS_CONTEXTO.has(cp)) return 'CONTEXTO';
  if (EXCEPTIONS_DISALLOWED.has(cp)) return 'DISALLOWED';
  // BackwardCompatible (§9.7) is empty.
  const ch = String.fromCodePoint(cp);
  if (UNASSIGNED.test(ch) && !NONCHARACTER.test(ch)) return 'UNASSIGNED';
  if (cp >= 0x21 && cp <= 0x7e) return 'PVALID'; // §9.11 ASCII7
  if (JOIN_CONTROL.test(ch)) return 'CONTEXTJ';
  if (isOldHangulJamo(cp)) return 'DISALLOWED';
  if (IGNORABLE.test(ch) || NONCHARACTER.test(ch)) return 'DISALLOWED';
  if (CONTROL.test(ch)) return 'DISALLOWED';
  // §9.17 HasCompat: "toNFKC(cp) != cp" — ID_DIS, before LetterDigits.
  if (ch.normalize('NFKC') !== ch) return 'DISALLOWED';
  if (LETTER_DIGITS.test(ch)) return 'PVALID';
  // OtherLetterDigits, Spaces, Symbols, Punctuation: ID_DIS; anything else DISALLOWED.
  return 'DISALLOWED';
}

/**
 * RFC 8265 §3.4.1 step 1, "Width Mapping Rule: Map fullwidth and halfwidth code points
 * to their decomposition mappings". Those are exactly the <wide>/<narrow> decompositions,
 * all in U+3000 (wide space) and U+FF01..U+FFEE; NFKC of one such code point is its
 * decomposition mapping.
 */
function widthMap(s: string): string {
  return s.replace(/[\u3000\uff01-\uffee]/gu, (ch) => ch.normalize('NFKC'));
}

/** PRECIS "preparation + enforcement" steps that change the string (RFC 8265 §3.4.1). */
export function prepareLocalPart(raw: string): string {
  // Steps 1 (width mapping) and 4 (NFC); steps 2 (additional) and 3 (case) are none for
  // UsernameCasePreserved.
  return widthMap(raw).normalize('NFC');
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

function fail(
  code:
    | 'NMTP_ERR_ADDR_LOCAL_EMPTY'
    | 'NMTP_ERR_ADDR_LOCAL_TOO_LONG'
    | 'NMTP_ERR_ADDR_LOCAL_CHAR'
    | 'NMTP_ERR_ADDR_LOCAL_CONTEXT'
    | 'NMTP_ERR_ADDR_LOCAL_BIDI',
  message: string,
  details: Record<string, unknown> = {},
): never {
  throw new NmtpError(code, message, details);
}

function hex(cp: number): string {
  return 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * RFC 5892 Appendix A contextual rules (RFC 8264 §7 requires them for CONTEXTJ/CONTEXTO).
 * `cps` is the whole local part, `i` the position of the code point under test.
 */
function contextAllows(cps: readonly number[], i: number): boolean {
  const cp = cps[i]!;
  const before = cps[i - 1];
  const after = cps[i + 1];
  const str = (c: number | undefined): string => (c === undefined ? '' : String.fromCodePoint(c));
  switch (true) {
    case cp === 0x200c: {
      // A.1 ZERO WIDTH NON-JOINER: after a virama, or between joining letters.
      if (before !== undefined && regexes.combiningClassVirama.test(str(before))) return true;
      // tr46's regex is unanchored ((L|D) T* ZWNJ T* (R|D)); test it on the stretch between
      // the neighbouring ZWNJs so that it can only match around this one.
      const prev = cps.lastIndexOf(0x200c, i - 1);
      const next = cps.indexOf(0x200c, i + 1);
      const stretch = cps.slice(prev + 1, next < 0 ? cps.length : next);
      return regexes.validZWNJ.test(String.fromCodePoint(...stretch));
    }
    case cp === 0x200d: // A.2 ZERO WIDTH JOINER: only after a virama.
      return before !== undefined && regexes.combiningClassVirama.test(str(before));
    case cp === 0x00b7: // A.3 MIDDLE DOT: between two "l" (Catalan l·l).
      return before === 0x6c && after === 0x6c;
    case cp === 0x0375: // A.4 GREEK LOWER NUMERAL SIGN (KERAIA): followed by Greek.
      return after !== undefined && /^\p{Script=Greek}$/u.test(str(after));
    case cp === 0x05f3 || cp === 0x05f4: // A.5/A.6 HEBREW GERESH/GERSHAYIM: after Hebrew.
      return before !== undefined && /^\p{Script=Hebrew}$/u.test(str(before));
    case cp === 0x30fb: // A.7 KATAKANA MIDDLE DOT: somewhere Hiragana, Katakana or Han.
      return cps.some((c) =>
        /^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u.test(str(c)),
      );
    case cp >= 0x0660 && cp <= 0x0669: // A.8 ARABIC-INDIC DIGITS: no extended ones too.
      return !cps.some((c) => c >= 0x06f0 && c <= 0x06f9);
    case cp >= 0x06f0 && cp <= 0x06f9: // A.9 EXTENDED ARABIC-INDIC DIGITS: no plain ones.
      return !cps.some((c) => c >= 0x0660 && c <= 0x0669);
    default:
      return false;
  }
}

/**
 * RFC 5893 §2 Bidi Rule, applied "to strings that contain right-to-left characters"
 * (RFC 8265 §3.4.1 step 5). tr46's regexes implement the six conditions for one label.
 */
function bidiRuleHolds(s: string): boolean {
  if (!regexes.bidiDomain.test(s)) return true; // no R, AL or AN: rule does not apply
  const first = String.fromCodePoint(s.codePointAt(0)!);
  if (regexes.bidiS1RTL.test(first)) {
    return (
      regexes.bidiS2.test(s) &&
      regexes.bidiS3.test(s) &&
      !(regexes.bidiS4EN.test(s) && regexes.bidiS4AN.test(s))
    );
  }
  if (regexes.bidiS1LTR.test(first)) return regexes.bidiS5.test(s) && regexes.bidiS6.test(s);
  return false;
}

/**
 * Prepares and validates a local part; returns its canonical form (width-mapped, NFC).
 * Throws NmtpError NMTP_ERR_ADDR_LOCAL_*; `details.offset` counts UTF-16 code units of the
 * prepared local part.
 */
export function enforceLocalPart(raw: string): string {
  if (raw.length === 0) fail('NMTP_ERR_ADDR_LOCAL_EMPTY', 'the local part is empty');
  // Bound the work before normalising. A valid local part has at most 64 code points;
  // even fully decomposed (at most 4 code points each) that is far below 510 code units.
  if (raw.length > LOCAL_MAX_OCTETS * 2) {
    fail('NMTP_ERR_ADDR_LOCAL_TOO_LONG', `local part of ${raw.length} UTF-16 code units`);
  }
  const local = prepareLocalPart(raw);
  const cps = Array.from(local, (ch) => ch.codePointAt(0)!);
  // "NMTP local parts MUST NOT exceed 64 code points nor 255 octets in UTF-8." (§20.4.4)
  if (cps.length > LOCAL_MAX_CODE_POINTS || utf8Length(local) > LOCAL_MAX_OCTETS) {
    fail('NMTP_ERR_ADDR_LOCAL_TOO_LONG', `local part of ${cps.length} code points`);
  }
  let offset = 0;
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i]!;
    const ch = String.fromCodePoint(cp);
    if (NMTP_RESERVED_ASCII.has(ch) || WHITESPACE.test(ch)) {
      fail('NMTP_ERR_ADDR_LOCAL_CHAR', `${hex(cp)} is reserved by NMTP`, {
        offset,
        codePoint: hex(cp),
      });
    }
    const cls = identifierClassOf(cp);
    // "A code point is allowed if its IdentifierClass property is PVALID, or CONTEXTJ /
    // CONTEXTO and its contextual rule holds." (§20.4.2)
    if (cls === 'CONTEXTJ' || cls === 'CONTEXTO') {
      if (!contextAllows(cps, i)) {
        fail('NMTP_ERR_ADDR_LOCAL_CONTEXT', `${hex(cp)} is not allowed in this context`, {
          offset,
          codePoint: hex(cp),
        });
      }
    } else if (cls !== 'PVALID') {
      fail('NMTP_ERR_ADDR_LOCAL_CHAR', `${hex(cp)} is ${cls} in the PRECIS IdentifierClass`, {
        offset,
        codePoint: hex(cp),
      });
    }
    offset += ch.length;
  }
  // "The local part MUST satisfy the Bidi Rule of RFC 5893 if it contains a
  // right-to-left character." (§20.4.3)
  if (!bidiRuleHolds(local)) fail('NMTP_ERR_ADDR_LOCAL_BIDI', 'the Bidi Rule fails');
  // RFC 8265 §3.4.1 enforcement ends with "MUST NOT be empty" — width mapping cannot
  // empty a non-empty string, so the check at the top suffices.
  return local;
}
