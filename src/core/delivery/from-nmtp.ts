/**
 * NMTP per-recipient answer → outcome. NMTP has no bounces: its answers after DATA are
 * accepted, rejected, or deferred behind a cookie (docs/protocol.md §60.10.5). The wire types
 * belong to the transfer protocol (issue 4); this takes the minimal structural shape so
 * that issue can pass its values straight in. Unknown kinds are temporary (docs/protocol.md §52.2 policy).
 */
import {
  STATUS_EXPIRED,
  STATUS_PERMANENT,
  STATUS_SUCCESS,
  STATUS_TEMPORARY,
  isEnhancedStatus,
  statusClass,
  type EnhancedStatus,
} from './status.ts';
import type { CookieInfo, RecipientId, RecipientOutcome } from './outcome.ts';

export type NmtpAnswer =
  | { readonly kind: 'accepted'; readonly receiverId?: string }
  | { readonly kind: 'rejected'; readonly status?: string; readonly text: string }
  | {
      readonly kind: 'deferred';
      readonly cookie: CookieInfo;
      readonly status?: string;
      readonly text?: string;
    }
  /** Anything this version does not know (a later protocol revision, a bug): temporary. */
  | { readonly kind: string; readonly status?: string; readonly text?: string };

export interface NmtpContext {
  readonly recipient: RecipientId;
  /** The NMTP receiver's host name. */
  readonly remoteMta?: string;
  readonly at: Date;
}

function text(answer: NmtpAnswer): string | undefined {
  return 'text' in answer && typeof answer.text === 'string' ? answer.text : undefined;
}

function diag(status: string | undefined, t: string | undefined): { type: string; text: string } {
  return { type: 'nmtp', text: [status, t].filter((s) => s !== undefined && s !== '').join(' ') };
}

/** Uses `given` when it is valid and of the wanted class, else the fallback. */
function pick(given: string | undefined, cls: 2 | 4 | 5, fallback: EnhancedStatus): EnhancedStatus {
  return given !== undefined && isEnhancedStatus(given) && statusClass(given) === cls
    ? given
    : fallback;
}

export function fromNmtpAnswer(answer: NmtpAnswer, ctx: NmtpContext): RecipientOutcome {
  const base = {
    recipient: ctx.recipient,
    ...(ctx.remoteMta === undefined ? {} : { remoteMta: ctx.remoteMta }),
    lastAttempt: ctx.at,
  };
  const status =
    'status' in answer && typeof answer.status === 'string' ? answer.status : undefined;
  switch (answer.kind) {
    case 'accepted': {
      // RFC 3464 §2.3.3: "relayed" = "relayed or gatewayed into an environment that does
      // not accept responsibility for generating DSNs upon successful delivery" — NMTP
      // never sends success notifications, so acceptance is "relayed", not "delivered".
      const id =
        'receiverId' in answer && typeof answer.receiverId === 'string'
          ? answer.receiverId
          : undefined;
      return {
        ...base,
        action: 'relayed',
        status: STATUS_SUCCESS,
        diagnostic: diag('accepted', id === undefined ? undefined : `id=${id}`),
        ...(id === undefined ? {} : { finalLogId: id }),
      };
    }
    case 'rejected': {
      // A rejection whose code says "temporary" is ambiguous → temporary.
      if (status !== undefined && isEnhancedStatus(status) && statusClass(status) !== 5) {
        return {
          ...base,
          action: 'delayed',
          status: pick(status, 4, STATUS_TEMPORARY),
          diagnostic: diag(status, text(answer)),
        };
      }
      return {
        ...base,
        action: 'failed',
        status: pick(status, 5, STATUS_PERMANENT),
        diagnostic: diag(status, text(answer)),
      };
    }
    case 'deferred': {
      const cookie = (answer as { cookie: CookieInfo }).cookie;
      return {
        ...base,
        action: 'delayed',
        status: pick(status, 4, STATUS_TEMPORARY),
        diagnostic: diag(status ?? 'deferred', text(answer)),
        // The receiver will keep the cookie until it expires; so will we.
        willRetryUntil: cookie.expires,
        cookie,
      };
    }
    default:
      return {
        ...base,
        action: 'delayed',
        status: STATUS_TEMPORARY,
        diagnostic: diag(
          status,
          `unknown NMTP answer kind ${JSON.stringify(answer.kind)}${text(answer) === undefined ? '' : `: ${text(answer)}`}`,
        ),
      };
  }
}

/**
 * A deferred outcome whose cookie ended without an answer (the expiry passed, or the
 * gateway sent GIVEUP): permanently failed with RFC 3463 "5.4.7 Delivery time expired".
 */
export function cookieExpired(
  o: RecipientOutcome,
  at: Date,
  reason = 'cookie expired',
): RecipientOutcome {
  // Drop the cookie and retry window: nothing is pending any more.
  const rest: RecipientOutcome = { ...o };
  delete (rest as { cookie?: unknown }).cookie;
  delete (rest as { willRetryUntil?: unknown }).willRetryUntil;
  return {
    ...rest,
    action: 'failed',
    status: STATUS_EXPIRED,
    lastAttempt: at,
    diagnostic: { type: 'nmtp', text: `${STATUS_EXPIRED} ${reason}` },
  };
}
