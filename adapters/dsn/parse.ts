/**
 * Reads RFC 3464 / RFC 6533 DSNs that legacy MTAs send back (Postfix, Sendmail, Exim,
 * Exchange, InterMail...) into the shared per-recipient outcome type.
 *
 * Tolerance (docs/protocol.md §52.8): field names in any case, folded values, missing
 * optional fields, "<addr>" in angle brackets, a missing address-type (taken as rfc822),
 * an Action missing but implied by the Status class (and vice versa), several status
 * parts of which only some parse. Each such repair is recorded in `warnings`. What cannot
 * be read safely is a coded error: the caller must not update cookie state from a guess.
 */
import { NmtpError } from '../../src/core/errors/index.ts';
import {
  expectedClass,
  isDeliveryAction,
  isEnhancedStatus,
  statusClass,
  type DeliveryAction,
  type EnhancedStatus,
  type RecipientOutcome,
  type TypedAddress,
} from '../../src/core/delivery/index.ts';
import { parseRfc5322Date } from './date.ts';
import {
  contentType,
  decodeTransfer,
  header,
  parseHeaderBlock,
  splitEntity,
  splitMultipart,
  type HeaderField,
  type RawPart,
} from './mime.ts';

export interface ParsedDsn {
  /** Original-Envelope-Id: the ENVID the gateway gave, tying the report to a transfer. */
  readonly envid?: string;
  readonly reportingMta?: string;
  readonly receivedFromMta?: string;
  readonly dsnGateway?: string;
  readonly arrivalDate?: Date;
  /** message/global-delivery-status (RFC 6533) was used. */
  readonly global: boolean;
  readonly outcomes: readonly RecipientOutcome[];
  /** What the third part returned, if anything; its Message-Id also ties it to a transfer. */
  readonly returned?: { readonly type: string; readonly messageId?: string };
  /** Repairs made to read the report (see module comment). */
  readonly warnings: readonly string[];
}

export interface ParseDsnOptions {
  /** Refuse larger inputs before looking at them (default 32 MiB: RET=FULL reports). */
  readonly maxBytes?: number;
}

const STATUS_PARTS = new Set(['message/delivery-status', 'message/global-delivery-status']);
const RETURNED_PARTS = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/global-headers',
]);

function malformed(message: string): never {
  throw new NmtpError('NMTP_ERR_DSN_MALFORMED', message);
}

/** "rfc822; <u@ci.com>" → {addrType: 'rfc822', address: 'u@ci.com'}. */
function typedAddress(value: string, warnings: string[], what: string): TypedAddress {
  const semi = value.indexOf(';');
  let type = 'rfc822';
  let address = value;
  if (semi < 0) warnings.push(`${what} without address-type; taken as rfc822`);
  else {
    type = value.slice(0, semi).trim().toLowerCase();
    address = value.slice(semi + 1);
  }
  address = address
    .trim()
    .replace(/^<(.*)>$/, '$1')
    .trim();
  if (type === 'utf-8') {
    // RFC 6533 §3: in ASCII reports, non-ASCII is written \x{HEXPOINT}.
    address = address.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, h: string) =>
      String.fromCodePoint(parseInt(h, 16)),
    );
  }
  return { addrType: type, address };
}

/** "dns; mx.example.org (1.2.3.4)" → "mx.example.org": the name, without comments. */
function mtaName(value: string): string {
  const semi = value.indexOf(';');
  return (semi < 0 ? value : value.slice(semi + 1))
    .replace(/\([^)]*\)/g, '')
    .trim()
    .split(/\s+/)[0]!;
}

function date(fields: readonly HeaderField[], name: string, warnings: string[]): Date | undefined {
  const raw = header(fields, name);
  if (raw === undefined) return undefined;
  const d = parseRfc5322Date(raw);
  if (d === undefined) warnings.push(`unreadable ${name}: ${JSON.stringify(raw)}`);
  return d;
}

const IMPLIED_ACTION: Record<number, DeliveryAction> = {
  2: 'delivered',
  4: 'delayed',
  5: 'failed',
};
const IMPLIED_STATUS: Record<DeliveryAction, string> = {
  failed: '5.0.0',
  delayed: '4.0.0',
  delivered: '2.0.0',
  relayed: '2.0.0',
  expanded: '2.0.0',
};

