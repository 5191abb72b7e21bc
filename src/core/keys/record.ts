/**
 * DNS domain key records and revocation records. docs/protocol.md §40.2–§40.5.
 *
 *   name:   <selector>._nmtpkey.<domain>          TXT
 *   value:  v=NMTPKEY1; k=ed25519; p=<b64url 32>[; x=<unix>][; f=<flags>][; n=<note>]
 */
import { NmtpError } from '../errors/index.ts';
import { DOMAIN_RE, SELECTOR_RE, CERT_ID_RE, parseUnix, splitTags } from '../sign/field.ts';
import { fromBase64url, toBase64url } from '../sign/base64url.ts';
import { isAcceptablePublicKey } from '../sign/ed25519.ts';

export interface DomainKeyRecord {
  /** undefined = revoked ("An empty p= means the key is revoked"). */
  readonly publicKey: Uint8Array | undefined;
  /** Unix seconds after which the key is no longer valid. */
  readonly expiresAt?: number;
  /** Flag letters; `u` = may certify user keys. */
  readonly flags: string;
  readonly note?: string;
}

/** What a DNS TXT lookup gave. DNS itself lives outside core, behind this function. */
export type TxtAnswer =
  | { readonly status: 'ok'; readonly records: readonly (readonly string[])[] }
  | { readonly status: 'nxdomain' }
  | { readonly status: 'temperror'; readonly detail?: string };

/**
 * Injected TXT resolver: `name` is an ASCII DNS name. Each record is a list of
 * character-strings (as node:dns resolveTxt returns them); core concatenates them.
 */
export type TxtResolver = (name: string) => Promise<TxtAnswer> | TxtAnswer;

export function domainKeyName(selector: string, domain: string): string {
  if (!SELECTOR_RE.test(selector) || !DOMAIN_RE.test(domain)) {
    throw new NmtpError('NMTP_ERR_KEY_RECORD_SYNTAX', 'bad selector or domain');
  }
  return `${selector}._nmtpkey.${domain}`;
}

export function revocationName(certId: string, domain: string): string {
  if (!CERT_ID_RE.test(certId) || !DOMAIN_RE.test(domain)) {
    throw new NmtpError('NMTP_ERR_CERT_MALFORMED', 'bad certificate id or domain');
  }
  return `${certId}._nmtprevoked.${domain}`;
}

const FLAGS_RE = /^[a-z]*$/;
const KNOWN_FLAGS = 'u';
/** Notes: printable ASCII without ";" (so the tag list stays splittable). */
const NOTE_RE = /^[\x20-\x3a\x3c-\x7e]*$/;

function syntax(why: string): NmtpError {
  return new NmtpError('NMTP_ERR_KEY_RECORD_SYNTAX', why);
}

/**
 * Parses one TXT record (its character-strings already concatenated with nothing between
 * them: "a record longer than 255 octets is split into several character-strings, which
 * verifiers concatenate without separator", §40.2).
 */
export function parseDomainKeyRecord(txt: string): DomainKeyRecord {
  const tags = splitTags(txt, syntax);
  const order = ['v', 'k', 'p', 'x', 'f', 'n'];
  // "Tags MUST appear in the order v, k, p, x, f, n; v, k and p are required" (§40.2).
  let at = 0;
  for (const [tag] of tags) {
    const idx = order.indexOf(tag);
    if (idx < at) throw syntax(`tag ${tag}= is unknown, repeated or out of order`);
    at = idx + 1;
  }
  const get = (t: string): string | undefined => tags.find(([n]) => n === t)?.[1];
  if (get('v') !== 'NMTPKEY1' || tags[0]?.[0] !== 'v') throw syntax('must begin v=NMTPKEY1');
  if (get('k') !== 'ed25519') throw syntax('k= must be ed25519');
  const p = get('p');
  if (p === undefined) throw syntax('p= is required');
  let publicKey: Uint8Array | undefined;
  if (p !== '') {
    publicKey = fromBase64url(p, 32);
    if (publicKey === undefined) throw syntax('p= must be base64url of 32 octets');
    if (!isAcceptablePublicKey(publicKey)) throw new NmtpError('NMTP_ERR_KEY_WEAK');
  }
  const x = get('x');
  const flags = get('f') ?? '';
  if (!FLAGS_RE.test(flags) || [...flags].some((c) => !KNOWN_FLAGS.includes(c))) {
    throw syntax('f= holds unknown flags');
  }
  if (new Set(flags).size !== flags.length) throw syntax('f= repeats a flag');
  const note = get('n');
  if (note !== undefined && !NOTE_RE.test(note)) throw syntax('n= must be printable ASCII');
  return {
    publicKey,
    flags,
    ...(x === undefined ? {} : { expiresAt: parseUnix(x, 'x', () => syntax('bad x=')) }),
    ...(note === undefined ? {} : { note }),
  };
}

