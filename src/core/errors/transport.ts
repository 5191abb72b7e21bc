import { defineErrors } from './define.ts';

/**
 * Codes of the transport (docs/protocol.md §60.12): the wire codec
 * (NMTP_ERR_WIRE_*: bytes that are not NMTP/1 commands, replies or chunks) and the session
 * state machines (NMTP_ERR_TRANSPORT_*: well-formed input at the wrong time or refused).
 *
 * Wire errors are session-scoped: once framing is lost the receiver cannot know where the
 * next command starts, so it answers once and closes. Transport errors mostly leave the
 * session usable; the reply carries the code in its `err=` parameter.
 */
export const TRANSPORT_ERRORS = defineErrors({
  NMTP_ERR_WIRE_LINE_TOO_LONG: {
    temporary: false,
    scope: 'session',
    summary: 'A command or reply line exceeds the line limit (checked before buffering it).',
  },
  NMTP_ERR_WIRE_BARE_LF: {
    temporary: false,
    scope: 'session',
    summary: 'A line ends in LF without CR, or contains a CR not followed by LF.',
  },
  NMTP_ERR_WIRE_INVALID_UTF8: {
    temporary: false,
    scope: 'session',
    summary: 'A command or reply line is not valid UTF-8.',
  },
  NMTP_ERR_WIRE_SYNTAX: {
    temporary: false,
    scope: 'session',
    summary:
      'A line does not match the command or reply grammar (controls, bad parameter, bad arguments).',
  },
  NMTP_ERR_WIRE_UNKNOWN_COMMAND: {
    temporary: false,
    scope: 'session',
    summary: 'The command verb is not one NMTP/1 defines.',
  },
  NMTP_ERR_WIRE_COMMAND_TOO_LONG: {
    temporary: false,
    scope: 'session',
    summary: 'A command line exceeds the size limit of its verb.',
  },
  NMTP_ERR_WIRE_CHUNK_SIZE: {
    temporary: false,
    scope: 'session',
    summary:
      'A CHUNK header has a malformed size (sign, leading zero, non-digits, too many digits).',
  },
  NMTP_ERR_WIRE_CHUNK_TOO_LARGE: {
    temporary: false,
    scope: 'session',
    summary: 'A CHUNK declares more octets than the chunk limit (refused before reading them).',
  },
  NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH: {
    temporary: false,
    scope: 'session',
    summary: 'The octets after a chunk body are not CRLF: the chunk lied about its length.',
  },
  NMTP_ERR_WIRE_UNEXPECTED_CHUNK: {
    temporary: false,
    scope: 'session',
    summary: 'A CHUNK arrived when no data was expected.',
  },
  NMTP_ERR_WIRE_TRUNCATED: {
    temporary: false,
    scope: 'session',
    summary: 'The stream ended inside a line or a chunk.',
  },
  NMTP_ERR_TRANSPORT_OUT_OF_ORDER: {
    temporary: false,
    scope: 'session',
    summary: 'The command is valid NMTP/1 but not allowed in the current session state.',
  },
  NMTP_ERR_TRANSPORT_WRONG_SERVICE: {
    temporary: false,
    scope: 'session',
    summary: 'The command belongs to the other service (transfer vs submission).',
  },
  NMTP_ERR_TRANSPORT_BAD_ARGUMENT: {
    temporary: false,
    scope: 'session',
    summary: 'A command argument is well-formed on the wire but invalid (address, domain, key).',
  },
  NMTP_ERR_TRANSPORT_PROOF_INVALID: {
    temporary: false,
    scope: 'session',
    summary:
      'The HELLO proof does not verify under the named domain key for this session challenge.',
  },
  NMTP_ERR_TRANSPORT_PROOF_KEY_UNAVAILABLE: {
    temporary: true,
    scope: 'session',
    summary: 'The domain key named by HELLO could not be looked up (DNS failure).',
  },
  NMTP_ERR_TRANSPORT_CSV_FAIL: {
    temporary: false,
    scope: 'session',
    summary: "The client's IP address is not authorised by the domain's _nmtpclient record.",
  },
  NMTP_ERR_TRANSPORT_AUTH_REQUIRED: {
    temporary: false,
    scope: 'session',
    summary: 'Submission: a command other than AUTH before authentication.',
  },
  NMTP_ERR_TRANSPORT_AUTH_FAILED: {
    temporary: false,
    scope: 'session',
    summary: 'Submission: the credentials or the key signature were refused.',
  },
  NMTP_ERR_TRANSPORT_TOO_MANY_RECIPIENTS: {
    temporary: true,
    scope: 'recipient',
    summary: 'More recipients than the per-transaction limit; send the rest in another one.',
  },
  NMTP_ERR_TRANSPORT_NO_RECIPIENTS: {
    temporary: false,
    scope: 'message',
    summary: 'DATA/SEND without any accepted recipient.',
  },
  NMTP_ERR_TRANSPORT_DUPLICATE_RECIPIENT: {
    temporary: false,
    scope: 'recipient',
    summary: 'The same recipient was given twice in one transaction.',
  },
  NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE: {
    temporary: false,
    scope: 'message',
    summary: 'The announced size exceeds the message size limit.',
  },
  NMTP_ERR_TRANSPORT_SIZE_MISMATCH: {
    temporary: false,
    scope: 'session',
    summary: 'The chunks carried more or fewer octets than announced.',
  },
  NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN: {
    temporary: false,
    scope: 'recipient',
    summary: 'No cookie of that name for this client domain (also the answer for foreign cookies).',
  },
  NMTP_ERR_TRANSPORT_VIEW_NOT_WANTED: {
    temporary: false,
    scope: 'recipient',
    summary: 'DATA on a cookie that is not waiting for a bigger view.',
  },
  NMTP_ERR_TRANSPORT_COOKIE_MISMATCH: {
    temporary: false,
    scope: 'recipient',
    summary:
      'DATA on a cookie announces another message (size, digest or signers) than the DATA that created the cookie.',
  },
  NMTP_ERR_TRANSPORT_VIEW_INVALID: {
    temporary: false,
    scope: 'session',
    summary:
      'The octets sent are not the view asked for of the announced message, or do not reproduce a view sent before on the cookie.',
  },
  NMTP_ERR_TRANSPORT_FROM_MISMATCH: {
    temporary: false,
    scope: 'message',
    summary: 'Submission: the From (or Sender) of the message is not the authenticated user.',
  },
  NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN: {
    temporary: false,
    scope: 'message',
    summary: 'Submission STATUS for an id this user did not submit.',
  },
  NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED: {
    temporary: false,
    scope: 'recipient',
    summary: 'The receiver refused this recipient (the reply text says why).',
  },
  NMTP_ERR_TRANSPORT_RECIPIENT_UNAVAILABLE: {
    temporary: true,
    scope: 'recipient',
    summary: 'The recipient is temporarily unavailable; try again later.',
  },
  NMTP_ERR_TRANSPORT_TIMEOUT: {
    temporary: true,
    scope: 'session',
    summary: 'The peer was silent for longer than the current state allows.',
  },
  NMTP_ERR_TRANSPORT_LOCAL: {
    temporary: true,
    scope: 'local',
    summary: 'A local failure (storage, signing, decider) on the answering side.',
  },
  NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED: {
    temporary: true,
    scope: 'local',
    summary:
      'A mailbox journal segment is damaged before its end (not a torn last write): its whole entries were recovered and the segment kept aside as <name>.damaged for the operator.',
  },
  NMTP_ERR_TRANSPORT_MAILDIR_IN_USE: {
    temporary: true,
    scope: 'local',
    summary:
      "Another running process serves this maildir (journal/owner names it); two writers would replay each other's journal.",
  },
  NMTP_ERR_TRANSPORT_NO_ROUTE: {
    temporary: true,
    scope: 'message',
    summary:
      'No SRV record names a server for the destination domain (or the lookup failed); nothing to connect to.',
  },
  NMTP_ERR_TRANSPORT_CONNECT_FAILED: {
    temporary: true,
    scope: 'session',
    summary:
      'Every SRV target refused or failed the TCP/TLS connection (including a certificate that does not verify).',
  },
  NMTP_ERR_TRANSPORT_SERVER_NAME_MISMATCH: {
    temporary: true,
    scope: 'session',
    summary:
      "The greeting's server name is not the name the server's certificate was verified for: the client signs no proof for it and closes (§60.8.1).",
  },
  NMTP_ERR_TRANSPORT_PROVE_NO_KEY: {
    temporary: false,
    scope: 'recipient',
    summary:
      'PROVE: this endpoint holds no key for the recipient, so it cannot prove one; the sender falls back to the normal path.',
  },
  NMTP_ERR_TRANSPORT_REDIRECT_FAILED: {
    temporary: true,
    scope: 'recipient',
    summary:
      'The redirect target was unreachable, refused PROVE, or proved a key other than the fingerprint of the 351 (or a second redirect was offered); the sender falls back to the normal path.',
  },
  NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS: {
    temporary: true,
    scope: 'session',
    summary:
      'The server is at its connection limit (overall or for the client address); try again later.',
  },
});
