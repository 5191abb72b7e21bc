/**
 * Display names in address-list fields: `[display-name SP] "<" address ">"`.
 * Spec: docs/protocol.md §20.8.
 *
 * The angle brackets are the "good pair of delimiters": the name ends at the first "<",
 * the address at the next ">", so the name may hold anything but those two — commas and
 * quotes included — and needs no quoting.
 */
import { NmtpError } from '../errors/index.ts';
import { parseAddress, type Address } from './address.ts';

/** "A display name MUST NOT exceed 256 code points." (§20.8) */
export const DISPLAY_NAME_MAX_CODE_POINTS = 256;

/**
 * Code points a display name never contains (§20.8): "<" and ">" (delimiters), C0 controls
 * (TAB included), DEL and C1 controls (as every field value), lone surrogates,
 * noncharacters, U+2028/U+2029 (line breaks in disguise), and the bidi embedding,
 * override and isolate controls U+202A-U+202E and U+2066-U+2069, which could visually
 * move the address that follows the name. LRM, RLM and ALM stay allowed: right-to-left
 * names need them, and they cannot reorder text outside the name.
 */
const FORBIDDEN =
  /[<>\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069\p{Noncharacter_Code_Point}]|[\ud800-\udfff]/u;

function invalid(reason: string, offset?: number): never {
  throw new NmtpError(
    'NMTP_ERR_ADDR_DISPLAY_NAME_INVALID',
    `display name: ${reason}`,
    offset === undefined ? { reason } : { reason, offset },
  );
}

/** Validates a display name as it appears on the wire; returns it unchanged. */
export function validateDisplayName(name: string): string {
  if (name.length === 0) invalid('empty');
  if (name.length > DISPLAY_NAME_MAX_CODE_POINTS * 2) invalid('too long');
  // "MUST NOT begin or end with SP" (§20.8): the single SP before "<" is the separator.
  if (name.startsWith(' ') || name.endsWith(' ')) invalid('leading or trailing space');
  const bad = FORBIDDEN.exec(name);
  if (bad !== null) {
    const cp = bad[0].codePointAt(0)!;
    invalid(`U+${cp.toString(16).toUpperCase().padStart(4, '0')} not allowed`, bad.index);
  }
  // "MUST be in NFC" (§20.8), like every field value of the framed format.
  if (name.normalize('NFC') !== name) invalid('not NFC');
  if ([...name].length > DISPLAY_NAME_MAX_CODE_POINTS) invalid('too long');
  return name;
}

/**
 * Prepares a name a person or a legacy header supplied: NFC, every run of whitespace
 * and controls becomes one SP, edges trimmed. Returns undefined when nothing is left.
 * "<" and ">" are NOT rewritten: validateDisplayName then refuses them, and the caller
 * decides (the legacy conversion may substitute; that is its policy, not this module's).
 */
export function prepareDisplayName(raw: string): string | undefined {
  const name = raw
    .normalize('NFC')
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim();
  return name.length === 0 ? undefined : name;
}

export interface Mailbox {
  readonly displayName?: string;
  readonly address: Address;
}

function mailboxSyntax(message: string, offset: number): never {
  throw new NmtpError('NMTP_ERR_ADDR_MAILBOX_SYNTAX', message, { offset });
}

/**
 * Parses an address-list field value, `mailbox *( "," SP mailbox )` (§20.8). The name runs
 * to the first "<", the address to the next ">"; names cannot contain either, so no
 * quoting or look-ahead is needed and commas inside names are unambiguous. Addresses are
 * parsed in wire mode (§20.6.2). Offsets count UTF-16 code units of `value`.
 */
export function parseMailboxList(value: string): Mailbox[] {
  const out: Mailbox[] = [];
  let pos = 0;
  for (;;) {
    const lt = value.indexOf('<', pos);
    if (lt < 0) mailboxSyntax('"<" expected', pos);
    let displayName: string | undefined;
    if (lt > pos) {
      // "[display-name SP]": exactly one SP separates the name from "<".
      if (value[lt - 1] !== ' ' || lt - 1 === pos) mailboxSyntax('SP expected before "<"', lt);
      displayName = value.slice(pos, lt - 1);
      if (displayName.includes('>')) mailboxSyntax('">" in a display name', pos);
      validateDisplayName(displayName);
    }
    const gt = value.indexOf('>', lt + 1);
    if (gt < 0) mailboxSyntax('">" expected', lt + 1);
    const address = parseAddress(value.slice(lt + 1, gt), { mode: 'wire' });
    out.push(displayName === undefined ? { address } : { displayName, address });
    pos = gt + 1;
    if (pos === value.length) return out;
    if (!value.startsWith(', ', pos)) mailboxSyntax('", " or end of field expected', pos);
    pos += 2;
  }
}

/** Renders one mailbox: `name SP "<" address ">"` or `"<" address ">"` (§20.8). */
export function formatMailbox(mailbox: Mailbox, form: 'display' | 'canonical' = 'display'): string {
  const addr = form === 'display' ? mailbox.address.display : mailbox.address.canonical;
  if (mailbox.displayName === undefined) return `<${addr}>`;
  return `${validateDisplayName(mailbox.displayName)} <${addr}>`;
}

/** Renders an address-list field value: mailboxes joined by ", " (§20.8). */
export function formatMailboxList(
  mailboxes: readonly Mailbox[],
  form: 'display' | 'canonical' = 'display',
): string {
  return mailboxes.map((m) => formatMailbox(m, form)).join(', ');
}
