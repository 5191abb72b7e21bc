import { defineErrors } from './define.ts';

/**
 * Codes of the legacy → framed conversion (docs/protocol.md §50.9).
 *
 * Only what the converter cannot recover from is an error; everything the spec lets it
 * repair (a missing final boundary, a header line without a colon, invalid base64, an
 * unknown charset, ...) is a warning on a successful conversion instead. All codes are
 * permanent: the same octets fail the same way on retry. The SMTP layer answers them with
 * a 5xx after DATA (reject at SMTP time), so the sender gets a bounce, never silence.
 */
export const MIME_ERRORS = defineErrors({
  NMTP_ERR_MIME_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: 'The legacy message is larger than the configured maximum message size.',
  },
  NMTP_ERR_MIME_TOO_MANY_PARTS: {
    temporary: false,
    scope: 'message',
    summary: 'The legacy message has more MIME parts than the configured maximum.',
  },
  NMTP_ERR_MIME_TOO_DEEP: {
    temporary: false,
    scope: 'message',
    summary: 'Multipart / message/rfc822 nesting is deeper than the configured maximum.',
  },
  NMTP_ERR_MIME_HEADER_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: "A part's header block is larger than the configured maximum.",
  },
  NMTP_ERR_MIME_NO_FROM: {
    temporary: false,
    scope: 'message',
    summary: 'The message has no From field with at least one mailbox (RFC 5322 requires one).',
  },
  NMTP_ERR_MIME_ADDRESS_UNMAPPABLE: {
    temporary: false,
    scope: 'message',
    summary: 'An originator address (From, Sender) cannot be mapped to an NMTP address.',
  },
  NMTP_ERR_MIME_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'The MIME structure cannot be parsed at all (the splitter gave up).',
  },
  NMTP_ERR_MIME_INPUT: {
    temporary: false,
    scope: 'message',
    summary: 'The input stream failed or yielded something other than bytes.',
  },
});
