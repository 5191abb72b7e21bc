/**
 * The queue's decisions, without I/O: what is due, and what a reply means for a recipient
 * (docs/protocol.md §60.16). Time comes in as unix seconds; nothing here reads a clock.
 *
 * - pending: delivery attempts at growing intervals (`retryDelay`); a temporary failure
 *   whose next attempt would fall after the submission's maximum age gives the recipient
 *   up (no bounce: the status is what the user asks for).
 * - deferred: STATUS polls inside the receiver's window, starting at `min` and doubling up
 *   to `max` (§60.10.5: "no more often than every min seconds and at least every max
 *   seconds"); at the deadline (the maximum age, or the cookie's expiry if earlier) one
 *   GIVEUP ends the wait.
 */
import { NmtpError } from '../core/errors/index.ts';
import type { Reply } from '../core/wire/index.ts';
import type { DeliverOutcome } from './queue.ts';
import {
  isFinal,
  type CookieEndpoint,
  type LastResult,
  type QueuedRecipient,
  type QueuedSubmission,
} from './types.ts';

export interface RetryPolicy {
  /** Seconds before the second attempt; each later interval is `factor` times the last. */
  readonly initial: number;
  readonly factor: number;
  /** The longest interval between two attempts. */
  readonly maxInterval: number;
  /** Seconds after submission when the queue stops trying (attempts, polls). */
  readonly maxAge: number;
}

/** Postfix's spirit (minimal_backoff 300 s, maximal 4000 s, 5 days), in round numbers. */
export const DEFAULT_RETRY: RetryPolicy = {
  initial: 300,
  factor: 2,
  maxInterval: 3600,
  maxAge: 5 * 86400,
};

/** Interval after the n-th failed attempt (n ≥ 1). */
export function retryDelay(attempts: number, p: RetryPolicy): number {
  const d = p.initial * p.factor ** Math.max(0, attempts - 1);
  return Math.min(Math.ceil(d), p.maxInterval);
}

/** Interval before poll number `polls` (0 = the first): min, 2·min, 4·min … capped at max. */
export function pollDelay(polls: number, min: number, max: number): number {
  const lo = Math.max(1, min);
  return Math.max(lo, Math.min(lo * 2 ** polls, Math.max(lo, max)));
}

/** When the wait on a cookie ends: the queue's maximum age, or the cookie's expiry. */
export function deadlineOf(s: QueuedSubmission, r: QueuedRecipient): number {
  return Math.min(s.expires, r.cookieExpires ?? s.expires);
}

export type Work =
  | { readonly kind: 'deliver'; readonly domain: string; readonly rcpts: readonly string[] }
  | {
      readonly kind: 'status' | 'giveup';
      readonly rcpt: string;
      readonly cookie: string;
      readonly endpoint?: CookieEndpoint;
    };

export const domainOf = (rcpt: string): string => rcpt.slice(rcpt.lastIndexOf('@') + 1);

/** Cookie work (polls, GIVEUP) due at `now`, in recipient order. */
export function dueCookieWork(s: QueuedSubmission, now: number): Work[] {
  const out: Work[] = [];
  for (const r of s.recipients) {
    if (r.state !== 'deferred' || r.cookie === undefined || r.nextAt > now) continue;
    const kind = now >= deadlineOf(s, r) ? 'giveup' : 'status';
    out.push({
      kind,
      rcpt: r.rcpt,
      cookie: r.cookie,
      ...(r.endpoint === undefined ? {} : { endpoint: r.endpoint }),
    });
  }
  return out;
}

/** Delivery work due at `now`: the due pending recipients, one job per destination domain. */
export function dueDeliverWork(s: QueuedSubmission, now: number): Work[] {
  const byDomain = new Map<string, string[]>();
  for (const r of s.recipients) {
    if (r.state !== 'pending' || r.nextAt > now) continue;
    const d = domainOf(r.rcpt);
    byDomain.set(d, [...(byDomain.get(d) ?? []), r.rcpt]);
  }
  return [...byDomain].map(([domain, rcpts]) => ({ kind: 'deliver', domain, rcpts }));
}

/** The earliest moment something of `s` is due, or undefined when all are final. */
export function nextDue(s: QueuedSubmission): number | undefined {
  let at: number | undefined;
  for (const r of s.recipients) if (!isFinal(r)) at = Math.min(at ?? r.nextAt, r.nextAt);
  return at;
}

