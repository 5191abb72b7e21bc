/**
 * The queue user's data on entries (src/queue/port.ts `meta`): how an observer's or
 * annotate()'s answer is taken — its meta only, copied as JSON stores it — shared by every
 * backend.
 */
import { NmtpError } from '../core/errors/index.ts';
import type { Json, NewEntry } from './port.ts';
import type { QueuedRecipient, QueuedSubmission } from './types.ts';

/** A JSON value as stored and read back (undefined members dropped, a fresh copy). */
export function jsonCopy(v: Json | undefined): Json | undefined {
  return v === undefined ? undefined : (JSON.parse(JSON.stringify(v)) as Json);
}

const sameJson = (a: Json | undefined, b: Json | undefined): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

/** `x` with `meta` (none when undefined); `x` itself when it already has it. */
export function withMeta<T extends { readonly meta?: Json }>(x: T, meta: Json | undefined): T {
  if (x.meta === meta) return x;
  const out: { meta?: Json } = { ...x };
  if (meta === undefined) delete out.meta;
  else out.meta = meta;
  return out as T;
}

/** `cur` with the meta of `out` (the observer's answer); `cur` itself when none changed. */
export function metaFrom(cur: QueuedSubmission, out: QueuedSubmission): QueuedSubmission {
  let changed = !sameJson(cur.meta, out.meta);
  const recipients = cur.recipients.map((r, i) => {
    const o = out.recipients[i];
    if (o === undefined || o.rcpt !== r.rcpt || sameJson(r.meta, o.meta)) return r;
    changed = true;
    return withMeta(r, jsonCopy(o.meta));
  });
  return changed ? withMeta({ ...cur, recipients }, jsonCopy(out.meta)) : cur;
}

/**
 * A new entry's first state: every recipient pending and due `now`, the user's data stored
 * as JSON stores it (so it reads back the same before and after a restart).
 */
export function freshEntry(
  n: NewEntry,
  size: number,
  now: number,
  maxAge: number,
): QueuedSubmission {
  const rm = n.recipientMeta;
  if (rm !== undefined && rm.length !== n.recipients.length) {
    throw new NmtpError(
      'NMTP_ERR_TRANSPORT_LOCAL',
      'recipientMeta must have one item per recipient',
    );
  }
  return {
    version: 1,
    id: n.id,
    user: n.user,
    created: now,
    expires: now + maxAge,
    size,
    recipients: n.recipients.map((rcpt, i) =>
      withMeta<QueuedRecipient>(
        { rcpt, state: 'pending', attempts: 0, polls: 0, nextAt: now },
        jsonCopy(rm?.[i]),
      ),
    ),
    ...(n.kind === undefined ? {} : { kind: n.kind }),
    ...(n.meta === undefined ? {} : { meta: jsonCopy(n.meta)! }),
  };
}
