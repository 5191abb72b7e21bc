/**
 * Header fields of a framed message (docs/protocol.md §10.3 and §10.5):
 * the generic field rules every line obeys, and parse/print for the structured fields the
 * codec itself must understand (Content-Length, Content-Type, address lists, Date).
 *
 * Every parser here is strict and total: it returns a value or throws an NmtpError with a
 * FRAME code; it never guesses. Printers produce exactly the text their parser accepts, so
 * parse(print(x)) == x and print(parse(s)) == s for every valid s.
 */
import { NmtpError } from '../errors/index.ts';
import type { FRAME_ERRORS } from '../errors/frame.ts';

export type FrameErrorCode = keyof typeof FRAME_ERRORS;

/** One header line, `name: value`. The name keeps the case it was written in. */
export interface Field {
  readonly name: string;
  readonly value: string;
}

// "field-name = 1*( ALPHA / DIGIT / "-" )  ; ASCII, case-insensitive"
const FIELD_NAME = /^[A-Za-z0-9-]+$/;

/** True when `name` is a syntactically valid field name. */
export function isValidFieldName(name: string): boolean {
  return FIELD_NAME.test(name);
}

/** Field names compare case-insensitively (ASCII only, so toLowerCase is exact). */
export function fieldNameEquals(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

// "no C0 controls (incl. TAB), no DEL, no C1"
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Checks a decoded field value against the generic value rules and returns the code of the
 * first rule it breaks (in the order the spec lists them), or undefined when it is valid.
 * UTF-8 well-formedness is checked by the caller that decodes the bytes.
 */
export function checkFieldValue(value: string): FrameErrorCode | undefined {
  if (CONTROL.test(value)) return 'NMTP_ERR_FRAME_CONTROL_CHAR';
  // A lone surrogate cannot come from well-formed UTF-8; from a JS caller it must be refused
  // here, because it would be encoded as U+FFFD and the value would silently change.
  if (LONE_SURROGATE.test(value)) return 'NMTP_ERR_FRAME_UTF8';
  // "field-value = *uchar ; UTF-8, NFC": one spelling per text, so signers and readers agree.
  if (value.normalize('NFC') !== value) return 'NMTP_ERR_FRAME_NOT_NFC';
  // "MUST NOT start or end with SP; may be empty"
  if (value.startsWith(' ') || value.endsWith(' ')) return 'NMTP_ERR_FRAME_FIELD_SYNTAX';
  return undefined;
}

/**
 * Fields that occur at most once per header block. A duplicate is an error rather than
 * "first wins" or "last wins": a verifier and a reader that resolved it differently would
 * show the reader a From the verifier never checked.
 */
export const SINGLETON_FIELDS: ReadonlySet<string> = new Set([
  'content-length',
  'content-type',
  'content-disposition',
  'content-filename',
  'content-id',
  'content-language',
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
]);

/** Fields whose value is an address list (§10.5.3). */
export const ADDRESS_LIST_FIELDS: ReadonlySet<string> = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
]);

/** The value of the first field called `name` (any case), or undefined. */
export function getField(fields: readonly Field[], name: string): string | undefined {
  for (const f of fields) if (fieldNameEquals(f.name, name)) return f.value;
  return undefined;
}

/** The values of every field called `name` (any case), in order. */
export function getFields(fields: readonly Field[], name: string): string[] {
  return fields.filter((f) => fieldNameEquals(f.name, name)).map((f) => f.value);
}

function fail(code: FrameErrorCode, message: string): never {
  throw new NmtpError(code, message);
}

/**
 * Validates one field: name syntax, generic value rules, and the structured syntax of the
 * fields the codec knows (Content-Length, Content-Type, address lists, Date). Throws.
 */
export function validateField(field: Field): void {
  if (!isValidFieldName(field.name)) {
    fail('NMTP_ERR_FRAME_FIELD_SYNTAX', `invalid field name ${JSON.stringify(field.name)}`);
  }
  const code = checkFieldValue(field.value);
  if (code !== undefined) fail(code, `invalid value for field ${field.name}`);
  validateStructuredValue(field.name.toLowerCase(), field.value);
}

/**
 * Checks the syntax of a known structured field, given its lower-case name. Unknown names
 * pass: "unknown header fields ... are carried unchanged".
 */
export function validateStructuredValue(lowerName: string, value: string): void {
  switch (lowerName) {
    case 'content-length':
      parseContentLength(value);
      return;
    case 'content-type':
      parseContentType(value);
      return;
    case 'date':
      parseDate(value);
      return;
    default:
      if (ADDRESS_LIST_FIELDS.has(lowerName)) parseAddressList(value);
  }
}

// ---------------------------------------------------------------------------------------
// Content-Length
// ---------------------------------------------------------------------------------------

// "Content-Length: "0" / %x31-39 *14DIGIT (no sign, no leading zeros, ≤ 2^53-1)".
// At most 15 digits, so every valid value is a safe integer and no big-number code exists.
const CONTENT_LENGTH = /^(?:0|[1-9][0-9]{0,14})$/;

