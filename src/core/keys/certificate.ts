/**
 * User certificates: a domain key vouches that a user key belongs to a user address of the
 * domain, for a time window. Carried as a `Certificate:` trace field beside the signature.
 * docs/protocol.md §40.6.
 *
 *   v=1; a=ed25519; d=<domain>; s=<selector>; id=<32 hex>; u=<user address>;
 *   k=<b64url user key>; nb=<unix>; na=<unix>; b=<b64url signature by the domain key>
 */
import { NmtpError } from '../errors/index.ts';
import { fromBase64url, toBase64url } from '../sign/base64url.ts';
import { ed25519, isAcceptablePublicKey, type SigningKey } from '../sign/ed25519.ts';
import {
  CERT_ID_RE,
  DOMAIN_RE,
  SELECTOR_RE,
  isCanonicalUser,
  parseUnix,
  splitTags,
} from '../sign/field.ts';
import { isCertificateRevoked, lookupDomainKey, type TxtResolver } from './record.ts';

export const CERT_CONTEXT = 'NMTP-CERT-1\n';

export interface CertificateFields {
  readonly domain: string;
  readonly selector: string;
  readonly id: string;
  readonly user: string;
  readonly userKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
}
export interface Certificate extends CertificateFields {
  readonly signature: Uint8Array;
  readonly value: string;
}

const ORDER = ['v', 'a', 'd', 's', 'id', 'u', 'k', 'nb', 'na', 'b'];

function bad(why: string): NmtpError {
  return new NmtpError('NMTP_ERR_CERT_MALFORMED', why);
}

function printUnsigned(c: CertificateFields): string {
  return [
    'v=1',
    'a=ed25519',
    `d=${c.domain}`,
    `s=${c.selector}`,
    `id=${c.id}`,
    `u=${c.user}`,
    `k=${toBase64url(c.userKey)}`,
    `nb=${c.notBefore}`,
    `na=${c.notAfter}`,
  ].join('; ');
}

export function parseCertificate(value: string): Certificate {
  const tags = splitTags(value, bad);
  if (tags.length !== ORDER.length || tags.some(([t], i) => t !== ORDER[i])) {
    throw bad(`tags must be exactly ${ORDER.join(',')} in order`);
  }
  const get = (t: string): string => tags.find(([n]) => n === t)![1];
  if (get('v') !== '1') throw bad('v= must be 1');
  if (get('a') !== 'ed25519') throw bad('a= must be ed25519');
  const domain = get('d');
  const selector = get('s');
  const id = get('id');
  const user = get('u');
  if (!DOMAIN_RE.test(domain)) throw bad('d= must be a lowercase A-label domain');
  if (!SELECTOR_RE.test(selector)) throw bad('s= must be one DNS label');
  // "id is 32 lowercase hex digits": DNS compares labels case-insensitively, so a
  // base64url id could not name its revocation record unambiguously.
  if (!CERT_ID_RE.test(id)) throw bad('id= must be 32 lowercase hex digits');
  if (!isCanonicalUser(user)) throw bad('u= must be a canonical address');
  const userKey = fromBase64url(get('k'), 32);
  if (userKey === undefined) throw bad('k= must be base64url of 32 octets');
  if (!isAcceptablePublicKey(userKey)) throw new NmtpError('NMTP_ERR_KEY_WEAK');
  const notBefore = parseUnix(get('nb'), 'nb', () => bad('bad nb='));
  const notAfter = parseUnix(get('na'), 'na', () => bad('bad na='));
  if (notAfter <= notBefore) throw bad('na= must be later than nb=');
  const signature = fromBase64url(get('b'), 64);
  if (signature === undefined) throw bad('b= must be base64url of 64 octets');
  return { domain, selector, id, user, userKey, notBefore, notAfter, signature, value };
}

/** "Signed input: "NMTP-CERT-1" LF, then the value up to, not including, "; b="" (§40.6). */
export function certificateSignedInput(value: string): Uint8Array {
  const cut = value.lastIndexOf('; b=');
  if (cut < 0) throw bad('no "; b="');
  return new TextEncoder().encode(CERT_CONTEXT + value.slice(0, cut));
}

/** Issues a certificate with the domain key (f=u must be published for it). */
export function issueCertificate(fields: CertificateFields, domainKey: SigningKey): string {
  const unsigned = printUnsigned(fields);
  const sig = ed25519.sign(domainKey, new TextEncoder().encode(CERT_CONTEXT + unsigned));
  const value = `${unsigned}; b=${toBase64url(sig)}`;
  checkUserInDomain(parseCertificate(value));
  return value;
}

function checkUserInDomain(c: CertificateFields): void {
  // "The domain part of u= MUST equal d=" (§40.6): a domain vouches only for its own users.
  if (c.user.slice(c.user.lastIndexOf('@') + 1) !== c.domain) {
    throw new NmtpError('NMTP_ERR_CERT_WRONG_DOMAIN', `${c.user} is not in ${c.domain}`);
  }
}

export type CertificateCheck =
  | { readonly ok: true; readonly certificate: Certificate }
  | { readonly ok: false; readonly error: NmtpError };

/**
 * Verifies a certificate at time `now` (unix seconds): syntax, user in domain, validity
 * window, domain key (found, unrevoked, unexpired, flag u), signature, revocation record.
 */
export async function verifyCertificate(
  value: string,
  ctx: { resolveTxt: TxtResolver; now: number },
): Promise<CertificateCheck> {
  let c: Certificate;
  try {
    c = parseCertificate(value);
    checkUserInDomain(c);
  } catch (e) {
    return { ok: false, error: e as NmtpError };
  }
  const fail = (
    code: ConstructorParameters<typeof NmtpError>[0],
    why?: string,
  ): CertificateCheck => ({
    ok: false,
    error: new NmtpError(code, why),
  });
  if (ctx.now < c.notBefore) return fail('NMTP_ERR_CERT_NOT_YET_VALID');
  if (ctx.now > c.notAfter) return fail('NMTP_ERR_CERT_EXPIRED');
  const key = await lookupDomainKey(ctx.resolveTxt, c.domain, c.selector);
  if (key.status === 'error') return { ok: false, error: key.error };
  if (key.record.publicKey === undefined) return fail('NMTP_ERR_KEY_REVOKED');
  if (key.record.expiresAt !== undefined && ctx.now > key.record.expiresAt) {
    return fail('NMTP_ERR_KEY_EXPIRED');
  }
  // "A domain key certifies user keys only if its record carries flag u" (§40.3).
  if (!key.record.flags.includes('u')) return fail('NMTP_ERR_CERT_NOT_AUTHORIZED');
  if (!ed25519.verify(key.record.publicKey, certificateSignedInput(value), c.signature)) {
    return fail('NMTP_ERR_CERT_BAD_SIGNATURE');
  }
  const revoked = await isCertificateRevoked(ctx.resolveTxt, c.id, c.domain);
  if (revoked instanceof NmtpError) return { ok: false, error: revoked };
  if (revoked) return fail('NMTP_ERR_CERT_REVOKED');
  return { ok: true, certificate: c };
}
