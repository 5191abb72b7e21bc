/**
 * NMTP addresses: `local@domain`, no quoting, no escaping, no comments.
 * Spec: docs/protocol.md section 20. Pure: strings in, values out.
 */
import { NmtpError } from '../errors/index.ts';
import { enforceLocalPart, LOCAL_MAX_OCTETS } from './local-part.ts';
import { processDomain, DOMAIN_MAX_INPUT } from './domain.ts';
import { addressVerdict, domainVerdict, homographVerdict } from './homograph.ts';
import type { AddressVerdict } from './homograph.ts';

export interface Address {
  /** Local part, PRECIS-prepared: width-mapped, NFC, case preserved. */
  readonly local: string;
  /** Domain in U-label form (lowercase, NFC): for people. */
  readonly domain: string;
  /** Domain in A-label form (ASCII, lowercase): for DNS, signatures and comparison. */
  readonly domainAscii: string;
  /**
   * `local + "@" + domainAscii`: the one form used to compare, hash (recipient hashes of
   * signatures) and sign. Compared octet for octet: local parts are case-sensitive.
   */
  readonly canonical: string;
  /** `local + "@" + domain`: the form to show people. */
  readonly display: string;
  /** The homograph verdict and the policy's action (§20.7). */
  readonly homograph: AddressVerdict;
}

export interface ParseOptions {
  /**
   * 'input' (default): text a person typed or a caller built; it is prepared (width
   * mapping, NFC, domain case folding and IDNA mapping) before validation.
   * 'wire': the address came in an NMTP message or command, which "MUST carry it as
   * `local@domainAscii` or `local@domain` of its parsed form, exactly" (§20.6.2); anything
   * that preparation would change is refused with NMTP_ERR_ADDR_NOT_CANONICAL.
   */
  readonly mode?: 'input' | 'wire';
}

export type ParseResult =
  | { readonly ok: true; readonly address: Address }
  | { readonly ok: false; readonly error: NmtpError };

/** No valid address is longer than this many UTF-16 code units (work bound, §20.6.3). */
export const ADDRESS_MAX_INPUT = LOCAL_MAX_OCTETS * 2 + 1 + DOMAIN_MAX_INPUT;

/**
 * Bounded memo of parseAddress's results, for the same reason as processDomain's (the same
 * addresses are parsed at every step of a message's way, and by every message of a
 * correspondence), and under the same rules: pure, cleared when full, refusals not kept.
 * Results are deep-frozen, since every caller of the same address shares one.
 */
const ADDRESS_CACHE_MAX = 4096;
const addressCache = new Map<string, Address>();

/** Parses an NMTP address; throws NmtpError (NMTP_ERR_ADDR_*) when it is not valid. */
export function parseAddress(input: string, options: ParseOptions = {}): Address {
  // One letter of mode, then the input: distinct inputs or modes give distinct keys.
  const key = (options.mode === 'wire' ? 'w' : 'i') + input;
  const hit = addressCache.get(key);
  if (hit !== undefined) return hit;
  const result = deepFreeze(parseAddressUncached(input, options));
  if (addressCache.size >= ADDRESS_CACHE_MAX) addressCache.clear();
  addressCache.set(key, result);
  return result;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function parseAddressUncached(input: string, options: ParseOptions): Address {
  if (input.length === 0) throw new NmtpError('NMTP_ERR_ADDR_EMPTY', 'the address is empty');
  // Bound all further work by the input size, before normalising anything (§20.6.3).
  if (input.length > ADDRESS_MAX_INPUT) {
    throw new NmtpError('NMTP_ERR_ADDR_TOO_LONG', `address of ${input.length} code units`);
  }
  // "The local part is everything before the last "@"" (§20.3): the local part may not
  // contain "@", so splitting at the last one reports "a@b@c" as a bad local part.
  const at = input.lastIndexOf('@');
  if (at < 0) throw new NmtpError('NMTP_ERR_ADDR_MISSING_AT', 'no "@" in the address');
  const local = enforceLocalPart(input.slice(0, at));
  const { unicode, ascii } = processDomain(input.slice(at + 1));
  const canonical = `${local}@${ascii}`;
  const display = `${local}@${unicode}`;
  if (options.mode === 'wire' && input !== canonical && input !== display) {
    throw new NmtpError(
      'NMTP_ERR_ADDR_NOT_CANONICAL',
      // One form when the domain is ASCII (canonical and display are then the same).
      canonical === display
        ? `expected ${JSON.stringify(canonical)}`
        : `expected ${JSON.stringify(canonical)} or ${JSON.stringify(display)}`,
    );
  }
  const homograph = addressVerdict(homographVerdict(local), domainVerdict(unicode));
  return { local, domain: unicode, domainAscii: ascii, canonical, display, homograph };
}

/** Like parseAddress, but returns the error instead of throwing it. */
export function tryParseAddress(input: string, options: ParseOptions = {}): ParseResult {
  try {
    return { ok: true, address: parseAddress(input, options) };
  } catch (e) {
    // Only our own coded errors are results; anything else is a bug and propagates.
    if (e instanceof NmtpError) return { ok: false, error: e };
    throw e;
  }
}

/** "Two addresses are the same iff their canonical forms are equal octet for octet." (§20.6.1) */
export function sameAddress(a: Address, b: Address): boolean {
  return a.canonical === b.canonical;
}

/**
 * Throws NMTP_ERR_ADDR_HOMOGRAPH_REFUSED when the policy refuses the address (§20.7.3);
 * returns it otherwise. Callers that want the verdict without enforcing it read
 * `address.homograph`.
 */
export function enforceHomographPolicy(address: Address): Address {
  if (address.homograph.action === 'refuse') {
    throw new NmtpError(
      'NMTP_ERR_ADDR_HOMOGRAPH_REFUSED',
      `${address.display}: ${address.homograph.reasons.join(', ')}`,
      { reasons: address.homograph.reasons },
    );
  }
  return address;
}
