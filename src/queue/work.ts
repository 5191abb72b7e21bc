/**
 * One delivery pass over one queue entry — the part of the queue manager that every
 * backend shares (src/queue/port.ts): cookie work first (STATUS polls, a bigger view on 352,
 * GIVEUP at the deadline), then the due deliveries, each result committed durably before
 * the next step. A backend decides when an entry is worked on and how a new state is
 * stored (`commit`); what is due and what an answer means is src/queue/schedule.ts. An
 * entry of kind 'smtp' has no cookies: toward the smarthost its due recipients go in one
 * SMTP transaction, whatever their domains; toward MX hosts (`smtpRoute: 'mx'`) one per
 * recipient domain, each inside that domain's limit.
 *
 * Each transfer or SMTP job runs inside the per-destination limit (src/queue/limit.ts) when
 * the context has one: a pass holds its backend's active-window slot and at most one
 * destination slot at a time.
 */
import type { ClientJob } from '../core/session/index.ts';
import type { Reply } from '../core/wire/index.ts';
import type { MessageSource } from '../client/transfer.ts';
import type { Json, SmtpDeliverFn, SmtpDeliverOutcome, SmtpRoute } from './port.ts';
import { SMARTHOST, smtpDestination, type DestinationLimiter } from './limit.ts';
import type { DeliverFn, DeliverOutcome, DeliverRequest } from './queue.ts';
import {
  afterCookie,
  afterDeliver,
  applyCancels,
  dueCookieWork,
  dueDeliverWork,
  type RetryPolicy,
} from './schedule.ts';
import type { QueuedSubmission } from './types.ts';

export interface WorkContext {
  readonly deliver: DeliverFn;
  readonly smtpDeliver?: SmtpDeliverFn;
  readonly retry: RetryPolicy;
  /** Unix seconds now. */
  now(): number;
  /**
   * The entry's message (read lazily, once per pass), as its kind needs it: a framed
   * message for 'nmtp', the legacy octets (`full` view only) for 'smtp' — see
   * `entryFileSource` / `entryBytesSource` in src/queue/source.ts.
   */
  loadMessage(): Promise<MessageSource>;
  /**
   * Stores a new state durably and returns what is now current (the backend may have merged
   * in a concurrent change: the observer's meta, a retry). It may throw to end the pass
   * (the entry was deleted meanwhile); the pass then stops at once.
   */
  commit(s: QueuedSubmission): Promise<QueuedSubmission>;
  /** Jobs per destination in this process (default: no limit beyond the active window). */
  readonly limiter?: DestinationLimiter;
  /** Where 'smtp' entries go (QueueBackendOptions.smtpRoute); default the smarthost. */
  readonly smtpRoute?: SmtpRoute;
}

/** Runs one job inside its destination's limit; an error is the job's (temporary) result. */
async function call<T>(
  ctx: WorkContext,
  destination: string,
  f: () => Promise<T>,
): Promise<T | unknown> {
  const guarded = async (): Promise<T | unknown> => {
    try {
      return await f();
    } catch (e) {
      return e;
    }
  };
  return ctx.limiter === undefined ? guarded() : ctx.limiter.run(destination, guarded);
}

/**
 * Works on what of `s` is due now; returns the last committed state. Reading the message
 * is part of the job that needs it: a message file that cannot be read or decoded is that
 * job's temporary failure (retried, given up at the maximum age), never a pass that fails
 * again at once.
 */
