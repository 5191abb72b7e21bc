/**
 * The message layer: signing and verifying whole framed messages. It joins the codec
 * (src/core/frame), the address rules (src/core/address) and the signatures
 * (src/core/sign, src/core/keys); each of those stays ignorant of the others.
 * docs/protocol.md §30.12, "Signing and verifying a whole message".
 */
import { NmtpError } from '../errors/index.ts';
import {
  appendTraceField,
  decodeMessage,
  encodeMessageWithDigest,
  fieldNameEquals,
  type AddressValidator,
  type DecodedMessage,
  type Field,
  type FramedMessage,
  type FrameLimits,
} from '../frame/index.ts';
import { parseAddress, processDomain, validateDisplayName } from '../address/index.ts';
import {
  checkReplay,
  recipientHash,
  signContent,
  verifyAll,
  type ReplayVerdict,
  type SignatureResult,
  type SigningKey,
  type Ed25519,
} from '../sign/index.ts';
import type { TxtResolver } from '../keys/index.ts';

/**
 * Decodes with full validation, mailboxes included: an address-list field whose addresses
 * are not in wire form, or whose display names break §20.8 (e.g. a bidi override that makes
 * a name read differently), is a malformed message, not something to sign or trust.
 */
export function decodeAndValidate(
  bytes: Uint8Array,
  limits?: Partial<FrameLimits>,
): DecodedMessage {
  return decodeMessage(bytes, limits, { validateAddress: wireMailbox });
}

const wireMailbox: AddressValidator = (address, displayName) => {
  parseAddress(address, { mode: 'wire' });
  if (displayName !== undefined) validateDisplayName(displayName);
};

function traceValues(message: { readonly trace: readonly Field[] }, name: string): string[] {
  return message.trace.filter((f) => fieldNameEquals(f.name, name)).map((f) => f.value);
}

export interface SignMessageOptions {
  readonly key: SigningKey;
  /** Signer domain (any form; written as its A-label) and key selector. */
  readonly domain: string;
  readonly selector: string;
  /** The recipients this signature is for, in any accepted address form. */
  readonly recipients: readonly string[];
  /** Unix seconds: when signed, and until when the signature may be used. */
  readonly signedAt: number;
  readonly expiresAt: number;
  /** 16 random octets from the caller. */
  readonly salt: Uint8Array;
  /** For a user-key signature: the user's address and its certificate (field value). */
  readonly user?: {
    readonly address: string;
    readonly certId: string;
    readonly certificate: string;
  };
  readonly limits?: Partial<FrameLimits>;
  readonly impl?: Ed25519;
}

/**
 * Adds one Signature (and, for a user key, its Certificate when not yet carried) at the end
 * of the trace block. "Adding a signature never changes bytes any earlier one covers": only
 * trace lines are appended, the content is untouched.
 */
export function signMessage(bytes: Uint8Array, opts: SignMessageOptions): Uint8Array {
  const message = decodeAndValidate(bytes, opts.limits);
  return sign(bytes, message.contentDigest, traceValues(message, 'Certificate'), opts);
}

/**
 * `signMessage(encodeMessage(message), opts)`, the same bytes out, without decoding the
 * message it has just encoded: the encoder computes the content digest and refuses what
 * `decodeAndValidate` would refuse (same checks, `opts.limits`, mailboxes included). For a
 * signer that builds the message itself (the gateway's smtp-in).
 */
export function encodeAndSign(message: FramedMessage, opts: SignMessageOptions): Uint8Array {
  const { bytes, contentDigest } = encodeMessageWithDigest(message, {
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
    validateAddress: wireMailbox,
  });
  return sign(bytes, contentDigest, traceValues(message, 'Certificate'), opts);
}

function sign(
  bytes: Uint8Array,
  digest: Uint8Array,
  certificates: readonly string[],
  opts: SignMessageOptions,
): Uint8Array {
  if (opts.recipients.length === 0) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'a signature binds at least one recipient');
  }
  const recipients = opts.recipients.map((r) => parseAddress(r).canonical);
  const domain = processDomain(opts.domain).ascii;
  let out = bytes;
  if (opts.user !== undefined && !certificates.includes(opts.user.certificate)) {
    out = appendTraceField(out, { name: 'Certificate', value: opts.user.certificate }, opts.limits);
  }
  const value = signContent({
    digest,
    domain,
    selector: opts.selector,
    ...(opts.user === undefined
      ? {}
      : { user: parseAddress(opts.user.address).canonical, certId: opts.user.certId }),
    signedAt: opts.signedAt,
    expiresAt: opts.expiresAt,
    recipients,
    salt: opts.salt,
    key: opts.key,
    ...(opts.impl === undefined ? {} : { impl: opts.impl }),
  });
  return appendTraceField(out, { name: 'Signature', value }, opts.limits);
}

