/**
 * NMTP domains: IDNA via UTS #46 (tr46@6.0.0, Unicode 17.0 mapping table) in its strict,
 * IDNA2008-compatible configuration. Spec: docs/protocol.md §20.5.
 */
import * as tr46 from 'tr46';
import { NmtpError } from '../errors/index.ts';

/**
 * "Domains are processed with UTS #46 ToASCII with CheckHyphens, CheckBidi,
 * CheckJoiners, UseSTD3ASCIIRules and VerifyDnsLength true and Transitional_Processing
 * false." (§20.5.1) Nontransitional: "faß.de" stays "faß.de" (xn--fa-hia.de), as IDNA2008.
 */
const UTS46_STRICT = {
  checkHyphens: true,
  checkBidi: true,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  transitionalProcessing: false,
  ignoreInvalidPunycode: false,
  // VerifyDnsLength is done below rather than by tr46, to report empty labels
  // (DOMAIN_INVALID) and over-long names (DOMAIN_TOO_LONG) with distinct codes.
} as const;

export const DOMAIN_MAX_OCTETS = 253;
export const LABEL_MAX_OCTETS = 63;
/** Work bound before IDNA processing: no valid domain needs more input than this. */
export const DOMAIN_MAX_INPUT = 1024;

export interface ProcessedDomain {
  /** U-label form: lowercase, NFC, what people read. */
  readonly unicode: string;
  /** A-label form: ASCII, lowercase, what DNS, signatures and comparison use. */
  readonly ascii: string;
}

type DomainCode =
  | 'NMTP_ERR_ADDR_DOMAIN_INVALID'
  | 'NMTP_ERR_ADDR_DOMAIN_LITERAL'
  | 'NMTP_ERR_ADDR_DOMAIN_TRAILING_DOT'
  | 'NMTP_ERR_ADDR_DOMAIN_TOO_LONG'
  | 'NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL'
  | 'NMTP_ERR_ADDR_DOMAIN_NUMERIC_TLD';

function fail(code: DomainCode, message: string): never {
  throw new NmtpError(code, message);
}

/**
 * Bounded memo of processDomain's results. A message names the same few domains many times
 * over (conversion, the encoder's checks, signing, the transfer client, the receiver) and a
 * gateway sees the same correspondents again and again, while UTS #46 processing is among
 * its costliest steps. Pure function, so a hit is exactly what a call would give. Cleared
 * when full: crude, but bounded, and it refills at once with what is in use.
 * Refusals are not kept: each throw then carries its own stack, no error object is shared
 * between callers, and a flood of refused input does not push out the domains in use
 * (refusing is no costlier than before).
 */
const DOMAIN_CACHE_MAX = 4096;
const domainCache = new Map<string, ProcessedDomain>();

/** Validates and converts a domain (U-labels, A-labels or a mix, any case). */
export function processDomain(raw: string): ProcessedDomain {
  const hit = domainCache.get(raw);
  if (hit !== undefined) return hit;
  const result = Object.freeze(processDomainUncached(raw));
  if (domainCache.size >= DOMAIN_CACHE_MAX) domainCache.clear();
  domainCache.set(raw, result);
  return result;
}

function processDomainUncached(raw: string): ProcessedDomain {
  if (raw.length === 0) fail('NMTP_ERR_ADDR_DOMAIN_INVALID', 'the domain is empty');
  if (raw.length > DOMAIN_MAX_INPUT) fail('NMTP_ERR_ADDR_DOMAIN_TOO_LONG', 'domain input too long');
  // "Address literals ("[" ... "]") MUST be rejected." (§20.5.3) — NMTP finds peers by
  // domain name (keys live in DNS); a bare IP has no key and no homograph verdict.
  if (raw.startsWith('[')) fail('NMTP_ERR_ADDR_DOMAIN_LITERAL', 'address literals are refused');
  // "A domain MUST NOT end with a dot" (§20.5.3). UTS #46 maps the ideographic and
  // fullwidth full stops (U+3002, U+FF0E, U+FF61) to "." too, so they count.
  if (/[.\u3002\uff0e\uff61]$/u.test(raw)) {
    fail('NMTP_ERR_ADDR_DOMAIN_TRAILING_DOT', 'the domain ends with a dot');
  }
  const ascii = tr46.toASCII(raw, UTS46_STRICT);
  if (ascii === null) fail('NMTP_ERR_ADDR_DOMAIN_INVALID', 'UTS #46 processing failed');
  const labels = ascii.split('.');
  if (labels.some((l) => l.length === 0)) fail('NMTP_ERR_ADDR_DOMAIN_INVALID', 'empty label');
  // "at most 253 octets in A-label form, each label at most 63" (§20.5.2)
  if (ascii.length > DOMAIN_MAX_OCTETS || labels.some((l) => l.length > LABEL_MAX_OCTETS)) {
    fail('NMTP_ERR_ADDR_DOMAIN_TOO_LONG', `domain of ${ascii.length} octets in A-label form`);
  }
  // "A domain MUST have at least two labels" (§20.5.3): NMTP is between organisations.
  if (labels.length < 2) fail('NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL', 'single-label domain');
  // "the last label MUST NOT consist of digits only" (§20.5.3, as RFC 3696 §2): keeps
  // dotted-quad IPv4 addresses out.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    fail('NMTP_ERR_ADDR_DOMAIN_NUMERIC_TLD', 'the last label is numeric');
  }
  const unicode = tr46.toUnicode(ascii, UTS46_STRICT);
  // Cannot fail once toASCII succeeded with the same flags; checked to stay honest.
  if (unicode.error) fail('NMTP_ERR_ADDR_DOMAIN_INVALID', 'UTS #46 ToUnicode failed');
  return { unicode: unicode.domain, ascii };
}
