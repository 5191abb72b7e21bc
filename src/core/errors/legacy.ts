import { defineErrors } from './define.ts';

/**
 * Codes of the legacy boundary: building RFC 5322/MIME messages from framed ones
 * (docs/protocol.md §51.9).
 *
 * All are permanent: the same framed message toward a peer with the same extensions fails
 * the same way on retry. They are message-scoped because a header (From, To, …) is shared by
 * every recipient of one legacy copy; the delivery layer turns them into a rejection of that
 * copy (or retries toward a peer that offers the missing extension).
 */
export const LEGACY_ERRORS = defineErrors({
  NMTP_ERR_LEGACY_ADDRESS_NEEDS_SMTPUTF8: {
    temporary: false,
    scope: 'message',
    summary:
      'A header address has a non-ASCII local part and the legacy peer does not offer SMTPUTF8.',
  },
  NMTP_ERR_LEGACY_ADDRESS_INVALID: {
    temporary: false,
    scope: 'message',
    summary: 'A header address of the framed message is not a valid NMTP address.',
  },
  NMTP_ERR_LEGACY_HEADER_NEEDS_SMTPUTF8: {
    temporary: false,
    scope: 'message',
    summary:
      'A structured header (Message-Id, References, Content-Id, …) holds non-ASCII text and the peer does not offer SMTPUTF8: no legacy encoding exists for it.',
  },
  NMTP_ERR_LEGACY_LINE_TOO_LONG: {
    temporary: false,
    scope: 'message',
    summary:
      'A structured header cannot be written in lines of at most 998 octets (a token longer than a line).',
  },
  NMTP_ERR_LEGACY_NEEDS_8BITMIME: {
    temporary: false,
    scope: 'message',
    summary:
      'A part that must not be transfer-encoded (message/rfc822 or similar leaf) holds 8-bit data and the peer does not offer 8BITMIME.',
  },
  NMTP_ERR_LEGACY_BOUNDARY: {
    temporary: false,
    scope: 'local',
    summary:
      'No multipart boundary absent from the content was found (random source broken or adversarial).',
  },
  NMTP_ERR_LEGACY_DKIM_KEY: {
    temporary: false,
    scope: 'local',
    summary:
      'The DKIM/ARC signing configuration is unusable (key not a PEM private key, wrong type for the algorithm, RSA key under 1024 bits, ARC without an RSA key, bad domain or selector); found at start-up (§51.12).',
  },
  NMTP_ERR_LEGACY_SIGN_FAILED: {
    temporary: true,
    scope: 'message',
    summary:
      'DKIM signing or ARC sealing of a converted message failed (the library reported an error, or an existing ARC chain could not be checked); retried (§51.12).',
  },
});