function recipientGroup(fields: readonly HeaderField[], warnings: string[]): RecipientOutcome {
  const finalRaw = header(fields, 'final-recipient') ?? header(fields, 'x-actual-recipient');
  const origRaw = header(fields, 'original-recipient');
  if (finalRaw === undefined && origRaw === undefined) {
    malformed('per-recipient group without Final-Recipient');
  }
  const original =
    origRaw === undefined ? undefined : typedAddress(origRaw, warnings, 'Original-Recipient');
  let final: TypedAddress;
  if (finalRaw === undefined) {
    warnings.push('Final-Recipient missing; using Original-Recipient');
    final = original!;
  } else final = typedAddress(finalRaw, warnings, 'Final-Recipient');

  // Status: the code is the first token; some MTAs append text ("5.0.0 (permanent failure)").
  const statusRaw = header(fields, 'status');
  const statusMatch =
    statusRaw === undefined ? null : /^\s*([245]\.\d{1,3}\.\d{1,3})\b/.exec(statusRaw);
  const actionRaw = header(fields, 'action')
    ?.toLowerCase()
    .replace(/\s*\(.*\)$/, '')
    .trim();
  if (statusRaw !== undefined && statusMatch === null)
    malformed(`bad Status ${JSON.stringify(statusRaw)}`);
  if (actionRaw !== undefined && !isDeliveryAction(actionRaw))
    malformed(`bad Action ${JSON.stringify(actionRaw)}`);
  let action = actionRaw as DeliveryAction | undefined;
  let status = statusMatch?.[1] as EnhancedStatus | undefined;
  if (action === undefined && status === undefined)
    malformed('per-recipient group without Action and Status');
  if (action === undefined) {
    action = IMPLIED_ACTION[statusClass(status!)]!;
    warnings.push(`Action missing for ${final.address}; implied ${action} from Status`);
  }
  if (status === undefined) {
    status = IMPLIED_STATUS[action] as EnhancedStatus;
    warnings.push(`Status missing for ${final.address}; implied ${status} from Action`);
  }
  if (!isEnhancedStatus(status)) malformed(`bad Status ${status}`);
  if (statusClass(status) !== expectedClass(action)) {
    // Postfix writes "Action: failed" with "Status: 4.4.1" when the queue lifetime expires.
    // The Action is the explicit final statement; RFC 3463 subject/detail codes mean the
    // same in every class, so only the class is rewritten (4.4.1 → 5.4.1).
    const fixed = `${expectedClass(action)}${status.slice(1)}` as EnhancedStatus;
    warnings.push(
      `Status ${status} disagrees with Action ${action} for ${final.address}; taken as ${fixed}`,
    );
    status = fixed;
  }

  const remote = header(fields, 'remote-mta');
  const diagRaw = header(fields, 'diagnostic-code');
  let diagnostic: RecipientOutcome['diagnostic'];
  if (diagRaw !== undefined) {
    const semi = diagRaw.indexOf(';');
    const type = semi < 0 ? 'smtp' : diagRaw.slice(0, semi).trim().toLowerCase();
    // Folded diagnostics carry the folder's indentation; one space is what was meant.
    const text = (semi < 0 ? diagRaw : diagRaw.slice(semi + 1)).replace(/\s+/g, ' ').trim();
    diagnostic = { type: type === 'x-nmtp' ? 'nmtp' : type, text };
  }
  const lastAttempt = date(fields, 'last-attempt-date', warnings);
  const willRetryUntil = date(fields, 'will-retry-until', warnings);
  const finalLogId = header(fields, 'final-log-id');
  return {
    recipient: { legacy: final.address, legacyType: final.addrType },
    ...(original === undefined ? {} : { originalRecipient: original }),
    action,
    status,
    ...(remote === undefined ? {} : { remoteMta: mtaName(remote) }),
    ...(diagnostic === undefined ? {} : { diagnostic }),
    ...(lastAttempt === undefined ? {} : { lastAttempt }),
    ...(willRetryUntil === undefined ? {} : { willRetryUntil }),
    ...(finalLogId === undefined ? {} : { finalLogId }),
  };
}

interface StatusBody {
  readonly perMessage: readonly HeaderField[];
  readonly outcomes: RecipientOutcome[];
}

