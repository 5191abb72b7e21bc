/**
 * Signing and verifying Signature fields over a content digest.
 * docs/protocol.md §30.6–§30.7.
 *
 * This layer never sees the framed message: the lead's glue passes the content digest
 * (SHA-256 of the root part), the Signature and Certificate trace-field values, and the
 * recipient of this transfer (canonical address).
 */
import { createHash } from 'node:crypto';
import { NmtpError, type ErrorCode } from '../errors/index.ts';
import { ed25519 as defaultEd25519, type Ed25519, type SigningKey } from './ed25519.ts';
import {
  parseSignatureField,
  printUnsignedPart,
  SIG_CONTEXT,
  type ParsedSignature,
  type SignatureFields,
} from './field.ts';
import { toBase64url } from './base64url.ts';
import { lookupDomainKey, type TxtResolver } from '../keys/record.ts';
import { verifyCertificate } from '../keys/certificate.ts';

/**
 * "rcpt hash = first 16 octets of SHA-256(salt || UTF-8 canonical recipient address)"
 * (design.md): binds the signature to its recipients without naming them (Bcc stays private).
 */
export function recipientHash(salt: Uint8Array, recipient: string): Uint8Array {
  const h = createHash('sha256').update(salt).update(recipient, 'utf8').digest();
  return new Uint8Array(h.subarray(0, 16));
}

/**
 * What signContent needs: the Signature's own tags (salt: 16 fresh random octets from the
 * caller, core has no randomness), the canonical recipients of this transfer (at least one)
 * instead of their hashes, and the key.
 */
export interface SignContentInput extends Omit<SignatureFields, 'recipientHashes'> {
  readonly recipients: readonly string[];
  readonly key: SigningKey;
  readonly impl?: Ed25519;
}

