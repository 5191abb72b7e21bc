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
      'A bare LF or bare CR in an SMTP command or in DATA (SMTP smuggling class, CVE-2023-51764); refused, never relayed.',
  },
  NMTP_ERR_GW_RELAY_DENIED: {
    temporary: false,
    scope: 'recipient',
    summary:
      'The recipient is not in a relay domain or address and the client is neither in a permitted network nor authenticated (no open relay).',
  },
  NMTP_ERR_GW_CONFIG_INVALID: {
    temporary: false,
    scope: 'local',
    summary:
      'The gateway configuration file does not validate; the message names the key and the value.',
  },
});
