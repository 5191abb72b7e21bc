/**
 * Legacy authentication that survives conversion (docs/protocol.md §51.12): a converted
 * message toward the legacy internet is DKIM-signed (RFC 6376) with the gateway domain's key
 * and ARC-sealed (RFC 8617) with an ARC-Authentication-Results field carrying the NMTP
 * verdicts, so that a DMARC-checking receiver can rely on the gateway's word.
 *
 * The keys are loaded and checked once (createLegacySigner); signing a message never reads
 * a file and fails only for a reason worth a retry (NMTP_ERR_LEGACY_SIGN_FAILED).
 */
import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { resolve as dnsResolve } from 'node:dns/promises';
import { arc as arcValidate, dkimSign, dkimVerify, sealMessage } from 'mailauth';
import { NmtpError } from '../../src/core/errors/index.ts';

export type LegacySignAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** TXT lookup as mailauth calls it: one array of strings per record. */
export type TxtResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;

export interface LegacySignerConfig {
  /** The signing domain (`d=`), A-label: the gateway's own domain or the From domain's. */
  readonly domain: string;
  /** The selector (`s=`): the public key is at `<selector>._domainkey.<domain>`. */
  readonly selector: string;
  /** PKCS#8 or PKCS#1 PEM, unencrypted: RSA (≥ 1024 bits, 2048 advised) or Ed25519. */
  readonly privateKeyPem: string;
  /** Default: from the key type. A mismatch with the key is a start-up error. */
  readonly algorithm?: LegacySignAlgorithm;
  /** The gateway's authserv-id (RFC 8601 §2.2), written in ARC-Authentication-Results. */
  readonly authservId: string;
  /** Add an ARC set (RFC 8617) after the DKIM signature. */
  readonly arc: boolean;
  /**
   * The ARC key when the DKIM key is Ed25519: RFC 8617 sets are RSA in practice (and
   * mailauth seals with rsa-sha256 only). Default: the DKIM selector and key.
   */
  readonly arcKey?: { readonly selector: string; readonly privateKeyPem: string };
  /**
   * TXT lookups, only used to validate an ARC chain the message already carries (its
   * `cv=`); default node:dns. A message without ARC fields causes no lookup.
   */
  readonly resolver?: TxtResolver;
  /** The signing time (`t=`); default the clock. */
  readonly now?: () => Date;
}

export interface LegacySignInput {
  /**
   * The NMTP verdicts as the converter writes them in Authentication-Results
   * (adapters/legacy/trace.ts), with or without the leading `authserv-id;`, e.g.
   * `nmtp=pass header.d=example.org`.
   */
  readonly authResults: string;
}

/** Signs (and seals) one converted message; resolves to the message with the new fields on top. */
export type LegacySigner = (message: Uint8Array, input: LegacySignInput) => Promise<Uint8Array>;

/**
 * The fields signed by DKIM (and by the ARC-Message-Signature, with DKIM-Signature first).
 * RFC 6376 §5.4.1: From MUST be signed; the others are the ones a reader sees or that
 * decide how the body is read.
 */
export const SIGNED_FIELDS: readonly string[] = [
  'From',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Reply-To',
  'In-Reply-To',
  'References',
];

// RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ); d= is a domain name (A-label).
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
// RFC 8601 §2.2 authserv-id as a value token (the same rule as adapters/legacy/trace.ts).
const TOKENISH = /^[A-Za-z0-9.@+_-]+$/;
// RFC 8601 resinfo text: printable ASCII or UTF-8 (RFC 6532), never a control (a CR or LF
// would start a new header field).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

// RFC 8617 §4.2.1 caps a chain at 50 ARC sets (instances 1 to 50).
const MAX_ARC_SETS = 50;

interface CheckedKey {
  readonly pem: string;
  readonly algorithm: LegacySignAlgorithm;
}

function keyError(what: string, cause?: unknown): NmtpError {
  return new NmtpError('NMTP_ERR_LEGACY_DKIM_KEY', what, {}, cause);
}

/** Parses and test-signs a key once, so a bad one stops the gateway at start-up. */
function checkKey(pem: string, wanted: LegacySignAlgorithm | undefined, what: string): CheckedKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw keyError(`${what}: not an unencrypted PEM private key`, err);
  }
  const type = key.asymmetricKeyType;
  let algorithm: LegacySignAlgorithm;
  if (type === 'rsa') {
    // RFC 8301 §3.2: "Signers MUST use RSA keys of at least 1024 bits".
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 1024) throw keyError(`${what}: RSA key of ${bits} bits (at least 1024)`);
    algorithm = 'rsa-sha256';
  } else if (type === 'ed25519') {
    algorithm = 'ed25519-sha256';
  } else {
    throw keyError(`${what}: key type ${String(type)} (rsa or ed25519 expected)`);
  }
  if (wanted !== undefined && wanted !== algorithm) {
    throw keyError(`${what}: algorithm ${wanted} does not match the ${type} key`);
  }
  try {
    cryptoSign(type === 'rsa' ? 'sha256' : null, Buffer.from('nmtp-gateway key check'), key);
  } catch (err) {
    throw keyError(`${what}: the key cannot sign`, err);
  }
  // Normalised to PKCS#8 so that mailauth reads every accepted form the same way.
  return { pem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm };
}

