/**
 * NMTP → SMTP direction: a legacy DSN (or SMTP reply) about a message that an NMTP sender
 * handed to the gateway updates the cookie the gateway answers STATUS with. NMTP senders
 * never get a bounce message; they poll (docs/protocol.md §52.6).
 */
import type { RecipientOutcome } from './outcome.ts';

/** What the gateway's cookie for this recipient now says to the polling NMTP sender. */
export type CookieVerdict =
  /** Final success: STATUS answers accepted. */
  | { readonly state: 'accepted' }
  /** Final failure: STATUS answers rejected with this code and text. */
  | { readonly state: 'rejected'; readonly status: string; readonly text: string }
  /** Still in progress: keep the cookie; the retry window may move. */
  | { readonly state: 'deferred'; readonly status: string; readonly until?: Date };

export function cookieVerdict(o: RecipientOutcome): CookieVerdict {
  switch (o.action) {
    case 'delivered':
    case 'relayed':
    case 'expanded':
      // relayed/expanded: the legacy world took responsibility and will not tell more;
      // from the NMTP sender's view the gateway's job is done.
      return { state: 'accepted' };
    case 'failed':
      return { state: 'rejected', status: o.status, text: o.diagnostic?.text ?? o.status };
    default:
      return {
        state: 'deferred',
        status: o.status,
        ...(o.willRetryUntil === undefined ? {} : { until: o.willRetryUntil }),
      };
  }
}
