/**
 * RFC 3464 / RFC 6533 delivery status notification builder.
 *
 * MIME assembly: libmime (foldLines) plus a fixed three-part writer, not
 * nodemailer/lib/mime-node. A DSN has one fixed shape, and the RFCs fix the encodings
 * (message/rfc822 is 7bit/8bit/binary only, RFC 2046 §5.2.1; the RFC 6533 global types
 * are sent 8bit), whereas MimeNode chooses
 * transfer encodings by heuristics, generates its own Date/Message-ID/boundary from the
 * clock and crypto, and is an internal module whose byte output may change between minor
 * versions — which golden files would turn into churn.
 */
import libmime from 'libmime';
import { NmtpError } from '../../src/core/errors/index.ts';
import {
  checkOutcome,
  reportable,
  reportAddress,
  type NotifiedOutcome,
  type RecipientOutcome,
  type TypedAddress,
} from '../../src/core/delivery/index.ts';
import { formatRfc5322Date } from './date.ts';
import { humanText } from './human.ts';
import type { DsnSources } from './sources.ts';

export type Ret = 'HDRS' | 'FULL';

export interface BuildDsnInput {
  /** Host name of the gateway, written as "Reporting-MTA: dns; <name>". */
  readonly reportingMta: string;
  /** Domain for "From: MAILER-DAEMON@<domain>" and the Message-Id; default reportingMta. */
  readonly reportingDomain?: string;
  /** The envelope sender (MAIL FROM) of the original message: the DSN goes there. */
  readonly returnPath: string;
  /** ENVID from MAIL FROM, xtext-decoded (RFC 3461 §4.4). */
  readonly envid?: string;
  readonly arrivalDate?: Date;
  /** Host the gateway received the original from. */
  readonly receivedFromMta?: string;
  /** Every recipient's outcome with its NOTIFY; only the reportable ones are written. */
  readonly recipients: readonly NotifiedOutcome[];
  /** RET from MAIL FROM; absent means HDRS (the gateway's choice, RFC 3461 §4.3 leaves it open). */
  readonly ret?: Ret;
  /** The original message octets (CRLF), if the gateway still has them. */
  readonly original?: Uint8Array;
}

export interface BuiltDsn {
  readonly bytes: Uint8Array;
  /** RFC 6533 form (message/global-delivery-status): needs SMTPUTF8 or 8BITMIME to send. */
  readonly global: boolean;
  /** Some part is 8bit: the DSN must be sent with BODY=8BITMIME. */
  readonly eightBit: boolean;
  /** The return path is non-ASCII: the DSN must be sent with SMTPUTF8. */
  readonly smtputf8: boolean;
  /** RFC 5321 §6.1: notifications are sent with a null reverse-path. */
  readonly envelope: { readonly mailFrom: ''; readonly rcptTo: string };
  /** The outcomes that were reported (after NOTIFY filtering), in order. */
  readonly reported: readonly RecipientOutcome[];
}

const CRLF = '\r\n';
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

function badField(what: string, value: string): never {
  throw new NmtpError('NMTP_ERR_DSN_BAD_FIELD', `${what}: ${JSON.stringify(value.slice(0, 80))}`);
}

/** Values we are given (names, addresses, ENVID) must already be one clean token. */
function token(what: string, value: string): string {
  if (value === '' || CONTROL.test(value) || /\s/.test(value)) badField(what, value);
  return value;
}

/**
 * Remote answers are whatever a peer sent: fold every control and whitespace run into one
 * space instead of refusing, because refusing would lose the whole DSN over one byte.
 */
function cleanText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\s\x00-\x1f\x7f-\x9f]+/g, ' ').trim();
}

/** "Name: value" folded at 76 columns where whitespace allows (RFC 5322 §2.2.3). */
function field(name: string, value: string): string {
  return libmime.foldLines(`${name}: ${value}`, 76, false) + CRLF;
}

function typed(a: TypedAddress): string {
  const address = token('address', a.address);
  // RFC 6533 §3: non-ASCII addresses use the "utf-8" address type.
  const type =
    NON_ASCII.test(address) && a.addrType.toLowerCase() === 'rfc822' ? 'utf-8' : a.addrType;
  return `${token('address type', type)}; ${address}`;
}

/** MTA names go after "dns;": a host name or address literal, no ";", "(" or ")". */
function mta(what: string, value: string): string {
  if (/[;()]/.test(value)) badField(what, value);
  return token(what, value);
}

function finalRecipient(o: RecipientOutcome): string {
  const address = reportAddress(o.recipient);
  return typed({ addrType: NON_ASCII.test(address) ? 'utf-8' : 'rfc822', address });
}