/** RFC 3464 §2.1: per-message fields, then one or more per-recipient groups, blank-line separated. */
function parseStatusBody(text: string, warnings: string[]): StatusBody {
  const groups = text
    .split(/\r?\n[ \t]*\r?\n/)
    .map((g) => parseHeaderBlock(g))
    .filter((g) => g.fields.length > 0 || g.junk.length > 0);
  for (const g of groups) {
    if (g.junk.length > 0) {
      if (g.fields.length === 0)
        malformed(`not a delivery-status field group: ${JSON.stringify(g.junk[0]!.slice(0, 60))}`);
      warnings.push(`ignored ${g.junk.length} line(s) without a field name`);
    }
  }
  if (groups.length === 0) malformed('empty delivery-status part');
  let first = groups[0]!.fields;
  let rest = groups.slice(1);
  if (header(first, 'reporting-mta') === undefined) {
    if (header(first, 'final-recipient') !== undefined || header(first, 'action') !== undefined) {
      // Per-message group left out entirely; the first group is already a recipient.
      warnings.push('per-message fields missing');
      rest = groups;
      first = [];
    } else warnings.push('Reporting-MTA missing');
  }
  if (rest.length === 0) malformed('no per-recipient fields');
  return { perMessage: first, outcomes: rest.map((g) => recipientGroup(g.fields, warnings)) };
}

export function parseDsn(bytes: Uint8Array, options: ParseDsnOptions = {}): ParsedDsn {
  const max = options.maxBytes ?? 32 * 1024 * 1024;
  if (bytes.length > max) {
    throw new NmtpError('NMTP_ERR_DSN_TOO_LARGE', `${bytes.length} octets > ${max}`);
  }
  const latin1 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  const { head, body } = splitEntity(latin1);
  const top = contentType(parseHeaderBlock(head).fields);
  if (top.type !== 'multipart/report') {
    throw new NmtpError('NMTP_ERR_DSN_NOT_A_REPORT', `top-level type is ${top.type}`);
  }
  const warnings: string[] = [];
  const reportType = (top.params['report-type'] ?? '').toLowerCase();
  if (reportType === '') warnings.push('multipart/report without report-type');
  else if (reportType !== 'delivery-status' && reportType !== 'global-delivery-status') {
    // e.g. disposition-notification (MDN), feedback-report (ARF): other reports.
    throw new NmtpError('NMTP_ERR_DSN_NOT_A_REPORT', `report-type=${reportType}`);
  }
  const boundary = top.params.boundary;
  if (boundary === undefined || boundary === '') malformed('multipart/report without boundary');
  const parts = splitMultipart(body, boundary);
  if (parts === undefined) malformed('boundary never occurs in the body');

  const candidates = parts.filter((p) => STATUS_PARTS.has(contentType(p.headers).type));
  if (candidates.length === 0) throw new NmtpError('NMTP_ERR_DSN_NO_STATUS_PART');
  let parsed: StatusBody | undefined;
  let usedGlobal = false;
  let firstError: unknown;
  for (const part of candidates) {
    const partWarnings: string[] = [];
    try {
      // RFC 6533: UTF-8 in the global type; plain DSNs are ASCII, so UTF-8 decoding
      // reads both (stray 8-bit octets become U+FFFD rather than failing the report).
      parsed = parseStatusBody(decodeTransfer(part).toString('utf8'), partWarnings);
      usedGlobal = contentType(part.headers).type === 'message/global-delivery-status';
      warnings.push(...partWarnings);
      break;
    } catch (e) {
      firstError ??= e;
      warnings.push(`skipped an unreadable ${contentType(part.headers).type} part`);
    }
  }
  if (parsed === undefined) throw firstError;

  const pm = parsed.perMessage;
  const reportingMta = header(pm, 'reporting-mta');
  const receivedFrom = header(pm, 'received-from-mta');
  const gateway = header(pm, 'dsn-gateway');
  const arrivalDate = date(pm, 'arrival-date', warnings);
  const envid = header(pm, 'original-envelope-id');
  const returned = returnedInfo(parts);
  return {
    ...(envid === undefined || envid === '' ? {} : { envid }),
    ...(reportingMta === undefined ? {} : { reportingMta: mtaName(reportingMta) }),
    ...(receivedFrom === undefined ? {} : { receivedFromMta: mtaName(receivedFrom) }),
    ...(gateway === undefined ? {} : { dsnGateway: mtaName(gateway) }),
    ...(arrivalDate === undefined ? {} : { arrivalDate }),
    global: usedGlobal,
    outcomes: parsed.outcomes,
    ...(returned === undefined ? {} : { returned }),
    warnings,
  };
}

function returnedInfo(parts: readonly RawPart[]): ParsedDsn['returned'] {
  const part = parts.find((p) => RETURNED_PARTS.has(contentType(p.headers).type));
  if (part === undefined) return undefined;
  const type = contentType(part.headers).type;
  const { head } = splitEntity(decodeTransfer(part).toString('utf8'));
  const messageId = header(parseHeaderBlock(head).fields, 'message-id');
  return { type, ...(messageId === undefined ? {} : { messageId }) };
}