function checkName(value: string, what: string): void {
  if (!DOMAIN.test(value) || value.length > 253) {
    throw keyError(`${what} ${JSON.stringify(value)} is not an A-label domain name`);
  }
}

/** The header section (up to the first empty line), latin1 so that offsets are octets. */
function headerSection(message: Uint8Array): string {
  const b = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const end = b.indexOf('\r\n\r\n');
  return b.toString('latin1', 0, end < 0 ? b.length : end + 2);
}

const HAS_ARC_SEAL = /(?:^|\r\n)ARC-Seal[ \t]*:/i;

type ChainVerdict =
  | { readonly seal: false; readonly why: string }
  | { readonly seal: true; readonly cv: 'none' | 'pass' | 'fail'; readonly instance: number };

/**
 * RFC 8617 §5.1 (sealer actions): a chain whose most recent ARC-Seal reports cv=fail is not
 * extended; otherwise the new set's cv is the result of validating the chain as received.
 */
async function chainVerdict(message: Uint8Array, resolver: TxtResolver): Promise<ChainVerdict> {
  if (!HAS_ARC_SEAL.test(headerSection(message))) return { seal: true, cv: 'none', instance: 1 };
  // mailauth reports a failed key lookup as a failed chain; a DNS timeout must not become a
  // permanent cv=fail, so lookups that failed for a temporary reason are noted.
  let transient = false;
  const tracking: TxtResolver = async (name, rr) => {
    try {
      return await resolver(name, rr);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') transient = true;
      throw err;
    }
  };
  let verified: Awaited<ReturnType<typeof dkimVerify>>;
  try {
    verified = await dkimVerify(Buffer.from(message), { resolver: tracking });
  } catch (err) {
    throw new NmtpError('NMTP_ERR_LEGACY_SIGN_FAILED', 'reading the ARC chain failed', {}, err);
  }
  const data = verified.arc;
  if (data === undefined || data.error !== undefined || data.chain === false) {
    // A chain whose sets cannot even be numbered cannot be extended.
    return { seal: false, why: `malformed ARC chain (${data?.error?.message ?? 'unreadable'})` };
  }
  const last = data.lastEntry;
  const lastCv = (last?.['arc-seal'] as { parsed?: { cv?: { value?: string } } } | undefined)
    ?.parsed?.cv?.value;
  if (last === undefined || lastCv?.toLowerCase() === 'fail') {
    return { seal: false, why: 'the ARC chain already failed (cv=fail)' };
  }
  if (last.i >= MAX_ARC_SETS) return { seal: false, why: `${MAX_ARC_SETS} ARC sets already` };
  const result = await arcValidate({ chain: data.chain, lastEntry: last }, { resolver: tracking });
  const r = result.status.result;
  if (transient || r === 'temperror' || r === 'temperr') {
    throw new NmtpError('NMTP_ERR_LEGACY_SIGN_FAILED', 'the ARC chain could not be checked now');
  }
  return { seal: true, cv: r === 'pass' ? 'pass' : 'fail', instance: last.i + 1 };
}

function signFailed(what: string, errors: readonly unknown[]): NmtpError {
  const first = errors[0] as { err?: unknown } | undefined;
  const cause = first?.err ?? first;
  const text = cause instanceof Error ? cause.message : String(cause);
  return new NmtpError('NMTP_ERR_LEGACY_SIGN_FAILED', `${what}: ${text}`, {}, cause);
}

/**
 * Checks the configuration and keys once (throws NMTP_ERR_LEGACY_DKIM_KEY) and returns the
 * function that signs each converted message.
 */