/** Returns the complete Signature field value. */
export function signContent(input: SignContentInput): string {
  if (input.salt.length !== 16) throw new NmtpError('NMTP_ERR_KEY_LENGTH', 'salt is 16 octets');
  if (input.digest.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH', 'digest is 32 octets');
  const unique = [...new Set(input.recipients)];
  // Hashes are sorted by their octets so that their order reveals nothing about To/Cc/Bcc.
  const hashes = unique
    .map((r) => recipientHash(input.salt, r))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const unsigned = printUnsignedPart({
    domain: input.domain,
    selector: input.selector,
    ...(input.user === undefined ? {} : { user: input.user }),
    ...(input.certId === undefined ? {} : { certId: input.certId }),
    signedAt: input.signedAt,
    expiresAt: input.expiresAt,
    digest: input.digest,
    salt: input.salt,
    recipientHashes: hashes,
  });
  const impl = input.impl ?? defaultEd25519;
  const sig = impl.sign(input.key, new TextEncoder().encode(SIG_CONTEXT + unsigned));
  return `${unsigned}; b=${toBase64url(sig)}`;
}

export type SignatureStatus =
  'valid' | 'invalid' | 'unknown-key' | 'expired' | 'revoked' | 'not-for-recipient';

export interface SignatureResult {
  readonly status: SignatureStatus;
  /** Absent only when status is 'valid'. */
  readonly code?: ErrorCode;
  /** True when a retry may give another answer (DNS failure). */
  readonly temporary: boolean;
  readonly detail?: string;
  /** Present once the field parsed. */
  readonly signature?: ParsedSignature;
}

export interface VerifyContext {
  /** SHA-256 of the root part (the content digest), 32 octets. */
  readonly digest: Uint8Array;
  /** DNS TXT lookups (domain keys, revocation records). Callers cache. */
  readonly resolveTxt: TxtResolver;
  /** Current time, unix seconds. */
  readonly now: number;
  /** The recipient of this transfer (canonical); when given, r= must list it. */
  readonly recipient?: string;
  /** Certificate field values of the trace block (for user-key signatures). */
  readonly certificates?: readonly string[];
  /** Allowed clock skew for t= in the future, seconds (default 300). */
  readonly clockSkew?: number;
  readonly impl?: Ed25519;
}

const STATUS_OF: Partial<Record<ErrorCode, SignatureStatus>> = {
  NMTP_ERR_SIG_EXPIRED: 'expired',
  NMTP_ERR_KEY_NOT_FOUND: 'unknown-key',
  NMTP_ERR_KEY_LOOKUP_FAILED: 'unknown-key',
  NMTP_ERR_KEY_REVOKED: 'revoked',
  NMTP_ERR_KEY_EXPIRED: 'expired',
  NMTP_ERR_CERT_REVOKED: 'revoked',
  NMTP_ERR_CERT_EXPIRED: 'expired',
  NMTP_ERR_SIG_NOT_FOR_RECIPIENT: 'not-for-recipient',
};

function failure(error: NmtpError, signature?: ParsedSignature): SignatureResult {
  return {
    status: STATUS_OF[error.code] ?? 'invalid',
    code: error.code,
    temporary: error.temporary,
    detail: error.message,
    ...(signature === undefined ? {} : { signature }),
  };
}

/**
 * Verifies one Signature field value; never throws for anything in the message.
 * Steps (§30.6): parse → digest → time → key (domain, or certificate for user keys) →
 * ed25519 → recipient.
 */
export async function verifySignature(value: string, ctx: VerifyContext): Promise<SignatureResult> {
  let sig: ParsedSignature;
  try {
    sig = parseSignatureField(value);
  } catch (e) {
    if (e instanceof NmtpError) return failure(e);
    throw e;
  }
  const fail = (code: ErrorCode, why?: string): SignatureResult =>
    failure(new NmtpError(code, why), sig);
  // "`h` MUST equal the content digest of the message" (§30.6 step 2). This, not the
  // signature, is what ties the bytes: appended or altered content changes the digest.
  if (!Buffer.from(sig.digest).equals(Buffer.from(ctx.digest))) {
    return fail('NMTP_ERR_SIG_DIGEST_MISMATCH');
  }
  // "If now > `x` → `expired`" (§30.6 step 3).
  if (ctx.now > sig.expiresAt) return fail('NMTP_ERR_SIG_EXPIRED', `x=${sig.expiresAt}`);
  if (sig.signedAt > ctx.now + (ctx.clockSkew ?? 300)) return fail('NMTP_ERR_SIG_FUTURE');

  // Step 4: the verification key.
  let publicKey: Uint8Array;
  if (sig.user === undefined) {
    const key = await lookupDomainKey(ctx.resolveTxt, sig.domain, sig.selector);
    if (key.status === 'error') return failure(key.error, sig);
    if (key.record.publicKey === undefined) return fail('NMTP_ERR_KEY_REVOKED');
    if (key.record.expiresAt !== undefined && ctx.now > key.record.expiresAt) {
      return fail('NMTP_ERR_KEY_EXPIRED');
    }
    publicKey = key.record.publicKey;
  } else {
    // "c names the first Certificate field of the trace block whose id= tag equals it;
    // that certificate is then verified, and a certificate that does not parse gives its own
    // code" (step 4b): a weak k= or na ≤ nb reports itself, not a missing certificate.
    const certValue = (ctx.certificates ?? []).find((v) =>
      v.split('; ').includes(`id=${sig.certId}`),
    );
    if (certValue === undefined) return fail('NMTP_ERR_SIG_CERT_MISSING', `c=${sig.certId}`);
    const cert = await verifyCertificate(certValue, ctx);
    if (!cert.ok) return failure(cert.error, sig);
    const c = cert.certificate;
    if (c.domain !== sig.domain || c.selector !== sig.selector || c.user !== sig.user) {
      return fail('NMTP_ERR_CERT_MISMATCH');
    }
    // "t= MUST lie within [nb, na] of the certificate" (step 4b).
    if (sig.signedAt < c.notBefore) return fail('NMTP_ERR_CERT_NOT_YET_VALID');
    if (sig.signedAt > c.notAfter) return fail('NMTP_ERR_CERT_EXPIRED');
    publicKey = c.userKey;
  }

  // Step 5: ed25519 over "NMTP-SIG-1" LF + the value up to "; b=".
  const input = new TextEncoder().encode(SIG_CONTEXT + sig.unsignedPart);
  if (!(ctx.impl ?? defaultEd25519).verify(publicKey, input, sig.signature)) {
    return fail('NMTP_ERR_SIG_BAD_SIGNATURE');
  }

  // Step 6: "a verifier holding recipient R checks that its hash is listed".
  if (ctx.recipient !== undefined) {
    const mine = Buffer.from(recipientHash(sig.salt, ctx.recipient));
    if (!sig.recipientHashes.some((h) => mine.equals(Buffer.from(h)))) {
      return fail('NMTP_ERR_SIG_NOT_FOR_RECIPIENT');
    }
  }
  return { status: 'valid', temporary: false, signature: sig };
}

/**
 * Verifies every Signature of a trace block, each on its own: "each is verified
 * independently" (design.md) — one bad signature never changes another's result.
 */
export function verifyAll(
  values: readonly string[],
  ctx: VerifyContext,
): Promise<SignatureResult[]> {
  return Promise.all(values.map((v) => verifySignature(v, ctx)));
}

export interface ReplayVerdict {
  readonly ok: boolean;
  /** Index (in trace order) of the signature the rule looked at, when there is one. */
  readonly index?: number;
  readonly code?: ErrorCode;
  readonly temporary: boolean;
}

/**
 * The replay rule (§30.7): a receiver "MUST find the last Signature field in the trace block
 * whose `d=` equals D [the client's authenticated domain], and that signature MUST be
 * `valid` for R" (listed in r=, unexpired, key good). `results` must come from verifyAll with ctx.recipient set.
 */
export function checkReplay(
  results: readonly SignatureResult[],
  authenticatedDomain: string,
): ReplayVerdict {
  for (let i = results.length - 1; i >= 0; i--) {
    const r = results[i]!;
    if (r.signature?.domain !== authenticatedDomain) continue;
    if (r.status === 'valid') return { ok: true, index: i, temporary: false };
    return { ok: false, index: i, code: r.code!, temporary: r.temporary };
  }
  return { ok: false, code: 'NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE', temporary: false };
}