/** Parses a Content-Length value. Throws NMTP_ERR_FRAME_LENGTH_SYNTAX. */
export function parseContentLength(value: string): number {
  if (!CONTENT_LENGTH.test(value)) {
    fail('NMTP_ERR_FRAME_LENGTH_SYNTAX', `invalid Content-Length ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** Prints a Content-Length value (the decimal digits, nothing else). */
export function formatContentLength(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n > 999_999_999_999_999) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `content length out of range: ${n}`);
  }
  return String(n);
}

// ---------------------------------------------------------------------------------------
// Content-Type
// ---------------------------------------------------------------------------------------

/** A parsed Content-Type. Case is kept as written; compare with the helpers below. */
export interface ContentType {
  readonly type: string;
  readonly subtype: string;
  /** Parameters in written order; names are unique (case-insensitively). */
  readonly params: readonly (readonly [name: string, value: string])[];
}

/** "Default `text/plain`" — the type of a part without a Content-Type field. */
export const DEFAULT_CONTENT_TYPE: ContentType = Object.freeze({
  type: 'text',
  subtype: 'plain',
  params: Object.freeze([]),
});

// restricted-name characters of RFC 6838 §4.2
const TOKEN = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/;

/**
 * Parses `type "/" subtype *( ";" SP pname "=" pvalue )`. pvalue runs to the next ";" or
 * the end: it may hold "=" and spaces but never ";", so splitting on ";" is unambiguous
 * and no quoting exists. Throws NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX.
 */
export function parseContentType(value: string): ContentType {
  const bad = (why: string): never =>
    fail('NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX', `${why}: ${JSON.stringify(value)}`);
  const [media = '', ...rawParams] = value.split(';');
  const slash = media.indexOf('/');
  if (slash < 0) bad('no "/" in media type');
  const type = media.slice(0, slash);
  const subtype = media.slice(slash + 1);
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) bad('invalid type or subtype');
  const params: (readonly [string, string])[] = [];
  const seen = new Set<string>();
  for (const raw of rawParams) {
    // "; SP pname = pvalue": exactly one space after each ";"
    if (!raw.startsWith(' ')) bad('parameter not introduced by "; "');
    const eq = raw.indexOf('=');
    if (eq < 0) bad('parameter without "="');
    const name = raw.slice(1, eq);
    const pvalue = raw.slice(eq + 1);
    if (!TOKEN.test(name)) bad('invalid parameter name');
    // Duplicate parameters would be resolved differently by different readers.
    const lower = name.toLowerCase();
    if (seen.has(lower)) bad(`duplicate parameter ${name}`);
    seen.add(lower);
    params.push([name, pvalue] as const);
  }
  return { type, subtype, params };
}

/** Prints a ContentType; throws NMTP_ERR_INVALID_ARGUMENT if it would not parse back. */
export function formatContentType(ct: ContentType): string {
  let s = `${ct.type}/${ct.subtype}`;
  for (const [name, value] of ct.params) s += `; ${name}=${value}`;
  let back: ContentType;
  try {
    back = parseContentType(s);
  } catch (e) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `unprintable content type ${s}`, {}, e);
  }
  if (back.params.length !== ct.params.length || back.type !== ct.type) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `unprintable content type ${s}`);
  }
  return s;
}

/** The value of a parameter (name compared case-insensitively), or undefined. */
export function contentTypeParam(ct: ContentType, name: string): string | undefined {
  return ct.params.find(([n]) => fieldNameEquals(n, name))?.[1];
}

/** "Container types: `multipart/*`" — types and subtypes compare case-insensitively. */
export function isMultipart(ct: ContentType): boolean {
  return ct.type.toLowerCase() === 'multipart';
}

/** "`message/nmtp`: body is exactly one child part (a nested root part)." */
export function isMessageNmtp(ct: ContentType): boolean {
  return ct.type.toLowerCase() === 'message' && ct.subtype.toLowerCase() === 'nmtp';
}

// ---------------------------------------------------------------------------------------
// Address lists
// ---------------------------------------------------------------------------------------

/** One mailbox of an address-list field. */
export interface Mailbox {
  /** Absent when the mailbox is just `<address>`. */
  readonly displayName?: string;
  /** Raw address text; full validation belongs to src/core/address/. */
  readonly address: string;
}

/**
 * Optional hook for full validation of each mailbox (src/core/address/ provides the rules
 * for addresses and display names): throw an NmtpError to refuse. Without it, the frame
 * layer only checks the delimiter rule.
 */
export type AddressValidator = (address: string, displayName?: string) => void;

// "address ... never contains "<", ">", ",", whitespace" (and, as in any field value, no
// controls). Whitespace is Unicode's White_Space property, which JavaScript's \s is not
// (\s also matches U+FEFF): the address layer, not the frame, refuses other characters.
const ADDRESS_TEXT = /^[^<>,\p{White_Space}\p{Cc}]+$/u;

/**
 * Parses `mailbox *( "," SP mailbox )`, `mailbox = [display-name SP] "<" address ">"`.
 * The angle brackets delimit: a display name may hold commas, and since neither a display
 * name nor an address can contain "<" or ">", each mailbox is found without backtracking.
 * Throws NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX (or whatever `validateAddress` throws).
 */
export function parseAddressList(value: string, validateAddress?: AddressValidator): Mailbox[] {
  const bad = (why: string): never =>
    fail('NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX', `${why}: ${JSON.stringify(value)}`);
  const out: Mailbox[] = [];
  let i = 0;
  for (;;) {
    const lt = value.indexOf('<', i);
    if (lt < 0) bad('mailbox without "<"');
    const gt = value.indexOf('>', lt + 1);
    if (gt < 0) bad('mailbox without ">"');
    const address = value.slice(lt + 1, gt);
    if (!ADDRESS_TEXT.test(address)) bad('address empty or containing < > , or whitespace');
    let displayName: string | undefined;
    if (lt > i) {
      // "[display-name SP]": exactly one SP before "<", and the name itself has no edge space
      if (value[lt - 1] !== ' ') bad('display name not followed by one SP');
      displayName = value.slice(i, lt - 1);
      if (displayName === '' || displayName.startsWith(' ') || displayName.endsWith(' ')) {
        bad('display name empty or with edge space');
      }
      if (displayName.includes('>')) bad('">" in display name');
    }
    validateAddress?.(address, displayName);
    out.push(displayName === undefined ? { address } : { displayName, address });
    i = gt + 1;
    if (i === value.length) return out;
    if (value[i] !== ',' || value[i + 1] !== ' ') bad('mailboxes not separated by ", "');
    i += 2;
  }
}

/** Prints an address list; throws NMTP_ERR_INVALID_ARGUMENT if it would not parse back. */
export function formatAddressList(list: readonly Mailbox[]): string {
  const s = list
    .map((m) =>
      m.displayName === undefined ? `<${m.address}>` : `${m.displayName} <${m.address}>`,
    )
    .join(', ');
  let back: Mailbox[];
  try {
    back = parseAddressList(s);
  } catch (e) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'unprintable address list', {}, e);
  }
  if (back.length !== list.length) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'unprintable address list');
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// Date
// ---------------------------------------------------------------------------------------

/** A parsed Date value. */
export interface NmtpDate {
  /** The instant, in milliseconds since 1970-01-01T00:00:00Z (sub-millisecond digits dropped). */
  readonly epochMs: number;
  /** The writer's UTC offset in minutes; null for "-00:00" (offset unknown, RFC 3339 §4.3). */
  readonly offsetMinutes: number | null;
}

// "Date: RFC 3339 with explicit offset": date-time of RFC 3339 §5.6 with an upper-case
// "T" and "Z" (RFC 3339 allows lower case; one spelling is enough) and no leap second.
const DATE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/** Parses a Date value. Throws NMTP_ERR_FRAME_DATE_SYNTAX. */
export function parseDate(value: string): NmtpDate {
  const m = DATE.exec(value);
  const bad = (why: string): never =>
    fail('NMTP_ERR_FRAME_DATE_SYNTAX', `${why}: ${JSON.stringify(value)}`);
  if (m === null) return bad('not an RFC 3339 date-time');
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days === undefined || day < 1 || day > days) bad('no such day');
  if (hour > 23 || minute > 59 || second > 59) bad('no such time');
  let offsetMinutes: number | null = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) bad('no such offset');
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (oh * 60 + om);
    if (m[8] === '-' && oh === 0 && om === 0) offsetMinutes = null;
  }
  // Milliseconds from the first three fraction digits, by string (no float rounding).
  const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear puts them back.
  const fixed = new Date(utc);
  fixed.setUTCFullYear(year);
  return { epochMs: fixed.getTime() - (offsetMinutes ?? 0) * 60_000, offsetMinutes };
}

/**
 * Prints an instant as a Date value in the given offset (default UTC, printed "Z"; null
 * prints "-00:00", offset unknown). Milliseconds are printed only when non-zero.
 */
export function formatDate(epochMs: number, offset: number | null = 0): string {
  const offsetMinutes = offset ?? 0;
  if (!Number.isInteger(epochMs) || !Number.isInteger(offsetMinutes)) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'date must be integral milliseconds');
  }
  if (Math.abs(offsetMinutes) > 23 * 60 + 59) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `offset out of range: ${offsetMinutes}`);
  }
  const local = new Date(epochMs + offsetMinutes * 60_000);
  const year = local.getUTCFullYear();
  if (year < 0 || year > 9999) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `year out of range: ${year}`);
  }
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const ms = local.getUTCMilliseconds();
  const off =
    offset === null
      ? '-00:00'
      : offsetMinutes === 0
        ? 'Z'
        : `${offsetMinutes < 0 ? '-' : '+'}${p(Math.floor(Math.abs(offsetMinutes) / 60))}:${p(Math.abs(offsetMinutes) % 60)}`;
  return (
    `${p(year, 4)}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())}` +
    `T${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}` +
    `${ms === 0 ? '' : `.${p(ms, 3)}`}${off}`
  );
}