/** RFC 3464 §2.2 per-message fields, in the ABNF's order. */
function perMessage(input: BuildDsnInput): string {
  let s = '';
  if (input.envid !== undefined) {
    // RFC 3464 §2.2.1: "Original-Envelope-Id" ":" envelope-id, the ENVID of the message.
    if (!/^[\x20-\x7e]+$/.test(input.envid) || input.envid.trim() !== input.envid) {
      badField('ENVID', input.envid);
    }
    s += field('Original-Envelope-Id', input.envid);
  }
  s += field('Reporting-MTA', `dns; ${mta('reporting MTA', input.reportingMta)}`);
  if (input.receivedFromMta !== undefined) {
    s += field('Received-From-MTA', `dns; ${mta('received-from MTA', input.receivedFromMta)}`);
  }
  if (input.arrivalDate !== undefined) {
    s += field('Arrival-Date', formatRfc5322Date(input.arrivalDate));
  }
  return s;
}

/** RFC 3464 §2.3 per-recipient fields, in the ABNF's order. */
function perRecipient(o: RecipientOutcome): string {
  let s = '';
  if (o.originalRecipient !== undefined)
    s += field('Original-Recipient', typed(o.originalRecipient));
  s += field('Final-Recipient', finalRecipient(o));
  s += field('Action', o.action);
  s += field('Status', o.status);
  if (o.remoteMta !== undefined) s += field('Remote-MTA', `dns; ${mta('remote MTA', o.remoteMta)}`);
  if (o.diagnostic !== undefined) {
    // RFC 3464 §2.3.6: diagnostic-type "smtp", or an X- type for others: NMTP is "X-NMTP".
    const type =
      o.diagnostic.type === 'nmtp'
        ? 'X-NMTP'
        : o.diagnostic.type === 'smtp'
          ? 'smtp'
          : o.diagnostic.type;
    s += field(
      'Diagnostic-Code',
      `${token('diagnostic type', type)}; ${cleanText(o.diagnostic.text)}`,
    );
  }
  if (o.lastAttempt !== undefined)
    s += field('Last-Attempt-Date', formatRfc5322Date(o.lastAttempt));
  if (o.finalLogId !== undefined) s += field('Final-Log-ID', cleanText(o.finalLogId));
  if (o.willRetryUntil !== undefined && o.action === 'delayed') {
    // RFC 3464 §2.3.9: Will-Retry-Until is only meaningful for "delayed".
    s += field('Will-Retry-Until', formatRfc5322Date(o.willRetryUntil));
  }
  return s;
}

/**
 * Splits the original at its header/body boundary; line ends normalised to CRLF. Works on
 * a latin1 view (one char per octet) so that 8-bit content in any charset is returned
 * octet for octet, never re-encoded.
 */
function splitOriginal(original: Uint8Array): { headers: string; body: string } {
  const text = Buffer.from(original.buffer, original.byteOffset, original.length)
    .toString('latin1')
    .replace(/\r\n|\r|\n/g, CRLF);
  const at = text.indexOf(CRLF + CRLF);
  if (at < 0) return { headers: text.endsWith(CRLF) ? text : text + CRLF, body: '' };
  return { headers: text.slice(0, at + 2), body: text.slice(at + 4) };
}

interface Part {
  readonly headers: string;
  readonly body: string;
  /** How `body` turns into octets: our own text is UTF-8, the returned original latin1 (raw). */
  readonly octets: 'utf8' | 'latin1';
}

function returnedPart(
  input: BuildDsnInput,
  reported: readonly RecipientOutcome[],
): Part | undefined {
  if (input.original === undefined) return undefined;
  const { headers, body } = splitOriginal(input.original);
  // RFC 3461 §4.3: "FULL requests that the entire message be returned in any "failed" DSN
  // issued for this recipient"; a DSN reporting no failure returns the headers only.
  const full = input.ret === 'FULL' && reported.some((o) => o.action === 'failed');
  const utf8Headers = NON_ASCII.test(headers);
  if (!full) {
    // RFC 6533 message/global-headers carries UTF-8 header fields.
    const type = utf8Headers ? 'message/global-headers' : 'text/rfc822-headers';
    return {
      headers:
        field(
          'Content-Description',
          reported.some((o) => o.action === 'failed')
            ? 'Undelivered Message Headers'
            : 'Message Headers',
        ) +
        field('Content-Type', type) +
        (utf8Headers ? field('Content-Transfer-Encoding', '8bit') : ''),
      body: headers,
      octets: 'latin1',
    };
  }
  // RFC 6532 message/global for a message whose header fields are UTF-8;
  // RFC 2046 §5.2.1 message/rfc822 may only be 7bit/8bit/binary, never base64.
  const type = utf8Headers ? 'message/global' : 'message/rfc822';
  const eight = NON_ASCII.test(headers) || NON_ASCII.test(body);
  return {
    headers:
      field('Content-Description', 'Undelivered Message') +
      field('Content-Type', type) +
      field('Content-Transfer-Encoding', eight ? '8bit' : '7bit'),
    body: headers + CRLF + body,
    octets: 'latin1',
  };
}

