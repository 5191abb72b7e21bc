/**
 * The Signature trace-field value: strict parse and print, and the signed input.
 * docs/protocol.md §30.2–§30.4.
 *
 *   v=1; a=ed25519; d=<domain>; s=<selector>[; u=<user>; c=<cert id>]; t=<unix>; x=<unix>;
 *   h=<b64url 32>; r=<b64url salt 16>:<b64url hash 16>[,<b64url hash 16>]*; b=<b64url 64>
 */
import { NmtpError } from '../errors/index.ts';
import { tryParseAddress } from '../address/index.ts';
import { fromBase64url, toBase64url } from './base64url.ts';

export const SIG_CONTEXT = 'NMTP-SIG-1\n';
export const MAX_RECIPIENT_HASHES = 256;

export interface SignatureFields {
  readonly domain: string;
  readonly selector: string;
  /** User-key signatures only: the user's canonical address and certificate id. */
  readonly user?: string;
  readonly certId?: string;
  readonly signedAt: number;
  readonly expiresAt: number;
  readonly digest: Uint8Array;
  readonly salt: Uint8Array;
  readonly recipientHashes: readonly Uint8Array[];
}

export interface ParsedSignature extends SignatureFields {
  readonly signature: Uint8Array;
  /** The exact field-value prefix that is signed (without the context string). */
  readonly unsignedPart: string;
}

