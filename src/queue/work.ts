/**
 * One delivery pass over one queue entry — the part of the queue manager that every
 * backend shares (src/queue/port.ts): cookie work first (STATUS polls, a bigger view on 352,
 * GIVEUP at the deadline), then the due deliveries, each result committed durably before
 * the next step. A backend decides when an entry is worked on and how a new state is
 * stored (`commit`); what is due and what an answer means is src/queue/schedule.ts.
 */
import type { ClientJob } from '../core/session/index.ts';
import type { Reply } from '../core/wire/index.ts';
import type { MessageSource } from '../client/transfer.ts';
import type { Json, SmtpDeliverFn, SmtpDeliverOutcome } from './port.ts';
import type { DeliverFn, DeliverOutcome, DeliverRequest } from './queue.ts';
import {
  afterCookie,
  afterDeliver,
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
  /** The entry's message (read lazily, once per pass). */
  loadMessage(): Promise<MessageSource>;
  /** Stores a new state durably and returns what is now current. */
  commit(s: QueuedSubmission): Promise<QueuedSubmission>;
}

async function call<T>(f: () => Promise<T>): Promise<T | unknown> {
  try {
    return await f();
  } catch (e) {
    return e;
  }
}

/** Works on what of `s` is due now; returns the last committed state. */
export async function workPass(
  start: QueuedSubmission,
  ctx: WorkContext,
): Promise<QueuedSubmission> {
  let s = start;
  let message: MessageSource | undefined;
  const load = async (): Promise<MessageSource> => (message ??= await ctx.loadMessage());
  const p = ctx.retry;

  if ((s.kind ?? 'nmtp') === 'smtp') {
    for (const w of dueDeliverWork(s, ctx.now())) {
      if (w.kind !== 'deliver') continue;
      const smtp = ctx.smtpDeliver;
      const source = await load();
      const result =
        smtp === undefined
          ? new Error('no SMTP deliverer configured')
          : await call(() =>
              smtp({
                id: s.id,
                mailFrom: s.user,
                recipients: w.rcpts,
                ...(s.meta === undefined ? {} : { meta: s.meta }),
                recipientMeta: w.rcpts.map(
                  (r) => s.recipients.find((x) => x.rcpt === r)?.meta as Json | undefined,
                ),
                message: source,
              }),
            );
      s = await ctx.commit(afterDeliver(s, w.rcpts, smtpAsDeliver(result), ctx.now(), p));
    }
    return s;
  }

  for (const w of dueCookieWork(s, ctx.now())) {
    if (w.kind === 'deliver') continue;
    const domain = w.rcpt.slice(w.rcpt.lastIndexOf('@') + 1);
    const ep = { rcpt: w.rcpt, ...(w.endpoint === undefined ? {} : { endpoint: w.endpoint }) };
    const job: ClientJob = { kind: w.kind, cookie: w.cookie };
    const req: DeliverRequest = { domain, job, message: undefined, ...ep };
    const result = await call(() => ctx.deliver(req));
    const reply = isResult(result) ? result.recipients[0]?.reply : undefined;
    if (w.kind === 'status' && reply?.code === 352) {
      // "After 352, the sender sends DATA size=… digest=… cookie=<c>" (§60.10.6).
      const source = await load();
      const data: ClientJob = {
        kind: 'data-on-cookie',
        cookie: w.cookie,
        ...(await announce(source)),
      };
      const r2 = await call(() => ctx.deliver({ domain, job: data, message: source, ...ep }));
      s = await ctx.commit(afterCookie(s, w.rcpt, 'data', r2, ctx.now(), p));
    } else {
      s = await ctx.commit(afterCookie(s, w.rcpt, w.kind, result, ctx.now(), p));
    }
  }

  for (const w of dueDeliverWork(s, ctx.now())) {
    if (w.kind !== 'deliver') continue;
    const source = await load();
    const job: ClientJob = { kind: 'deliver', recipients: w.rcpts, ...(await announce(source)) };
    const result = await call(() => ctx.deliver({ domain: w.domain, job, message: source }));
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
      return { rcpt: x.rcpt, reply };
    }),
    ...(r.failure === undefined
      ? {}
      : { failure: { code: 451, enhanced: '4.4.0', params: {}, text: r.failure } }),
  };
}