export function createLegacySigner(config: LegacySignerConfig): LegacySigner {
  checkName(config.domain, 'domain');
  checkName(config.selector, 'selector');
  if (!TOKENISH.test(config.authservId)) {
    throw keyError(`authservId ${JSON.stringify(config.authservId)} is not a token`);
  }
  const dkimKey = checkKey(config.privateKeyPem, config.algorithm, 'DKIM key');
  let arcKey: (CheckedKey & { selector: string }) | undefined;
  if (config.arc) {
    const selector = config.arcKey?.selector ?? config.selector;
    checkName(selector, 'ARC selector');
    const checked =
      config.arcKey === undefined
        ? dkimKey
        : checkKey(config.arcKey.privateKeyPem, 'rsa-sha256', 'ARC key');
    if (checked.algorithm !== 'rsa-sha256') {
      throw keyError('ARC needs an RSA key (arcKey) when the DKIM key is Ed25519');
    }
    arcKey = { ...checked, selector };
  }
  const resolver: TxtResolver = config.resolver ?? ((name, rr) => dnsResolve(name, rr as 'TXT'));
  const now = config.now ?? ((): Date => new Date());
  const headerList = SIGNED_FIELDS.join(':');

  return async (message, input) => {
    const verdicts = resultsText(input.authResults, config.authservId);
    // Whole seconds: mailauth truncates t= in one header and rounds it in another.
    const signTime = new Date(Math.floor(now().getTime() / 1000) * 1000);
    const source = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    let signed: Buffer;
    try {
      const key = {
        signingDomain: config.domain,
        selector: config.selector,
        privateKey: dkimKey.pem,
        algorithm: dkimKey.algorithm,
        canonicalization: 'relaxed/relaxed',
      };
      // mailauth signs only what signatureData lists (the top-level key fields are there for
      // the types), and reads headerList as a colon-separated string (an array falls back
      // to its defaults).
      const r = await dkimSign(source, {
        ...key,
        signatureData: [key],
        headerList: headerList as unknown as string[],
        signTime,
      });
      if (r.errors.length > 0) throw signFailed('DKIM signing failed', r.errors);
      if (!/^DKIM-Signature:/i.test(r.signatures)) {
        throw signFailed('DKIM signing failed', [new Error('mailauth produced no signature')]);
      }
      signed = Buffer.concat([Buffer.from(r.signatures), source]);
    } catch (err) {
      if (err instanceof NmtpError) throw err;
      throw signFailed('DKIM signing failed', [err]);
    }
    if (arcKey === undefined) return signed;

    // The chain is read from the message as received: our new DKIM signature is not part
    // of it (and checking it would cost a lookup of our own key).
    const chain = await chainVerdict(source, resolver);
    if (!chain.seal) return signed;
    // RFC 8617 registers the "arc" Authentication-Results method (IANA section): a set
    // added to a chain records how that chain validated, next to this ADMD's verdicts.
    const aar =
      chain.instance === 1
        ? `${config.authservId}; ${verdicts}`
        : `${config.authservId}; ${verdicts}; arc=${chain.cv}`;
    try {
      const sealOptions: SealOptions = {
        signingDomain: config.domain,
        selector: arcKey.selector,
        privateKey: arcKey.pem,
        algorithm: 'rsa-sha256',
        headerList: `DKIM-Signature:${headerList}`,
        signTime,
        cv: chain.cv,
        authResults: aar,
      };
      const headers = await sealMessage(signed, sealOptions as unknown as SealArg);
      if (headers.length === 0) throw new Error('mailauth produced no ARC set');
      return Buffer.concat([headers, signed]);
    } catch (err) {
      if (err instanceof NmtpError) throw err;
      throw signFailed('ARC sealing failed', [err]);
    }
  };
}

type SealArg = Parameters<typeof sealMessage>[1];
interface SealOptions {
  readonly signingDomain: string;
  readonly selector: string;
  readonly privateKey: string;
  readonly algorithm: 'rsa-sha256';
  readonly headerList: string;
  readonly signTime: Date;
  readonly cv: 'none' | 'pass' | 'fail';
  readonly authResults: string;
}

/**
 * The verdict text of an Authentication-Results value: the part after `authserv-id;` when
 * the caller passed the whole value. It must stay one header line's worth of text.
 */
function resultsText(authResults: string, authservId: string): string {
  let text = authResults.trim();
  const prefix = `${authservId};`;
  if (text.toLowerCase().startsWith(prefix.toLowerCase())) text = text.slice(prefix.length).trim();
  if (text === '') text = 'none';
  if (CONTROL.test(text)) {
    // A programming error of the caller, but a CR or LF here would write a second header
    // field: refused rather than cleaned.
    throw new NmtpError('NMTP_ERR_LEGACY_SIGN_FAILED', 'authResults holds a control character');
  }
  return text;
}

/** One-shot form: checks the configuration (as createLegacySigner) and signs one message. */
export function signLegacy(
  message: Uint8Array,
  options: LegacySignerConfig & LegacySignInput,
): Promise<Uint8Array> {
  return createLegacySigner(options)(message, options);
}