function lastOf(reply: Reply | undefined, now: number, e?: unknown): LastResult {
  if (reply !== undefined) {
    return {
      at: now,
      code: reply.code,
      enhanced: reply.enhanced,
      ...(reply.params.err === undefined ? {} : { err: reply.params.err }),
      ...(reply.text === '' ? {} : { text: reply.text }),
    };
  }
  if (e instanceof NmtpError) return { at: now, err: e.code, text: e.message };
  return { at: now, text: e === undefined ? 'no answer' : String(e) };
}

const num = (v: string | undefined): number | undefined =>
  v !== undefined && /^(0|[1-9][0-9]{0,12})$/.test(v) ? Number(v) : undefined;

/** A temporary failure: retry later, or give up when the next try would be too late. */
function temporary(
  s: QueuedSubmission,
  r: QueuedRecipient,
  last: LastResult,
  now: number,
  p: RetryPolicy,
): QueuedRecipient {
  if (r.state === 'deferred') {
    // A poll that got no answer: poll again later, inside the same window.
    const polls = r.polls + 1;
    const at = now + pollDelay(polls, r.min ?? 60, r.max ?? 3600);
    return { ...r, polls, nextAt: Math.min(at, deadlineOf(s, r)), last };
  }
  const attempts = r.attempts + 1;
  const at = now + retryDelay(attempts, p);
  if (at > s.expires) return { ...r, attempts, state: 'given-up', last };
  return { ...r, attempts, state: 'pending', nextAt: at, last };
}

/**
 * What one reply means for one recipient: after the data (§60.10.5), to STATUS or GIVEUP
 * (§60.10.6), or the RCPT answer that refused it (§60.10.2).
 */
export function applyReply(
  s: QueuedSubmission,
  r: QueuedRecipient,
  reply: Reply,
  now: number,
  p: RetryPolicy,
  endpoint?: CookieEndpoint,
): QueuedRecipient {
  const last = lastOf(reply, now);
  const counted = r.state === 'pending' ? { attempts: r.attempts + 1 } : {};
  // A fresh recipient record (no stale cookie or id), but the queue user's data stays.
  const clean = {
    rcpt: r.rcpt,
    attempts: r.attempts,
    polls: r.polls,
    nextAt: r.nextAt,
    ...counted,
    last,
    ...(r.meta === undefined ? {} : { meta: r.meta }),
  };
  if (reply.code === 250) {
    if (reply.params.state === 'given-up') return { ...clean, state: 'given-up' };
    if (reply.params.state === 'rejected') return { ...clean, state: 'rejected' };
    return {
      ...clean,
      state: 'accepted',
      ...(reply.params.id === undefined ? {} : { id: reply.params.id }),
    };
  }
  if (reply.code === 350) {
    // Deferred: "poll with STATUS no more often than every min seconds and at least every
    // max seconds …, and stops at expires" (§60.10.5).
    const cookie = reply.params.cookie ?? r.cookie;
    if (cookie === undefined) return temporary(s, r, last, now, p);
    const min = num(reply.params.min) ?? r.min ?? 60;
    const max = num(reply.params.max) ?? r.max ?? 3600;
    const cookieExpires = num(reply.params.expires) ?? r.cookieExpires ?? s.expires;
    const polls = r.state === 'deferred' && r.cookie === cookie ? r.polls + 1 : 0;
    const next: QueuedRecipient = {
      ...clean,
      state: 'deferred',
      polls,
      cookie,
      min,
      max,
      cookieExpires,
      nextAt: 0,
      ...((endpoint ?? r.endpoint) === undefined ? {} : { endpoint: endpoint ?? r.endpoint! }),
    };
    return { ...next, nextAt: Math.min(now + pollDelay(polls, min, max), deadlineOf(s, next)) };
  }
  if (reply.code >= 500) {
    if (reply.params.err === 'NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN') {
      // The receiver does not know the cookie before its expiry: it kept nothing for this
      // recipient, so the message is delivered again rather than lost.
      return { ...clean, state: 'pending', polls: 0, nextAt: now };
    }
    return { ...clean, state: 'rejected' };
  }
  // 4xx, a 351 redirect this deliver function did not follow, or anything unexpected.
  return temporary(s, r, last, now, p);
}

function replace(s: QueuedSubmission, r: QueuedRecipient): QueuedSubmission {
  return { ...s, recipients: s.recipients.map((x) => (x.rcpt === r.rcpt ? r : x)) };
}

/**
 * Gives up every recipient whose queue-user data says `cancel: true` and that is not final
 * yet (the reverse gateway's GIVEUP, §52.6): it is not delivered any more.
 */
