import { defineErrors } from './define.ts';

/**
 * Codes of the gateway (SMTP in → NMTP out, and back): what smtp-in refuses during the SMTP
 * session, routing, the queue backends, the legacy boundary. Each refusal of smtp-in is
 * sent as an SMTP reply whose text ends with the code, so a sender's log names it.
 */
export const GATEWAY_ERRORS = defineErrors({
  NMTP_ERR_GW_BARE_LINE_END: {
    temporary: false,
    scope: 'session',
    summary:
      'A bare LF or bare CR in an SMTP command or in DATA (SMTP smuggling class, CVE-2023-51764); refused, never relayed. A NUL octet is refused the same way.',
  },
  NMTP_ERR_GW_SMTPUTF8_REQUIRED: {
    temporary: false,
    scope: 'recipient',
    summary:
      'A MAIL FROM or RCPT TO address is not ASCII but MAIL FROM did not carry SMTPUTF8 (RFC 6531 §3.4): 553 5.6.7.',
  },
  NMTP_ERR_GW_TLS_REQUIRED: {
    temporary: false,
    scope: 'session',
    summary: 'MAIL before STARTTLS on a listener that requires TLS (smtp.requireTls): 530 5.7.0.',
  },
  NMTP_ERR_GW_TIMEOUT: {
    temporary: true,
    scope: 'session',
    summary:
      'The SMTP client was too slow: silent past smtp.limits.commandTimeout, DATA longer than dataTimeout, or DATA slower than minDataRate; 421 4.4.2 and the connection closes.',
  },
  NMTP_ERR_GW_RELAY_DENIED: {
    temporary: false,
    scope: 'recipient',
    summary:
      'The recipient is not in a relay domain or address and the client is neither in a permitted network nor authenticated (no open relay).',
  },
  NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED: {
    temporary: false,
    scope: 'recipient',
    summary:
      'The message needs SMTPUTF8 (a non-ASCII envelope address, or UTF-8 header fields of a message received with SMTPUTF8) and the smarthost (or MX host) does not offer it (RFC 6531 §3.2): refused with 553 5.6.7 / 554 5.6.9, never sent as is.',
  },
  NMTP_ERR_GW_CONFIG_INVALID: {
    temporary: false,
    scope: 'local',
    summary:
      'The gateway configuration file does not validate; the message names the key and the value.',
  },
  NMTP_ERR_GW_UNSAFE_OUTPUT: {
    temporary: false,
    scope: 'message',
    summary:
      'A message about to be sent toward the legacy side holds a bare CR, a bare LF, a NUL or a line over 998 octets (SMTP smuggling class); refused, never sent (§51.12).',
  },
  NMTP_ERR_GW_NULL_MX: {
    temporary: false,
    scope: 'recipient',
    summary:
      'SMTP out to MX hosts: the recipient domain publishes a null MX ("0 .", RFC 7505), it accepts no mail: 556 5.1.10, never attempted.',
  },
  NMTP_ERR_GW_MX_NOT_FOUND: {
    temporary: false,
    scope: 'recipient',
    summary:
      'SMTP out to MX hosts: the recipient domain does not exist, or has neither an MX record nor an address of its own (the implicit MX, RFC 5321 §5.1): 550 5.4.4.',
  },
  NMTP_ERR_GW_MX_LOOP: {
    temporary: false,
    scope: 'recipient',
    summary:
      'SMTP out to MX hosts: the gateway itself is the most preferred MX host of the recipient domain (RFC 5321 §5.1), so the mail would loop back to it: 554 5.4.6.',
  },
});
