/**
 * What a reverse-direction cookie says now (§52.6): a pure function of the queue entry
 * that carries the message to the legacy side, so every gateway process, after any
 * restart, answers STATUS the same way from the queue alone — there is no cookie store to
 * lose or to keep in step.
 *
 *   queue state of the recipient          late DSN (meta.report)   cookie (STATUS)
 *   pending / deferred (retrying)          –                        deferred
 *   accepted by the smarthost, confirm=dsn –, within confirmWindow  deferred
 *                                          –, after confirmWindow   accepted
 *   accepted, confirm=smarthost or no DSN  –                        accepted
 *   any                                    delivered/relayed/expanded  accepted
 *   any                                    failed                   rejected (its status)
 *   rejected (5xx)                         –                        rejected (the reply)
 *   given up, the sender's GIVEUP          –                        given-up
 *   given up at the queue's maximum age    –                        rejected 5.4.7 (expired)
 */
import type { CookieState } from '../../core/session/index.ts';
import type { Json } from '../../queue/port.ts';
import type { QueuedRecipient, QueuedSubmission } from '../../queue/types.ts';
import type { EntryMeta, RecipientMeta } from '../envelope.ts';

/** What a legacy DSN said about one recipient (§52.8), as stored on the entry. */
export interface ReverseReport {
  readonly action: 'delivered' | 'relayed' | 'expanded' | 'failed' | 'delayed';
  readonly status: string;
  readonly text?: string;
  /** Unix seconds the report arrived. */
  readonly at: number;
}

/** The entry's meta for this direction: the SMTP envelope plus who the NMTP sender was. */
export interface ReverseEntryMeta extends EntryMeta {
  readonly origin: 'nmtp-in';
  readonly reverse: {
    /** The client domain authenticated by HELLO: cookies are bound to it. */
    readonly client: string;
    /** The NMTP transfer's recipients (canonical), in the order of the entry's recipients. */
    readonly rcpts: readonly string[];
  };
}

export interface ReverseRecipientMeta extends RecipientMeta {
  /** Set by GIVEUP: the queue gives the recipient up instead of delivering it. */
  readonly cancel?: true;
  /** The latest legacy DSN about this recipient. */
  readonly report?: ReverseReport;
}

export interface StatePolicy {
  readonly confirm: 'dsn' | 'smarthost';
  readonly confirmWindow: number;
  readonly minPoll: number;
  readonly maxPoll: number;
}

const obj = (j: Json | undefined): Record<string, Json | undefined> | undefined =>
  typeof j === 'object' && j !== null && !Array.isArray(j)
    ? (j as Record<string, Json | undefined>)
    : undefined;

export function reverseMeta(j: Json | undefined): ReverseEntryMeta | undefined {
  const m = obj(j);
  return m?.['origin'] === 'nmtp-in' && obj(m['reverse']) !== undefined
    ? (m as unknown as ReverseEntryMeta)
    : undefined;
}

export function reverseRecipientMeta(j: Json | undefined): ReverseRecipientMeta | undefined {
  const m = obj(j);
  return m !== undefined && typeof m['legacy'] === 'string'
    ? (m as unknown as ReverseRecipientMeta)
    : undefined;
}

const ENHANCED = /^([245])\.\d{1,3}\.\d{1,3}$/;

/** The enhanced code to give for a rejection: the peer's when it is a 5.x.x, else 5.0.0. */
function permanent(code: string | undefined): string {
  const m = code === undefined ? null : ENHANCED.exec(code);
  return m !== null && m[1] === '5' ? code! : '5.0.0';
}

/** When the legacy side took the message (the 2xx), in unix seconds. */
const acceptedAt = (s: QueuedSubmission, r: QueuedRecipient): number => r.last?.at ?? s.created;

/**
 * The cookie state of recipient `index` of entry `s` at `now` (unix seconds). The NMTP
 * recipient named in answers is `meta.reverse.rcpts[index]`.
 */
export function reverseCookieState(
  s: QueuedSubmission,
  index: number,
  now: number,
  p: StatePolicy,
): CookieState {
  const meta = reverseMeta(s.meta);
  const r = s.recipients[index];
  const rcpt = meta?.reverse.rcpts[index];
  if (meta === undefined || r === undefined || rcpt === undefined) return { kind: 'unknown' };
  const rm = reverseRecipientMeta(r.meta);
  const report = rm?.report;
  if (report !== undefined && report.action !== 'delayed') {
    // "each outcome updates that recipient's cookie through cookieVerdict" (§52.6).
    return report.action === 'failed'
      ? {
          kind: 'rejected',
          rcpt,
          enhanced: permanent(report.status),
          text: report.text ?? `reported ${report.status} by the legacy side`,
        }
      : { kind: 'accepted', rcpt, id: s.id };
  }
  switch (r.state) {
    case 'accepted': {
      const confirmed =
        p.confirm === 'smarthost' ||
        r.last?.dsn === false ||
        now >= acceptedAt(s, r) + p.confirmWindow;
      if (confirmed) return { kind: 'accepted', rcpt, id: s.id };
      break;
    }
    case 'rejected':
      return {
        kind: 'rejected',
        rcpt,
        enhanced: permanent(r.last?.enhanced),
        text: (r.last?.text ?? 'refused by the legacy side').replace(/[\r\n]+/g, ' '),
      };
    case 'given-up':
      if (rm?.cancel === true) return { kind: 'given-up', rcpt };
      // The queue's maximum age passed: "when the lifetime ends the cookie turns rejected
      // (expired)" (issue 10; RFC 3463 5.4.7 "delivery time expired").
      return {
        kind: 'rejected',
        rcpt,
        enhanced: '5.4.7',
        text: `not delivered before the queue lifetime ended${r.last?.text === undefined ? '' : `: ${r.last.text}`}`.replace(
          /[\r\n]+/g,
          ' ',
        ),
      };
    default:
      break;
  }
  return {
    kind: 'deferred',
    rcpt,
    min: p.minPoll,
    max: p.maxPoll,
    expires: cookieExpiry(s, p),
  };
}

/**
 * Unix seconds after which the sender stops polling: the queue's maximum age, plus the
 * confirm window (a 2xx near the end still waits for its DSN), plus one poll.
 */
export function cookieExpiry(s: QueuedSubmission, p: StatePolicy): number {
  return s.expires + (p.confirm === 'dsn' ? p.confirmWindow : 0) + p.maxPoll;
}
