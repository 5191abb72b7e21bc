/**
 * The delivery log: one line and one metric per change of a recipient's delivery state
 * (Postfix's "status=sent / deferred / bounced" lines), from the queue's observer. Which
 * state was last logged is kept in the recipient's meta (`logged`), so a restart or a
 * second process does not log a change twice, and the logger needs no memory of its own.
 *
 * `composeObservers` runs several observers in turn (this one, then the DSN service), each
 * seeing what the previous one stored.
 */
import { isErrorCode } from '../core/errors/index.ts';
import type { Json, QueueObserver } from '../queue/port.ts';
import type { QueuedRecipient, QueuedSubmission } from '../queue/types.ts';
import type { GatewayLog } from './observe/log.ts';
import type { Metrics } from './observe/metrics.ts';

export interface OutcomeLogOptions {
  readonly log: GatewayLog;
  readonly metrics?: Metrics;
  /** Unix milliseconds now; default Date.now. */
  readonly now?: () => number;
}

/** The recipient's state as logged: the state, its attempts and polls (a retry is news). */
const mark = (r: QueuedRecipient): string => `${r.state}/${r.attempts}/${r.polls}`;

function loggedOf(meta: Json | undefined): string | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  const v = (meta as { readonly logged?: Json }).logged;
  return typeof v === 'string' ? v : undefined;
}

function withLogged(meta: Json | undefined, logged: string): Json {
  const base = typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? meta : {};
  return { ...base, logged };
}

export function createOutcomeLog(o: OutcomeLogOptions): QueueObserver {
  const now = o.now ?? Date.now;
  return async (s) => {
    let changed = false;
    const recipients = s.recipients.map((r) => {
      const m = mark(r);
      // A fresh entry's recipients are not news (the queue.added line said so), and leaving
      // them unmarked spares a state write per message.
      if (loggedOf(r.meta) === m || (r.state === 'pending' && r.attempts === 0)) return r;
      report(s, r);
      changed = true;
      return { ...r, meta: withLogged(r.meta, m) };
    });
    if (!changed) return undefined;
    return { ...s, recipients };
  };

  function report(s: QueuedSubmission, r: QueuedRecipient): void {
    const delay = Math.max(0, Math.floor(now() / 1000) - s.created);
    const last = r.last;
    const reply = {
      ...(last?.code === undefined ? {} : { code: last.code }),
      ...(last?.enhanced === undefined ? {} : { enhanced: last.enhanced }),
      ...(last?.text === undefined ? {} : { text: last.text }),
      ...(last?.err !== undefined && isErrorCode(last.err) ? { err: last.err } : {}),
    };
    const base = { queueId: s.id, rcpt: r.rcpt };
    const relay =
      r.endpoint === undefined ? {} : { relay: `${r.endpoint.host}:${r.endpoint.port}` };
    if ((s.kind ?? 'nmtp') === 'smtp') {
      // The server that gave the answer (the smarthost, or the MX host that answered).
      const by = last?.relay === undefined ? {} : { relay: last.relay };
      switch (r.state) {
        case 'accepted':
          o.log.event('smtp-out.delivered', {
            ...base,
            ...by,
            ...reply,
            attempts: r.attempts,
            delay,
          });
          o.metrics?.delivered('smtp', 'delivered', delay);
          return;
        case 'rejected':
          o.log.event('smtp-out.rejected', {
            ...base,
            ...by,
            ...reply,
            attempts: r.attempts,
            delay,
          });
          o.metrics?.delivered('smtp', 'rejected', delay);
          return;
        case 'given-up':
          o.log.event('smtp-out.expired', { ...base, delay });
          o.metrics?.delivered('smtp', 'expired', delay);
          return;
        default:
          o.log.event('smtp-out.deferred', {
            ...base,
            ...by,
            ...reply,
            attempts: r.attempts,
            nextAt: r.nextAt,
          });
          o.metrics?.delivered('smtp', 'deferred');
          return;
      }
    }
    switch (r.state) {
      case 'accepted':
        o.log.event('nmtp.delivered', {
          ...base,
          ...relay,
          ...(r.id === undefined ? {} : { remoteId: r.id }),
          attempts: r.attempts,
          delay,
        });
        o.metrics?.delivered('nmtp', 'accepted', delay);
        return;
      case 'rejected':
        o.log.event('nmtp.rejected', { ...base, ...relay, ...reply, attempts: r.attempts, delay });
        o.metrics?.delivered('nmtp', 'rejected', delay);
        return;
      case 'given-up': {
        // The queue gives up at its maximum age: with a cookie, by GIVEUP; without, because
        // no attempt got through in time.
        const cookie = r.cookie === undefined ? {} : { cookie: r.cookie };
        if (r.cookie !== undefined) {
          o.log.event('nmtp.given-up', { ...base, ...relay, ...cookie, delay });
          o.metrics?.delivered('nmtp', 'given-up', delay);
        } else {
          o.log.event('nmtp.expired', { ...base, delay });
          o.metrics?.delivered('nmtp', 'expired', delay);
        }
        return;
      }
      case 'deferred':
        if (r.polls > 0) {
          o.log.event('nmtp.polled', {
            ...base,
            ...relay,
            state: r.state,
            ...(r.cookie === undefined ? {} : { cookie: r.cookie }),
            polls: r.polls,
          });
          return;
        }
        o.log.event('nmtp.deferred', {
          ...base,
          ...relay,
          ...(r.cookie === undefined ? {} : { cookie: r.cookie }),
          nextAt: r.nextAt,
        });
        o.metrics?.delivered('nmtp', 'deferred');
        return;
      default:
        o.log.event('nmtp.tempfail', { ...base, ...reply, attempts: r.attempts, nextAt: r.nextAt });
        o.metrics?.delivered('nmtp', 'tempfail');
    }
  }
}

/** Observers run in turn; each sees the entry with what the ones before it returned. */
export function composeObservers(...observers: readonly QueueObserver[]): QueueObserver {
  return async (s) => {
    let cur = s;
    for (const f of observers) cur = (await f(cur)) ?? cur;
    return cur === s ? undefined : cur;
  };
}
