import { defineErrors } from './define.ts';

/**
 * Codes of the frame subsystem (docs/protocol.md §10.9).
 *
 * All are permanent and message-scoped: a framed message that breaks a rule will break it
 * again on retry, and one bad message does not spoil the session it arrived in (the
 * transport frames messages by length, so the next message is still found).
 */
export const FRAME_ERRORS = defineErrors({
  NMTP_ERR_FRAME_VERSION: {
    temporary: false,
    scope: 'message',
    summary: 'The message does not begin with the version line "NMTP/1" CRLF.',
  },
  NMTP_ERR_FRAME_FIELD_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary:
      'A header line is not `name: value` CRLF (bad name, no ": ", bare LF, or a value with an edge space).',
  },
  NMTP_ERR_FRAME_UTF8: {
    temporary: false,
    scope: 'message',
    summary: 'A field value is not well-formed UTF-8.',
  },
  NMTP_ERR_FRAME_CONTROL_CHAR: {
    temporary: false,
    scope: 'message',
    summary: 'A field value contains a control character (C0 including TAB and CR, DEL, or C1).',
  },
  NMTP_ERR_FRAME_NOT_NFC: {
    temporary: false,
    scope: 'message',
    summary: 'A field value is not in Unicode Normalization Form C.',
  },
  NMTP_ERR_FRAME_LINE_TOO_LONG: {
    temporary: false,
    scope: 'message',
    summary: 'A header line (including its CRLF) is longer than the line limit.',
  },
  NMTP_ERR_FRAME_TOO_MANY_FIELDS: {
    temporary: false,
    scope: 'message',
    summary: 'A header block has more fields than the field-count limit.',
  },
  NMTP_ERR_FRAME_HEADER_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: 'A header block (fields and empty line) is larger than the header-block limit.',
  },
  NMTP_ERR_FRAME_DUPLICATE_FIELD: {
    temporary: false,
    scope: 'message',
    summary:
      'A singleton field (From, Subject, Content-Type, ...) occurs twice in one header block.',
  },
  NMTP_ERR_FRAME_LENGTH_MISSING: {
    temporary: false,
    scope: 'message',
    summary: 'A part has no Content-Length field.',
  },
  NMTP_ERR_FRAME_LENGTH_DUPLICATE: {
    temporary: false,
    scope: 'message',
    summary: 'A part has more than one Content-Length field.',
  },
  NMTP_ERR_FRAME_LENGTH_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'A Content-Length value is not 1 to 15 decimal digits without sign or leading zero.',
  },
  NMTP_ERR_FRAME_LENGTH_OVER_LIMIT: {
    temporary: false,
    scope: 'message',
    summary:
      'The root part declares a length that exceeds the total-size limit (refused before reading).',
  },
  NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'A Content-Type value is not `type/subtype` with `; name=value` parameters.',
  },
  NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'An address-list field (From, Sender, Reply-To, To, Cc) does not match its syntax.',
  },
  NMTP_ERR_FRAME_DATE_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'A Date value is not an RFC 3339 date-time with an explicit offset.',
  },
  NMTP_ERR_FRAME_SENTINEL: {
    temporary: false,
    scope: 'message',
    summary: 'The octets after a body are not CRLF CRLF: the declared length is wrong.',
  },
  NMTP_ERR_FRAME_CONTAINER_MISMATCH: {
    temporary: false,
    scope: 'message',
    summary:
      'The children of a container do not fill its body exactly (overrun, leftover, or message/nmtp without exactly one part).',
  },
  NMTP_ERR_FRAME_TOO_DEEP: {
    temporary: false,
    scope: 'message',
    summary: 'Parts are nested deeper than the depth limit.',
  },
  NMTP_ERR_FRAME_TOO_MANY_PARTS: {
    temporary: false,
    scope: 'message',
    summary: 'The message has more parts than the part-count limit.',
  },
  NMTP_ERR_FRAME_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: 'The message is larger than the total-size limit.',
  },
  NMTP_ERR_FRAME_TRAILING_BYTES: {
    temporary: false,
    scope: 'message',
    summary: 'Octets follow the sentinel of the root part.',
  },
  NMTP_ERR_FRAME_TRUNCATED: {
    temporary: false,
    scope: 'message',
    summary: 'The input ended before the root part was complete.',
  },
});
