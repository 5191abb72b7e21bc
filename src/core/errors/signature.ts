import { defineErrors } from './define.ts';

/**
 * Codes of the signature and key subsystem (docs/protocol.md §30.11 and
 * §40.10).
 *
 * Only DNS lookup failures are temporary: a key or revocation record that could not be
 * fetched may be fetchable later. Everything else is a property of the bytes (or of what
 * DNS definitely said) and will be the same on retry. All are message-scoped: a bad
 * signature spoils at most the verdict on one message, never the session.
 */
export const SIGNATURE_ERRORS = defineErrors({
  NMTP_ERR_SIG_MALFORMED: {
    temporary: false,
    scope: 'message',
    summary:
      'A Signature field value breaks the tag-list syntax (tag order, a tag twice, bad base64url, bad number).',
  },
  NMTP_ERR_SIG_VERSION: {
    temporary: false,
    scope: 'message',
    summary: 'A Signature field has a version other than v=1.',
  },
  NMTP_ERR_SIG_ALGORITHM: {
    temporary: false,
    scope: 'message',
    summary: 'A Signature field names an algorithm other than a=ed25519.',
  },
  NMTP_ERR_SIG_DIGEST_MISMATCH: {
    temporary: false,
    scope: 'message',
    summary: 'The content digest in h= is not the digest of this message content.',
  },
  NMTP_ERR_SIG_BAD_SIGNATURE: {
    temporary: false,
    scope: 'message',
    summary: 'The ed25519 signature in b= does not verify (strict RFC 8032) under the named key.',
  },
  NMTP_ERR_SIG_EXPIRED: {
    temporary: false,
    scope: 'message',
    summary: 'The signature expiry time x= has passed.',
  },
  NMTP_ERR_SIG_FUTURE: {
    temporary: false,
    scope: 'message',
    summary: 'The signature time t= lies further in the future than the allowed clock skew.',
  },
  NMTP_ERR_SIG_NOT_FOR_RECIPIENT: {
    temporary: false,
    scope: 'recipient',
    summary:
      'The recipient hashes in r= do not include this recipient (replay to another recipient).',
  },
  NMTP_ERR_SIG_TOO_MANY_RECIPIENTS: {
    temporary: false,
    scope: 'message',
    summary: 'A signature lists more recipient hashes than the limit (256).',
  },
  NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE: {
    temporary: false,
    scope: 'recipient',
    summary:
      "No signature by the sending client's authenticated domain is valid for this recipient (replay rule).",
  },
  NMTP_ERR_SIG_CERT_MISSING: {
    temporary: false,
    scope: 'message',
    summary: 'A user-key signature names (c=) a certificate that is not in the trace block.',
  },
  NMTP_ERR_KEY_LOOKUP_FAILED: {
    temporary: true,
    scope: 'message',
    summary:
      'The DNS lookup of a key or revocation record failed (timeout, SERVFAIL): retry later.',
  },
  NMTP_ERR_KEY_NOT_FOUND: {
    temporary: false,
    scope: 'message',
    summary: 'DNS holds no NMTPKEY1 record at <selector>._nmtpkey.<domain>.',
  },
  NMTP_ERR_KEY_RECORD_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'A domain key TXT record breaks the NMTPKEY1 syntax.',
  },
  NMTP_ERR_KEY_AMBIGUOUS: {
    temporary: false,
    scope: 'message',
    summary: 'More than one NMTPKEY1 record is published at the same name.',
  },
  NMTP_ERR_KEY_REVOKED: {
    temporary: false,
    scope: 'message',
    summary: 'The domain key record has an empty p= (the key is revoked).',
  },
  NMTP_ERR_KEY_EXPIRED: {
    temporary: false,
    scope: 'message',
    summary: 'The domain key record expiry x= has passed.',
  },
  NMTP_ERR_KEY_WEAK: {
    temporary: false,
    scope: 'message',
    summary:
      'A public key is a non-canonical encoding or a small-order point; such keys are refused.',
  },
  NMTP_ERR_KEY_LENGTH: {
    temporary: false,
    scope: 'local',
    summary:
      'A raw key, seed or signature has the wrong length (keys and seeds 32, signatures 64).',
  },
  NMTP_ERR_KEY_PEM: {
    temporary: false,
    scope: 'local',
    summary: 'A PEM key is not an ed25519 SubjectPublicKeyInfo / PKCS#8 key in the expected form.',
  },
  NMTP_ERR_CERT_MALFORMED: {
    temporary: false,
    scope: 'message',
    summary: 'A Certificate field value breaks the certificate syntax.',
  },
  NMTP_ERR_CERT_BAD_SIGNATURE: {
    temporary: false,
    scope: 'message',
    summary: "The certificate's b= does not verify under the issuing domain key.",
  },
  NMTP_ERR_CERT_NOT_YET_VALID: {
    temporary: false,
    scope: 'message',
    summary: 'The certificate is not valid yet (nb=), or the signature time lies before it.',
  },
  NMTP_ERR_CERT_EXPIRED: {
    temporary: false,
    scope: 'message',
    summary: 'The certificate validity (na=) has ended, or the signature time lies after it.',
  },
  NMTP_ERR_CERT_WRONG_DOMAIN: {
    temporary: false,
    scope: 'message',
    summary: 'The certified user address is not in the issuing domain.',
  },
  NMTP_ERR_CERT_NOT_AUTHORIZED: {
    temporary: false,
    scope: 'message',
    summary: 'The issuing domain key record lacks flag f=u (may not certify user keys).',
  },
  NMTP_ERR_CERT_REVOKED: {
    temporary: false,
    scope: 'message',
    summary: 'A revocation record exists at <id>._nmtprevoked.<domain>.',
  },
  NMTP_ERR_CERT_MISMATCH: {
    temporary: false,
    scope: 'message',
    summary: 'A user-key signature and its certificate disagree (domain, selector or user).',
  },
});
