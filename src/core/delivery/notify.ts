/**
 * RFC 3461 NOTIFY semantics: which outcomes turn into a DSN for the sender.
 *
 *   NOTIFY=NEVER            → no DSN at all
 *   NOTIFY=SUCCESS          → delivered, relayed, expanded
 *   NOTIFY=FAILURE          → failed
 *   NOTIFY=DELAY            → delayed
 *   NOTIFY absent           → as FAILURE,DELAY (the RFC 3461 §4.1 default this gateway uses)
 */
import { NmtpError } from '../errors/index.ts';
import type { DeliveryAction, RecipientOutcome } from './outcome.ts';

export type NotifyCondition = 'SUCCESS' | 'FAILURE' | 'DELAY';
/** `'NEVER'`, or a non-empty set of conditions. */
export type Notify = 'NEVER' | ReadonlySet<NotifyCondition>;

export const DEFAULT_NOTIFY: Notify = new Set<NotifyCondition>(['FAILURE', 'DELAY']);

/**
 * Parses the ESMTP NOTIFY value. RFC 3461 §4.1: notify-esmtp-value = "NEVER" /
 * 1#notify-list-element, notify-list-element = "SUCCESS" / "FAILURE" / "DELAY";
 * "NEVER" MUST NOT be combined with another keyword. Keywords are case-insensitive.
 */
export function parseNotify(value: string): Notify {
  const words = value.split(',').map((w) => w.trim().toUpperCase());
  if (words.length === 1 && words[0] === 'NEVER') return 'NEVER';
  const set = new Set<NotifyCondition>();
  for (const w of words) {
    if (w !== 'SUCCESS' && w !== 'FAILURE' && w !== 'DELAY') {
      throw new NmtpError('NMTP_ERR_DSN_BAD_FIELD', `bad NOTIFY value ${JSON.stringify(value)}`);
    }
    set.add(w);
  }
  return set;
}

/** The NOTIFY condition an action answers to. */
export function conditionOf(action: DeliveryAction): NotifyCondition {
  if (action === 'failed') return 'FAILURE';
  if (action === 'delayed') return 'DELAY';
  return 'SUCCESS';
}

/** Whether an outcome for a recipient with this NOTIFY value is reported in a DSN. */
export function wantsDsn(action: DeliveryAction, notify: Notify | undefined): boolean {
  const n = notify ?? DEFAULT_NOTIFY;
  if (n === 'NEVER') return false;
  return n.has(conditionOf(action));
}

/** A recipient's outcome together with the NOTIFY parameter given for it at RCPT time. */
export interface NotifiedOutcome {
  readonly outcome: RecipientOutcome;
  readonly notify?: Notify;
}

/** The outcomes that belong in a DSN, in input order. Empty means: send no DSN. */
export function reportable(entries: readonly NotifiedOutcome[]): RecipientOutcome[] {
  return entries.filter((e) => wantsDsn(e.outcome.action, e.notify)).map((e) => e.outcome);
}
