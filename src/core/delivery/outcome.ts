/**
 * The per-recipient outcome: one value shared by NMTP answers, SMTP replies and DSNs
 * (built and parsed). It follows the RFC 3464 per-recipient fields so that a DSN is a
 * rendering of a list of outcomes, and a parsed DSN is such a list again.
 */
import { NmtpError } from '../errors/index.ts';
import { statusClass, type EnhancedStatus, type StatusClass } from './status.ts';

/** RFC 3464 §2.3.3 action values. */
export type DeliveryAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
export const DELIVERY_ACTIONS: readonly DeliveryAction[] = [
  'failed',
  'delayed',
  'delivered',
  'relayed',
  'expanded',
];

export function isDeliveryAction(s: string): s is DeliveryAction {
  return (DELIVERY_ACTIONS as readonly string[]).includes(s);
}

/**
 * An address with its RFC 3464 address-type: "rfc822" for ASCII Internet addresses,
 * "utf-8" for RFC 6533 internationalised ones; other registered types are kept as given
 * (lower-cased) so a parsed report loses nothing.
 */
export interface TypedAddress {
  readonly addrType: string;
  readonly address: string;
}

/**
 * Who the outcome is about. The gateway knows a recipient by its NMTP canonical address,
 * its legacy address, or both (a legacy recipient of a message that came from NMTP has
 * only the legacy one). At least one is present.
 */
export interface RecipientId {
  readonly nmtp?: string;
  readonly legacy?: string;
  /** Address-type of the legacy address when it came from a report ("rfc822", "utf-8", ...). */
  readonly legacyType?: string;
}

/** Which protocol produced the diagnostic text: RFC 3464 diagnostic-type. */
export interface Diagnostic {
  /** "smtp", "nmtp" (written as "X-NMTP" in DSNs), or another type lower-cased ("x-postfix"). */
  readonly type: string;
  /** The remote answer, unfolded, e.g. "550 5.1.1 User unknown". */
  readonly text: string;
}

/** An NMTP deferred answer: the receiver's cookie and polling window (docs/protocol.md §60.10.5). */
export interface CookieInfo {
  readonly id: string;
  readonly minPollSeconds: number;
  readonly maxPollSeconds: number;
  readonly expires: Date;
}

export interface RecipientOutcome {
  readonly recipient: RecipientId;
  /** The ORCPT the sender gave (RFC 3461 §4.2), xtext already decoded. */
  readonly originalRecipient?: TypedAddress;
  readonly action: DeliveryAction;
  readonly status: EnhancedStatus;
  /** DNS name of the remote MTA (SMTP peer or NMTP receiver) that gave the answer. */
  readonly remoteMta?: string;
  readonly diagnostic?: Diagnostic;
  readonly lastAttempt?: Date;
  readonly willRetryUntil?: Date;
  readonly finalLogId?: string;
  /** Present while an NMTP receiver keeps the message deferred behind a cookie. */
  readonly cookie?: CookieInfo;
}

/** The status class each action must carry. */
export function expectedClass(action: DeliveryAction): StatusClass {
  switch (action) {
    case 'failed':
      return 5;
    case 'delayed':
      return 4;
    default:
      return 2;
  }
}

/**
 * Validates an outcome built by hand (the mapping functions already produce valid ones).
 * Rule of this project (docs/protocol.md §52.1): the status class agrees with the
 * action — failed ⇔ 5, delayed ⇔ 4, delivered/relayed/expanded ⇔ 2 — so a DSN never says
 * "delivered" with a failure code.
 */
export function checkOutcome(o: RecipientOutcome): RecipientOutcome {
  if (o.recipient.nmtp === undefined && o.recipient.legacy === undefined) {
    throw new NmtpError('NMTP_ERR_DSN_BAD_OUTCOME', 'outcome names no recipient');
  }
  if (!isDeliveryAction(o.action)) {
    throw new NmtpError('NMTP_ERR_DSN_BAD_OUTCOME', `unknown action ${JSON.stringify(o.action)}`);
  }
  if (statusClass(o.status) !== expectedClass(o.action)) {
    throw new NmtpError(
      'NMTP_ERR_DSN_BAD_OUTCOME',
      `status ${o.status} does not agree with action ${o.action}`,
    );
  }
  return o;
}

/** The address a report names the recipient by: legacy first (it is what the sender used). */
export function reportAddress(r: RecipientId): string {
  return r.legacy ?? r.nmtp!;
}
