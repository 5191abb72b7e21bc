/**
 * Mapping between legacy addresses (RFC 5321 Mailbox / RFC 5322 addr-spec, with the
 * RFC 6531/6532 UTF-8 extensions) and NMTP addresses. Spec: docs/protocol.md §20.9.
 *
 * The mapping is exact or it fails: the gateway never guesses that two different legacy
 * strings name the same mailbox. The only legacy variation it removes is quoting, which
 * RFC 5321 §4.1.2 defines as not changing the local part ("a\b" and "ab" — and
 * "john.smith" and john.smith — are the same local part).
 */
import { NmtpError } from '../errors/index.ts';
import { parseAddress, type Address } from './address.ts';
import { prepareLocalPart } from './local-part.ts';

/** RFC 5322 atext, plus UTF8-non-ascii (RFC 6532 §3.2). */
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]/u;
const DOT_ATOM =
  /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+)*$/u;
/** RFC 5321 qtextSMTP (%d32-33 / %d35-91 / %d93-126) plus UTF8-non-ascii (RFC 6531). */
const QTEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10ffff}]$/u;

export interface FromLegacyOptions {
  /**
   * Whether the legacy side allowed UTF-8 (SMTPUTF8 session, or RFC 6532 headers).
   * Default true. When false, a non-ASCII address is a syntax error there.
   */
  readonly smtputf8?: boolean;
}

export interface ToLegacyOptions {
  /** Whether the legacy peer offered SMTPUTF8 (RFC 6531). */
  readonly smtputf8: boolean;
}

function syntax(message: string, offset?: number): never {
  throw new NmtpError(
    'NMTP_ERR_ADDR_LEGACY_SYNTAX',
    message,
    offset === undefined ? {} : { offset },
  );
}

/**
 * Splits a legacy addr-spec into its local part (quotes removed, quoted-pairs resolved)
 * and its domain text. Comments (CFWS) and obsolete forms are not accepted: envelope
 * addresses (RFC 5321) never have them, and header parsers hand over a clean addr-spec.
 * Exported for the gateway's router, which routes unmappable legacy addresses to SMTP.
 */
export function splitLegacy(addr: string): { local: string; quoted: boolean; domain: string } {
  if (addr.startsWith('"')) {
    let local = '';
    let i = 1;
    for (;;) {
      if (i >= addr.length) syntax('unterminated quoted string', i);
      const ch = String.fromCodePoint(addr.codePointAt(i)!);
      if (ch === '"') break;
      if (ch === '\\') {
        // RFC 5321 quoted-pairSMTP = %d92 %d32-126: the escaped character itself.
        const next = addr.charCodeAt(i + 1);
        if (!(next >= 0x20 && next <= 0x7e)) syntax('bad quoted-pair', i);
        local += addr[i + 1];
        i += 2;
        continue;
      }
      if (!QTEXT.test(ch)) syntax('character not allowed in a quoted string', i);
      local += ch;
      i += ch.length;
    }
    if (addr[i + 1] !== '@') syntax('"@" expected after the quoted local part', i + 1);
    const domain = addr.slice(i + 2);
    if (domain.includes('@')) syntax('"@" in the domain', i + 2 + domain.indexOf('@'));
    return { local, quoted: true, domain };
  }
  const at = addr.indexOf('@');
  if (at < 0) throw new NmtpError('NMTP_ERR_ADDR_MISSING_AT', 'no "@" in the legacy address');
  const local = addr.slice(0, at);
  if (!DOT_ATOM.test(local)) syntax('the local part is neither a dot-atom nor quoted', 0);
  const domain = addr.slice(at + 1);
  if (domain.includes('@')) syntax('"@" in the domain', at + 1 + domain.indexOf('@'));
  return { local, quoted: false, domain };
}

/**
 * Maps a legacy addr-spec (no angle brackets, no comments) to an NMTP address.
 * Errors: NMTP_ERR_ADDR_EMPTY, _TOO_LONG, _MISSING_AT, _LEGACY_SYNTAX (not an addr-spec),
 * _LEGACY_UNMAPPABLE (valid legacy local part NMTP cannot represent exactly),
 * _DOMAIN_LITERAL and the other _DOMAIN_* codes.
 */
export function fromLegacyAddress(addr: string, options: FromLegacyOptions = {}): Address {
  if (addr.length === 0) throw new NmtpError('NMTP_ERR_ADDR_EMPTY', 'the address is empty');
  if (addr.length > 2048) throw new NmtpError('NMTP_ERR_ADDR_TOO_LONG', 'legacy address too long');
  // "Without SMTPUTF8 a legacy address is ASCII" (RFC 5321 §4.1.2; §20.9.1).
  if (options.smtputf8 === false && /[^\p{ASCII}]/u.test(addr)) {
    syntax('non-ASCII address without SMTPUTF8');
  }
  const { local, quoted, domain } = splitLegacy(addr);
  // "A domain literal cannot be mapped" (§20.9.1): NMTP has no address literals.
  if (domain.startsWith('[')) {
    throw new NmtpError('NMTP_ERR_ADDR_DOMAIN_LITERAL', 'legacy domain literal');
  }
  if (domain.length === 0) syntax('empty domain');
  // "The local part MUST map unchanged: if NMTP preparation (width mapping, NFC) would
  // alter it, or it contains a code point NMTP prohibits, the address is unmappable."
  // (§20.9.1) Quoted legacy local parts may hold space, "@", '"', "\": all refused here.
  const unchanged = prepareLocalPart(local) === local;
  let result: Address;
  try {
    if (!unchanged) throw new NmtpError('NMTP_ERR_ADDR_NOT_CANONICAL', 'preparation alters it');
    // The remaining checks are exactly NMTP's: build the NMTP text and parse it.
    result = parseAddress(`${local}@${domain}`);
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    if (e.code.startsWith('NMTP_ERR_ADDR_DOMAIN_')) throw e;
    throw new NmtpError(
      'NMTP_ERR_ADDR_LEGACY_UNMAPPABLE',
      `${quoted ? 'quoted ' : ''}local part ${JSON.stringify(local)} cannot be an NMTP local part`,
      { reason: e.code },
      e,
    );
  }
  return result;
}

/**
 * Renders an NMTP address for legacy mail: A-label domain always; the local part
 * unquoted when it is a dot-atom, else quoted. "A local part that is not ASCII requires
 * SMTPUTF8" (§20.9.2) → NMTP_ERR_ADDR_LEGACY_NEEDS_SMTPUTF8.
 */
export function toLegacyAddress(address: Address, options: ToLegacyOptions): string {
  const { local } = address;
  if (!options.smtputf8 && /[^\p{ASCII}]/u.test(local)) {
    throw new NmtpError(
      'NMTP_ERR_ADDR_LEGACY_NEEDS_SMTPUTF8',
      `local part ${JSON.stringify(local)} is not ASCII`,
    );
  }
  // NMTP allows "(" ")" ":" ";" "[" "]" and dots anywhere; RFC 5322 needs those quoted.
  // '"' and "\" never occur (NMTP prohibits them), so quoting never needs a quoted-pair.
  const rendered = DOT_ATOM.test(local) ? local : `"${local}"`;
  return `${rendered}@${address.domainAscii}`;
}

/** True when the code point is RFC 5322 atext (or UTF8-non-ascii). Exposed for tests. */
export function isLegacyAtext(ch: string): boolean {
  return ATEXT.test(ch);
}