function subjectFor(reported: readonly RecipientOutcome[]): string {
  if (reported.some((o) => o.action === 'failed')) return 'Undelivered Mail Returned to Sender';
  if (reported.some((o) => o.action === 'delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

function isNullSender(p: string): boolean {
  return p.trim() === '' || p.trim() === '<>';
}

export function buildDsn(input: BuildDsnInput, sources: DsnSources): BuiltDsn {
  // RFC 5321 §4.5.5: notifications are sent with a null reverse-path so that a failure to
  // deliver them can never trigger another one; a DSN to <> would start that loop.
  if (isNullSender(input.returnPath)) {
    throw new NmtpError('NMTP_ERR_DSN_NULL_SENDER');
  }
  const returnPath = token('return path', input.returnPath.replace(/^<(.*)>$/, '$1'));
  const domain = token('reporting domain', input.reportingDomain ?? input.reportingMta);
  const reported = reportable(input.recipients).map(checkOutcome);
  if (reported.length === 0) throw new NmtpError('NMTP_ERR_DSN_NOTHING_TO_REPORT');

  const status = [perMessage(input), ...reported.map(perRecipient)].join(CRLF);
  const text = humanText(input.reportingMta, reported);
  // RFC 6533: message/global-delivery-status when any field is UTF-8.
  const global = NON_ASCII.test(status) || NON_ASCII.test(returnPath);
  const returned = returnedPart(input, reported);
  const textUtf8 = NON_ASCII.test(text);

  const parts: Part[] = [
    {
      headers:
        field('Content-Description', 'Notification') +
        field('Content-Type', `text/plain; charset=${textUtf8 ? 'utf-8' : 'us-ascii'}`) +
        (textUtf8 ? field('Content-Transfer-Encoding', '8bit') : ''),
      body: text,
      octets: 'utf8',
    },
    {
      headers:
        field('Content-Description', 'Delivery report') +
        field(
          'Content-Type',
          global ? 'message/global-delivery-status' : 'message/delivery-status',
        ) +
        (global ? field('Content-Transfer-Encoding', '8bit') : ''),
      body: status,
      octets: 'utf8',
    },
    ...(returned === undefined ? [] : [returned]),
  ];

  const boundary = pickBoundary(sources, parts);
  const date = sources.now();
  const messageId = sources.messageId(domain);
  if (!/^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/.test(messageId)) {
    badField('message id', messageId);
  }
  // RFC 6522 §3: report-type names the subtype of the second part.
  const reportType = global ? 'global-delivery-status' : 'delivery-status';
  const head =
    field('From', `Mail Delivery System <MAILER-DAEMON@${domain}>`) +
    field('To', `<${returnPath}>`) +
    field('Subject', subjectFor(reported)) +
    field('Date', formatRfc5322Date(date)) +
    field('Message-Id', messageId) +
    // RFC 3834 §5: responses generated by a program are marked so autoresponders stay quiet.
    field('Auto-Submitted', 'auto-replied') +
    field('MIME-Version', '1.0') +
    `Content-Type: multipart/report; report-type=${reportType};${CRLF}\tboundary="${boundary}"${CRLF}`;

  const chunks: Buffer[] = [
    Buffer.from(head + CRLF + 'This is a MIME-encapsulated message.' + CRLF),
  ];
  for (const p of parts) {
    chunks.push(Buffer.from(CRLF + '--' + boundary + CRLF + p.headers + CRLF));
    chunks.push(Buffer.from(p.body, p.octets));
    if (!p.body.endsWith(CRLF)) chunks.push(Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(CRLF + '--' + boundary + '--' + CRLF));
  const bytes = new Uint8Array(Buffer.concat(chunks));
  return {
    bytes,
    global,
    eightBit: bytes.some((b) => b > 0x7f),
    smtputf8: NON_ASCII.test(returnPath),
    envelope: { mailFrom: '', rcptTo: returnPath },
    reported,
  };
}

/** RFC 2046 §5.1.1: the boundary "must not appear inside any of the encapsulated parts". */
function pickBoundary(sources: DsnSources, parts: readonly Part[]): string {
  for (let i = 0; i < 8; i++) {
    const b = sources.boundary();
    // RFC 2046 §5.1.1 bchars, 1-70 characters, not ending in a space.
    if (!/^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/.test(b))
      badField('boundary', b);
    if (!parts.some((p) => p.body.includes('--' + b) || p.headers.includes('--' + b))) return b;
  }
  throw new NmtpError('NMTP_ERR_DSN_BOUNDARY_COLLISION');
}