// Grammar pieces (ABNF in §30.2). Domains are A-labels, lower case; selectors are DNS labels.
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
export const DOMAIN_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})+$`);
export const SELECTOR_RE = new RegExp(`^${LABEL}$`);
/** "id: the certificate's serial, 16 random octets … in lower-case hex" (§40.6): a DNS label. */
export const CERT_ID_RE = /^[0-9a-f]{32}$/;
/** "0" / %x31-39 *12DIGIT, at most 2^40: no sign, no leading zeros. */
const UNIX_RE = /^(?:0|[1-9][0-9]{0,12})$/;
/** The shape of u=: no ";" (the tag separator), no space, an "@", an A-label domain. */
const USER_RE = /^[^\s;@]+@[a-z0-9.-]+$/u;

/**
 * u= holds "the user's address in canonical form" (§30.3, §40.6): the shape above, and
 * exactly what the address rules (§20.6.1) make of it, so that one user has one spelling.
 */
export function isCanonicalUser(user: string): boolean {
  if (!USER_RE.test(user)) return false;
  const parsed = tryParseAddress(user, { mode: 'wire' });
  return parsed.ok && parsed.address.canonical === user;
}

function malformed(why: string): NmtpError {
  return new NmtpError('NMTP_ERR_SIG_MALFORMED', why);
}

export function parseUnix(text: string, what: string, err: () => NmtpError): number {
  if (!UNIX_RE.test(text)) throw err();
  const n = Number(text);
  if (n > 2 ** 40) throw err();
  void what;
  return n;
}

/** The tags in their one permitted order; u and c appear together or not at all. */
const ORDER_PLAIN = ['v', 'a', 'd', 's', 't', 'x', 'h', 'r', 'b'] as const;
const ORDER_USER = ['v', 'a', 'd', 's', 'u', 'c', 't', 'x', 'h', 'r', 'b'] as const;

/**
 * Splits `tag=value; tag=value` exactly: the separator is "; " (one semicolon, one space),
 * tags are lowercase letters, values contain no ";". Returns [tag, value] pairs in order.
 */
export function splitTags(value: string, err: (why: string) => NmtpError): [string, string][] {
  const out: [string, string][] = [];
  for (const item of value.split('; ')) {
    const m = /^([a-z]+)=([^;]*)$/.exec(item);
    if (m === null) throw err(`bad tag-spec ${JSON.stringify(item.slice(0, 40))}`);
    out.push([m[1]!, m[2]!]);
  }
  return out;
}

export function parseSignatureField(value: string): ParsedSignature {
  // "Precedence: a value whose first tag is v= with another value than 1 is
  // NMTP_ERR_SIG_VERSION, whatever follows; then a value starting v=1 whose second tag is a=
  // with another value than ed25519 is NMTP_ERR_SIG_ALGORITHM, whatever follows; any other
  // deviation is NMTP_ERR_SIG_MALFORMED" (§30.2): a later version or algorithm may change
  // every other tag, and its code must still say which.
  // A tag here is as in every version: name "=" a value without ";" or SP, then "; " or
  // the end of the field.
  const version = /^v=([^;\s]+)(?:; |$)/u.exec(value)?.[1];
  if (version !== undefined && version !== '1') {
    throw new NmtpError('NMTP_ERR_SIG_VERSION', `v=${version.slice(0, 16)}`);
  }
  const algorithm = /^v=1; a=([^;\s]+)(?:; |$)/u.exec(value)?.[1];
  if (algorithm !== undefined && algorithm !== 'ed25519') {
    throw new NmtpError('NMTP_ERR_SIG_ALGORITHM', `a=${algorithm.slice(0, 16)}`);
  }
  const tags = splitTags(value, malformed);
  // "Tags MUST appear in this order, each exactly once" (§30.2).
  const order = tags.length === ORDER_USER.length ? ORDER_USER : ORDER_PLAIN;
  if (tags.length !== order.length || tags.some(([t], i) => t !== order[i])) {
    throw malformed(
      `tags must be exactly ${ORDER_PLAIN.join(',')} (or with u,c after s), in order`,
    );
  }
  const get = (tag: string): string => tags.find(([t]) => t === tag)![1];
  // What is left here is not a tag (an empty value, or one holding SP), so not a version or
  // an algorithm either: "any other deviation is NMTP_ERR_SIG_MALFORMED" (§30.2).
  if (get('v') !== '1') {
    throw malformed(`v= is not a tag: ${JSON.stringify(get('v').slice(0, 16))}`);
  }
  if (get('a') !== 'ed25519') {
    throw malformed(`a= is not a tag: ${JSON.stringify(get('a').slice(0, 16))}`);
  }
  const domain = get('d');
  if (!DOMAIN_RE.test(domain)) throw malformed('d= must be a lowercase A-label domain name');
  const selector = get('s');
  if (!SELECTOR_RE.test(selector)) throw malformed('s= must be one lowercase DNS label');
  let user: string | undefined;
  let certId: string | undefined;
  if (order === ORDER_USER) {
    user = get('u');
    certId = get('c');
    if (!isCanonicalUser(user)) throw malformed('u= must be a canonical address');
    if (!CERT_ID_RE.test(certId)) throw malformed('c= must be 32 lowercase hex digits');
  }
  const signedAt = parseUnix(get('t'), 't', () => malformed('t= is not a unix time'));
  const expiresAt = parseUnix(get('x'), 'x', () => malformed('x= is not a unix time'));
  // "`x` MUST be greater than `t`" (§30.2).
  if (expiresAt <= signedAt) throw malformed('x= must be later than t=');
  const digest = fromBase64url(get('h'), 32);
  if (digest === undefined) throw malformed('h= must be base64url of 32 octets');
  const r = /^([A-Za-z0-9_-]{22}):([A-Za-z0-9_,-]+)$/.exec(get('r'));
  if (r === null) throw malformed('r= must be <salt>:<hash>[,<hash>]*');
  const salt = fromBase64url(r[1]!, 16);
  if (salt === undefined) throw malformed('r= salt must be base64url of 16 octets');
  const hashTexts = r[2]!.split(',');
  if (hashTexts.length > MAX_RECIPIENT_HASHES) {
    throw new NmtpError('NMTP_ERR_SIG_TOO_MANY_RECIPIENTS', `${hashTexts.length} hashes`);
  }
  // "none twice: a hash listed twice is NMTP_ERR_SIG_MALFORMED" (§30.2).
  if (new Set(hashTexts).size !== hashTexts.length) throw malformed('r= lists a hash twice');
  const recipientHashes = hashTexts.map((t) => {
    const b = fromBase64url(t, 16);
    if (b === undefined) throw malformed('r= hashes must be base64url of 16 octets');
    return b;
  });
  const signature = fromBase64url(get('b'), 64);
  if (signature === undefined) throw malformed('b= must be base64url of 64 octets');
  // "the field value from its first octet up to, not including, the "; b=" that precedes the
  // signature" (§30.4).
  const unsignedPart = value.slice(0, value.lastIndexOf('; b='));
  const fields = { domain, selector, signedAt, expiresAt, digest, salt, recipientHashes };
  return user === undefined
    ? { ...fields, signature, unsignedPart }
    : { ...fields, user, certId: certId!, signature, unsignedPart };
}

/** Prints everything before "; b=" (the part that is signed). Validates as it goes. */
export function printUnsignedPart(f: SignatureFields): string {
  if (f.recipientHashes.length === 0) throw malformed('a signature lists at least one recipient');
  if (f.recipientHashes.length > MAX_RECIPIENT_HASHES) {
    throw new NmtpError('NMTP_ERR_SIG_TOO_MANY_RECIPIENTS');
  }
  const parts = [`v=1`, `a=ed25519`, `d=${f.domain}`, `s=${f.selector}`];
  if (f.user !== undefined || f.certId !== undefined) {
    parts.push(`u=${f.user ?? ''}`, `c=${f.certId ?? ''}`);
  }
  parts.push(
    `t=${f.signedAt}`,
    `x=${f.expiresAt}`,
    `h=${toBase64url(f.digest)}`,
    `r=${toBase64url(f.salt)}:${f.recipientHashes.map(toBase64url).join(',')}`,
  );
  const text = parts.join('; ');
  // Round-trip through the strict parser with a dummy b= so that we never emit what we
  // would refuse to read.
  parseSignatureField(`${text}; b=${toBase64url(new Uint8Array(64))}`);
  return text;
}

/**
 * The exact octets ed25519 signs: "NMTP-SIG-1" LF, then the field value up to, not
 * including, the "; b=" that precedes the signature (design.md, §30.4).
 */
export function signedInput(fieldValue: string): Uint8Array {
  const cut = fieldValue.lastIndexOf('; b=');
  if (cut < 0) throw malformed('no "; b=" in the field value');
  return new TextEncoder().encode(SIG_CONTEXT + fieldValue.slice(0, cut));
}
