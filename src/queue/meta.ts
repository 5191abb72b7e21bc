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

/**
 * `cur` with the meta of `out` (the observer's or annotate()'s answer); `cur` itself when
 * none changed. With `seen` (what the observer was shown, which may be older than `cur`:
 * an annotate() came in while it ran), only what the observer changed relative to `seen` is
 * taken, member by member, so a concurrent change of another member is not lost.
 */
export function metaFrom(
  cur: QueuedSubmission,
  out: QueuedSubmission,
  seen?: QueuedSubmission,
): QueuedSubmission {
  const take = (c: Json | undefined, o: Json | undefined, s: Json | undefined): Json | undefined =>
    seen === undefined ? o : mergeChange(c, s, o);
  const meta = take(cur.meta, out.meta, seen?.meta);
  let changed = !sameJson(cur.meta, meta);
  const recipients = cur.recipients.map((r, i) => {
    const o = out.recipients[i];
    if (o === undefined || o.rcpt !== r.rcpt) return r;
    const m = take(r.meta, o.meta, seen?.recipients[i]?.meta);
    if (sameJson(r.meta, m)) return r;
    changed = true;
    return withMeta(r, jsonCopy(m));
  });
  return changed ? withMeta({ ...cur, recipients }, jsonCopy(meta)) : cur;
}

type JsonObject = { readonly [k: string]: Json | undefined };
const isObject = (v: Json | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `cur` with the members that changed from `seen` to `out` (a shallow three-way merge). */
function mergeChange(
  cur: Json | undefined,
  seen: Json | undefined,
  out: Json | undefined,
): Json | undefined {
  if (sameJson(seen, out)) return cur;
  if (!isObject(cur) || !isObject(seen) || !isObject(out)) return out;
  const changed = new Set(
    [...Object.keys(seen), ...Object.keys(out)].filter((k) => !sameJson(seen[k], out[k])),
  );
  const merged = new Map(Object.entries(cur).filter(([k]) => !changed.has(k)));
  for (const k of changed) if (out[k] !== undefined) merged.set(k, out[k]);
  return Object.fromEntries(merged);
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