export function applyCancels(s: QueuedSubmission, now: number): QueuedSubmission {
  if (!s.recipients.some((r) => !isFinal(r) && isCancelled(r))) return s;
  const recipients = s.recipients.map((r) =>
    !isFinal(r) && isCancelled(r)
      ? { ...r, state: 'given-up' as const, last: { at: now, text: 'given up by the sender' } }
      : r,
  );
  return finish({ ...s, recipients }, now);
}

function isCancelled(r: QueuedRecipient): boolean {
  const m = r.meta;
  return (
    typeof m === 'object' && m !== null && !Array.isArray(m) && 'cancel' in m && m.cancel === true
  );
}

function finish(s: QueuedSubmission, now: number): QueuedSubmission {
  return s.done === undefined && s.recipients.every(isFinal) ? { ...s, done: now } : s;
}

/** Records a delivery job's result (or the error that prevented it) for its recipients. */
export function afterDeliver(
  s: QueuedSubmission,
  rcpts: readonly string[],
  result: DeliverOutcome | unknown,
  now: number,
  p: RetryPolicy,
): QueuedSubmission {
  const job = isOutcome(result) ? result : undefined;
  let out = s;
  for (const rcpt of rcpts) {
    const r = out.recipients.find((x) => x.rcpt === rcpt);
    if (r === undefined) continue;
    const answer = job?.recipients.find((x) => x.rcpt === rcpt);
    const next =
      answer !== undefined
        ? applyReply(out, r, answer.reply, now, p, answer.endpoint ?? job!.endpoint)
        : // No answer for this recipient: the session failed (or never started) first.
          temporary(out, r, failureOf(job, result, now), now, p);
    // What an SMTP answer says besides its reply (smtpAsDeliver, work.ts): kept with it. It
    // travels beside the reply, not in its parameters: "A client MUST ignore reply
    // parameters it does not know" (§60.6), so an NMTP receiver's cannot set it.
    const smtp = answer?.smtp;
    out = replace(
      out,
      smtp === undefined || next.last === undefined
        ? next
        : { ...next, last: { ...next.last, ...smtp } },
    );
  }
  return finish(out, now);
}

/** Records a STATUS, GIVEUP or data-on-cookie result for one deferred recipient. */
export function afterCookie(
  s: QueuedSubmission,
  rcpt: string,
  op: 'status' | 'giveup' | 'data',
  result: DeliverOutcome | unknown,
  now: number,
  p: RetryPolicy,
): QueuedSubmission {
  const r = s.recipients.find((x) => x.rcpt === rcpt);
  if (r === undefined || r.state !== 'deferred') return s;
  const job = isOutcome(result) ? result : undefined;
  const reply = job?.recipients[0]?.reply;
  let next: QueuedRecipient;
  if (op === 'giveup') {
    // "the sender knows what it gave up" (§60.10.6): a decision that raced the GIVEUP
    // (accepted, rejected) stands; anything else — given up, unknown, no answer — is given-up.
    const decided = reply !== undefined && reply.code === 250 && reply.params.state !== 'given-up';
    const rejected = reply !== undefined && reply.params.state === 'rejected';
    next =
      decided || rejected
        ? applyReply(s, r, reply!, now, p)
        : {
            ...r,
            state: 'given-up',
            last: reply !== undefined ? lastOf(reply, now) : failureOf(job, result, now),
          };
  } else if (reply === undefined) {
    next = temporary(s, r, failureOf(job, result, now), now, p);
  } else if (op === 'data' && reply.code === 503) {
    // DATA on a cookie that no longer waits for a view (decided meanwhile, §60.10.6): not an
    // answer about the recipient; the next STATUS tells.
    next = temporary(s, r, lastOf(reply, now), now, p);
  } else {
    next = applyReply(s, r, reply, now, p);
  }
  return finish(replace(s, next), now);
}

function isOutcome(x: unknown): x is DeliverOutcome {
  return typeof x === 'object' && x !== null && 'recipients' in x;
}

function failureOf(job: DeliverOutcome | undefined, result: unknown, now: number): LastResult {
  if (job === undefined) return lastOf(undefined, now, result);
  const f = job.failure;
  if (f === undefined) return lastOf(undefined, now);
  if (f === 'timeout' || f === 'closed') return { at: now, text: f };
  if (f instanceof NmtpError) return lastOf(undefined, now, f);
  return lastOf(f, now);
}