export async function workPass(
  start: QueuedSubmission,
  ctx: WorkContext,
): Promise<QueuedSubmission> {
  let s = start;
  let message: MessageSource | undefined;
  const load = async (): Promise<MessageSource> => (message ??= await ctx.loadMessage());
  const p = ctx.retry;

  if ((s.kind ?? 'nmtp') === 'smtp') {
    // A recipient the queue's user cancelled (the NMTP sender's GIVEUP) is not delivered.
    const cancelled = applyCancels(s, ctx.now());
    if (cancelled !== s) s = await ctx.commit(cancelled);
    // Toward the smarthost, one SMTP transaction for every due recipient, whatever its
    // domain: they all go to one server. Toward MX hosts, one per recipient domain, each in
    // its own domain's limit, so that a slow domain holds its own slots and not the rest's.
    const work = dueDeliverWork(s, ctx.now()).flatMap((w) => (w.kind === 'deliver' ? [w] : []));
    const jobs =
      ctx.smtpRoute === 'mx'
        ? work.map((w) => ({ destination: smtpDestination(w.domain), rcpts: w.rcpts }))
        : [{ destination: SMARTHOST, rcpts: work.flatMap((w) => w.rcpts) }];
    const smtp = ctx.smtpDeliver;
    for (const { destination, rcpts } of jobs) {
      if (rcpts.length === 0) continue;
      const entry = s;
      const result = await call(ctx, destination, async () => {
        if (smtp === undefined) throw new Error('no SMTP deliverer configured');
        return smtp({
          id: entry.id,
          mailFrom: entry.user,
          recipients: rcpts,
          ...(entry.meta === undefined ? {} : { meta: entry.meta }),
          recipientMeta: rcpts.map(
            (r) => entry.recipients.find((x) => x.rcpt === r)?.meta as Json | undefined,
          ),
          message: await load(),
        });
      });
      s = await ctx.commit(afterDeliver(s, rcpts, smtpAsDeliver(result), ctx.now(), p));
    }
    return s;
  }

  for (const w of dueCookieWork(s, ctx.now())) {
    if (w.kind === 'deliver') continue;
    const domain = w.rcpt.slice(w.rcpt.lastIndexOf('@') + 1);
    const ep = { rcpt: w.rcpt, ...(w.endpoint === undefined ? {} : { endpoint: w.endpoint }) };
    const job: ClientJob = { kind: w.kind, cookie: w.cookie };
    const req: DeliverRequest = { domain, job, message: undefined, ...ep };
    const result = await call(ctx, domain, () => ctx.deliver(req));
    const reply = isResult(result) ? result.recipients[0]?.reply : undefined;
    if (w.kind === 'status' && reply?.code === 352) {
      // "After 352, the sender sends DATA size=… digest=… cookie=<c>" (§60.10.6).
      const r2 = await call(ctx, domain, async () => {
        const source = await load();
        const data: ClientJob = {
          kind: 'data-on-cookie',
          cookie: w.cookie,
          ...(await announce(source)),
        };
        return ctx.deliver({ domain, job: data, message: source, ...ep });
      });
      s = await ctx.commit(afterCookie(s, w.rcpt, 'data', r2, ctx.now(), p));
    } else {
      s = await ctx.commit(afterCookie(s, w.rcpt, w.kind, result, ctx.now(), p));
    }
  }

  for (const w of dueDeliverWork(s, ctx.now())) {
    if (w.kind !== 'deliver') continue;
    const result = await call(ctx, w.domain, async () => {
      const source = await load();
      const job: ClientJob = { kind: 'deliver', recipients: w.rcpts, ...(await announce(source)) };
      return ctx.deliver({ domain: w.domain, job, message: source });
    });
    s = await ctx.commit(afterDeliver(s, w.rcpts, result, ctx.now(), p));
  }
  return s;
}

/** What DATA announces (§60.10.4), from one streaming pass over the file. */
async function announce(
  source: MessageSource,
): Promise<{ size: number; digest: string; signers: readonly string[] }> {
  const { size, digest, signers } = await source.layout();
  return { size, digest, signers };
}

function isResult(x: unknown): x is DeliverOutcome {
  return typeof x === 'object' && x !== null && 'recipients' in x;
}

/**
 * SMTP answers in the schedule's terms: a 2xx is accepted, a 5xx rejected, anything else
 * (4xx, no answer, an error) temporary — the same reading `applyReply` gives NMTP replies,
 * without cookies (an SMTP peer never defers behind one).
 */
export function smtpAsDeliver(result: SmtpDeliverOutcome | unknown): DeliverOutcome | unknown {
  if (typeof result !== 'object' || result === null || !('recipients' in result)) return result;
  const r = result as SmtpDeliverOutcome;
  return {
    recipients: r.recipients.map((x) => {
      const cls = Math.floor(x.code / 100);
      // 250 with no state= is "accepted" to applyReply; 2xx other than 250 are successes too.
      const reply: Reply = {
        code: cls === 2 ? 250 : x.code >= 500 && x.code <= 599 ? x.code : 450,
        enhanced: x.enhanced ?? `${cls === 2 || cls === 5 ? cls : 4}.0.0`,
        params: {},
        text: `${x.code} ${x.text}`.trim(),
      };
      const smtp = {
        ...(x.dsn === undefined ? {} : { dsn: x.dsn }),
        ...(x.relay === undefined ? {} : { relay: x.relay }),
      };
      return { rcpt: x.rcpt, reply, ...(Object.keys(smtp).length === 0 ? {} : { smtp }) };
    }),
    ...(r.failure === undefined
      ? {}
      : { failure: { code: 451, enhanced: '4.4.0', params: {}, text: r.failure } }),
  };
}
