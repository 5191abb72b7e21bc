import { defineErrors } from './define.ts';

/**
 * Codes of the address subsystem (docs/protocol.md §20.10).
 *
 * Address syntax errors have scope 'recipient': an address is most often an envelope
 * recipient, and one bad recipient must not fail the others. Display-name errors are
 * 'message' scope: they can only come from a header field of one message.
 */
export const ADDRESS_ERRORS = defineErrors({
  NMTP_ERR_ADDR_EMPTY: {
    temporary: false,
    scope: 'recipient',
    summary: 'The address is empty.',
  },
  NMTP_ERR_ADDR_TOO_LONG: {
    temporary: false,
    scope: 'recipient',
    summary: 'The address is longer than any valid address can be (checked before parsing).',
  },
  NMTP_ERR_ADDR_MISSING_AT: {
    temporary: false,
    scope: 'recipient',
    summary: 'The address has no "@" separating local part and domain.',
  },
  NMTP_ERR_ADDR_LOCAL_EMPTY: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part is empty.',
  },
  NMTP_ERR_ADDR_LOCAL_TOO_LONG: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part exceeds 64 code points or 255 UTF-8 octets.',
  },
  NMTP_ERR_ADDR_LOCAL_CHAR: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part contains a code point that NMTP does not allow.',
  },
  NMTP_ERR_ADDR_LOCAL_CONTEXT: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part violates a PRECIS contextual rule (RFC 5892 Appendix A).',
  },
  NMTP_ERR_ADDR_LOCAL_BIDI: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part violates the Bidi Rule (RFC 5893).',
  },
  NMTP_ERR_ADDR_NOT_CANONICAL: {
    temporary: false,
    scope: 'recipient',
    summary: 'A wire address is not in prepared form (NFC/width-mapped local, lowercase domain).',
  },
  NMTP_ERR_ADDR_DOMAIN_INVALID: {
    temporary: false,
    scope: 'recipient',
    summary: 'The domain is not a valid IDNA domain name (UTS #46 strict processing failed).',
  },
  NMTP_ERR_ADDR_DOMAIN_LITERAL: {
    temporary: false,
    scope: 'recipient',
    summary: 'Address literals ([192.0.2.1], [IPv6:...]) are not NMTP domains.',
  },
  NMTP_ERR_ADDR_DOMAIN_TRAILING_DOT: {
    temporary: false,
    scope: 'recipient',
    summary: 'The domain ends with a dot.',
  },
  NMTP_ERR_ADDR_DOMAIN_TOO_LONG: {
    temporary: false,
    scope: 'recipient',
    summary: 'The domain exceeds 253 octets, or a label 63 octets, in A-label form.',
  },
  NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL: {
    temporary: false,
    scope: 'recipient',
    summary: 'The domain has a single label; NMTP domains have at least two.',
  },
  NMTP_ERR_ADDR_DOMAIN_NUMERIC_TLD: {
    temporary: false,
    scope: 'recipient',
    summary: 'The last label of the domain is all digits (looks like an IPv4 address).',
  },
  NMTP_ERR_ADDR_HOMOGRAPH_REFUSED: {
    temporary: false,
    scope: 'recipient',
    summary: 'The homograph policy refuses the domain (minimally restrictive or unrestricted).',
  },
  NMTP_ERR_ADDR_DISPLAY_NAME_INVALID: {
    temporary: false,
    scope: 'message',
    summary: 'The display name is empty, not NFC, has edge spaces, "<", ">" or controls.',
  },
  NMTP_ERR_ADDR_MAILBOX_SYNTAX: {
    temporary: false,
    scope: 'message',
    summary: 'A mailbox list is not `[name SP] "<" address ">"` items separated by ", ".',
  },
  NMTP_ERR_ADDR_LEGACY_SYNTAX: {
    temporary: false,
    scope: 'recipient',
    summary: 'The legacy address is not an RFC 5321/5322/6531 addr-spec.',
  },
  NMTP_ERR_ADDR_LEGACY_UNMAPPABLE: {
    temporary: false,
    scope: 'recipient',
    summary: 'The legacy local part holds a code point NMTP prohibits (e.g. quoted space or "@").',
  },
  NMTP_ERR_ADDR_LEGACY_NEEDS_SMTPUTF8: {
    temporary: false,
    scope: 'recipient',
    summary: 'The local part is not ASCII and the legacy peer does not offer SMTPUTF8.',
  },
});
