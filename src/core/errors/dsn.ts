import { defineErrors } from './define.ts';

/**
 * Codes of the dsn subsystem (legacy boundary): the per-recipient outcome type
 * (src/core/delivery/), the RFC 3464/6533 DSN builder and parser (adapters/dsn/).
 * Spec: docs/protocol.md §52.
 */
export const DSN_ERRORS = defineErrors({
  NMTP_ERR_DSN_BAD_STATUS: {
    temporary: false,
    scope: 'recipient',
    summary:
      'Not an RFC 3463 enhanced status code (class "." subject "." detail, class 2, 4 or 5, 1-3 digits each)',
  },
  NMTP_ERR_DSN_BAD_OUTCOME: {
    temporary: false,
    scope: 'recipient',
    summary:
      'Inconsistent per-recipient outcome (no recipient address, unknown action, or status class not matching the action)',
  },
  NMTP_ERR_DSN_NULL_SENDER: {
    temporary: false,
    scope: 'message',
    summary:
      'Refusing to build a DSN addressed to the null reverse-path <> (loop prevention, RFC 5321 4.5.5)',
  },
  NMTP_ERR_DSN_NOTHING_TO_REPORT: {
    temporary: false,
    scope: 'message',
    summary: 'No recipient outcome is reportable under its NOTIFY parameter: no DSN is to be sent',
  },
  NMTP_ERR_DSN_BAD_FIELD: {
    temporary: false,
    scope: 'message',
    summary:
      'A value given to the DSN builder cannot be written into a report field (control characters, empty, or wrong shape)',
  },
  NMTP_ERR_DSN_BOUNDARY_COLLISION: {
    temporary: true,
    scope: 'local',
    summary:
      'Every boundary the boundary source offered occurs in the report content; retry with fresh randomness',
  },
  NMTP_ERR_DSN_NOT_A_REPORT: {
    temporary: false,
    scope: 'message',
    summary: 'Not a delivery status notification (top-level type is not multipart/report)',
  },
  NMTP_ERR_DSN_NO_STATUS_PART: {
    temporary: false,
    scope: 'message',
    summary:
      'multipart/report without a usable message/delivery-status or message/global-delivery-status part',
  },
  NMTP_ERR_DSN_MALFORMED: {
    temporary: false,
    scope: 'message',
    summary:
      'Malformed delivery-status report (missing boundary, no per-recipient group, or a required field missing or invalid)',
  },
  NMTP_ERR_DSN_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: 'The report exceeds the parser size limit',
  },
});
