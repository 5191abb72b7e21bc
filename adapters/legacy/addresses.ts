/**
 * Address-list fields (From, Sender, Reply-To, To, Cc) → RFC 5322 mailbox lists
 * (docs/protocol.md §51.4.1).
 */
import { NmtpError } from '../../src/core/errors/index.ts';
import { parseMailboxList, toLegacyAddress } from '../../src/core/address/index.ts';
import { phrase } from './text.ts';

export function toLegacyMailboxList(field: string, value: string, smtputf8: boolean): string {
  let list;
  try {
    list = parseMailboxList(value);
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    throw new NmtpError(
      'NMTP_ERR_LEGACY_ADDRESS_INVALID',
      `${field}: ${e.message}`,
      { field, reason: e.code },
      e,
    );
  }
  return list
    .map((m) => {
      let addr: string;
      try {
        addr = toLegacyAddress(m.address, { smtputf8 });
      } catch (e) {
        // "A non-ASCII local part toward a peer without SMTPUTF8 is an error
        // (NMTP_ERR_LEGACY_ADDRESS_NEEDS_SMTPUTF8); it is never rewritten." (§51.4.1)
        if (e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_LEGACY_NEEDS_SMTPUTF8') {
          throw new NmtpError(
            'NMTP_ERR_LEGACY_ADDRESS_NEEDS_SMTPUTF8',
            `${field}: ${m.address.canonical}`,
            { field, address: m.address.canonical },
            e,
          );
        }
        throw e;
      }
      return m.displayName === undefined
        ? `<${addr}>`
        : `${phrase(m.displayName, smtputf8)} <${addr}>`;
    })
    .join(', ');
}