export interface VerifyMessageOptions {
  readonly resolveTxt: TxtResolver;
  /** Unix seconds. */
  readonly now: number;
  /** The recipient of this transfer; when given, each signature's r= must list it. */
  readonly recipient?: string;
  /**
   * The sending client's authenticated domain; when given (with `recipient`), the replay
   * rule is applied and its verdict returned.
   */
  readonly authenticatedDomain?: string;
  readonly limits?: Partial<FrameLimits>;
  readonly impl?: Ed25519;
}

export interface MessageVerification {
  readonly contentDigest: Uint8Array;
  /** One result per Signature field, in trace order, each independent of the others. */
  readonly signatures: readonly SignatureResult[];
  readonly replay?: ReplayVerdict;
}

/** Decodes (throwing on a malformed message) and verifies every signature. */
export async function verifyMessage(
  bytes: Uint8Array,
  opts: VerifyMessageOptions,
): Promise<MessageVerification> {
  const message = decodeAndValidate(bytes, opts.limits);
  const recipient =
    opts.recipient === undefined ? undefined : parseAddress(opts.recipient).canonical;
  const signatures = await verifyAll(traceValues(message, 'Signature'), {
    digest: message.contentDigest,
    resolveTxt: opts.resolveTxt,
    now: opts.now,
    certificates: traceValues(message, 'Certificate'),
    ...(recipient === undefined ? {} : { recipient }),
    ...(opts.impl === undefined ? {} : { impl: opts.impl }),
  });
  const replay =
    recipient === undefined || opts.authenticatedDomain === undefined
      ? undefined
      : checkReplay(signatures, processDomain(opts.authenticatedDomain).ascii);
  return {
    contentDigest: message.contentDigest,
    signatures,
    ...(replay === undefined ? {} : { replay }),
  };
}

export interface RecipientsVerificationOptions {
  readonly resolveTxt: TxtResolver;
  /** Unix seconds. */
  readonly now: number;
  /** The transfer's recipients (any accepted form; the verdicts are keyed as given). */
  readonly recipients: readonly string[];
  /** The sending client's authenticated domain (HELLO, §60.8). */
  readonly authenticatedDomain: string;
  readonly limits?: Partial<FrameLimits>;
  readonly impl?: Ed25519;
}

export interface RecipientsVerification {
  /** The message, decoded and validated once (for whoever converts or stores it next). */
  readonly message: DecodedMessage;
  /** One result per Signature field, in trace order, with no recipient check (§30.6 steps 1–5). */
  readonly signatures: readonly SignatureResult[];
  /** The replay rule's verdict (§30.7) for each recipient, keyed as given. */
  readonly replay: ReadonlyMap<string, ReplayVerdict>;
}

/**
 * verifyMessage for several recipients at the cost of one: the message is decoded once and
 * each signature verified once; the recipient check — "a verifier holding recipient R checks
 * that its hash is listed" (§30.6 step 6), the last step — is then made per recipient, so
 * each verdict is exactly what verifyMessage with that recipient gives.
 */
export async function verifyForRecipients(
  bytes: Uint8Array,
  opts: RecipientsVerificationOptions,
): Promise<RecipientsVerification> {
  const message = decodeAndValidate(bytes, opts.limits);
  const signatures = await verifyAll(traceValues(message, 'Signature'), {
    digest: message.contentDigest,
    resolveTxt: opts.resolveTxt,
    now: opts.now,
    certificates: traceValues(message, 'Certificate'),
    ...(opts.impl === undefined ? {} : { impl: opts.impl }),
  });
  const domain = processDomain(opts.authenticatedDomain).ascii;
  const replay = new Map<string, ReplayVerdict>();
  for (const given of opts.recipients) {
    const rcpt = parseAddress(given).canonical;
    const forRcpt = signatures.map((r): SignatureResult => {
      const sig = r.signature;
      if (r.status !== 'valid' || sig === undefined) return r;
      const mine = Buffer.from(recipientHash(sig.salt, rcpt));
      return sig.recipientHashes.some((h) => mine.equals(Buffer.from(h)))
        ? r
        : {
            status: 'not-for-recipient',
            code: 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT',
            temporary: false,
            signature: sig,
          };
    });
    replay.set(given, checkReplay(forRcpt, domain));
  }
  return { message, signatures, replay };
}