export function printDomainKeyRecord(r: DomainKeyRecord): string {
  const parts = ['v=NMTPKEY1', 'k=ed25519', `p=${r.publicKey ? toBase64url(r.publicKey) : ''}`];
  if (r.expiresAt !== undefined) parts.push(`x=${r.expiresAt}`);
  if (r.flags !== '') parts.push(`f=${r.flags}`);
  if (r.note !== undefined) parts.push(`n=${r.note}`);
  const text = parts.join('; ');
  parseDomainKeyRecord(text); // never print what we would refuse to read
  return text;
}

/** Splits a record into ≤255-octet character-strings for a zone file. */
export function splitTxt(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 255) out.push(text.slice(i, i + 255));
  return out.length === 0 ? [''] : out;
}

/**
 * A resolver that throws or rejects is treated as a temporary DNS failure: the verdict on a
 * message must never depend on an exception escaping from the DNS layer.
 */
async function safeResolve(resolve: TxtResolver, name: string): Promise<TxtAnswer> {
  try {
    return await resolve(name);
  } catch (e) {
    return {
      status: 'temperror',
      detail: `${name}: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

export type KeyLookup =
  | { readonly status: 'found'; readonly record: DomainKeyRecord }
  | { readonly status: 'error'; readonly error: NmtpError };

/**
 * Looks up and parses the domain key. Records not starting "v=NMTPKEY1" are ignored (other
 * uses of the name); "more than one NMTPKEY1 record at a name is an error" (§40.2).
 */
export async function lookupDomainKey(
  resolve: TxtResolver,
  domain: string,
  selector: string,
): Promise<KeyLookup> {
  let name: string;
  try {
    name = domainKeyName(selector, domain);
  } catch (e) {
    return { status: 'error', error: e as NmtpError };
  }
  const answer = await safeResolve(resolve, name);
  if (answer.status === 'temperror') {
    return {
      status: 'error',
      error: new NmtpError('NMTP_ERR_KEY_LOOKUP_FAILED', answer.detail ?? name),
    };
  }
  const ours =
    answer.status === 'ok'
      ? answer.records.map((strings) => strings.join('')).filter((t) => /^v=NMTPKEY1(;|$)/.test(t))
      : [];
  if (ours.length === 0) {
    return { status: 'error', error: new NmtpError('NMTP_ERR_KEY_NOT_FOUND', name) };
  }
  if (ours.length > 1) {
    return { status: 'error', error: new NmtpError('NMTP_ERR_KEY_AMBIGUOUS', name) };
  }
  try {
    return { status: 'found', record: parseDomainKeyRecord(ours[0]!) };
  } catch (e) {
    return { status: 'error', error: e as NmtpError };
  }
}

/**
 * "A certificate is revoked iff any TXT record exists at <id>._nmtprevoked.<domain>"
 * (§40.6). Returns true / false, or the temporary error.
 */
export async function isCertificateRevoked(
  resolve: TxtResolver,
  certId: string,
  domain: string,
): Promise<boolean | NmtpError> {
  const answer = await safeResolve(resolve, revocationName(certId, domain));
  if (answer.status === 'temperror') {
    return new NmtpError('NMTP_ERR_KEY_LOOKUP_FAILED', answer.detail ?? 'revocation lookup');
  }
  return answer.status === 'ok' && answer.records.length > 0;
}
