/**
 * One NMTP header field → one legacy header field value (docs/protocol.md
 * §51.4). Content-* fields are not handled here: they depend on the part's planned encoding
 * (see plan.ts).
 */
import { NmtpError } from '../../src/core/errors/index.ts';
import { ADDRESS_LIST_FIELDS } from '../../src/core/frame/index.ts';
import { toLegacyMailboxList } from './addresses.ts';
import { toLegacyDate } from './date.ts';
import { isAscii, unstructured } from './text.ts';

/**
 * Fields whose syntax is message identifiers or tokens (RFC 5322 §3.6.4, RFC 2045 §7,
 * RFC 3282): encoded-words are not allowed in them, so non-ASCII text has no legacy
 * form without SMTPUTF8.
 */
const STRUCTURED_ASCII = new Set([
  'message-id',
  'in-reply-to',
  'references',
  'content-id',
  'content-language',
  'resent-message-id',
]);

/** NMTP fields that have no legacy counterpart or that the converter writes itself. */
export const DROPPED_FIELDS = new Set([
  'content-length',
  'content-transfer-encoding',
  'mime-version',
  // Provenance of a legacy → NMTP conversion lists the SMTP recipients, Bcc ones included:
  // a legacy copy goes to every recipient, so it must not carry them (§51.4.5).
  'legacy-envelope-to',
]);

/** The legacy value of a non-Content-Type/Disposition field, unfolded. */
export function legacyFieldValue(name: string, value: string, smtputf8: boolean): string {
  const lower = name.toLowerCase();
  if (ADDRESS_LIST_FIELDS.has(lower)) return toLegacyMailboxList(name, value, smtputf8);
  if (lower === 'date') return toLegacyDate(value);
  if (STRUCTURED_ASCII.has(lower)) {
    // "Message-Id, In-Reply-To, References, Content-Id and Content-Language are copied
    // as they are; non-ASCII text in them toward a peer without SMTPUTF8 is
    // NMTP_ERR_LEGACY_HEADER_NEEDS_SMTPUTF8." (§51.4.4)
    if (!smtputf8 && !isAscii(value)) {
      throw new NmtpError('NMTP_ERR_LEGACY_HEADER_NEEDS_SMTPUTF8', `${name} is not ASCII`, {
        field: name,
      });
    }
    return value;
  }
  return unstructured(name, value, smtputf8);
}
