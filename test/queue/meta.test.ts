/**
 * How a queue user's change of meta is taken (src/queue/meta.ts): an observer shown an
 * older state must not undo an annotate() that came in while it ran (a lost update found
 * by the reverse gateway's test: the delivery log's marks erased a DSN report).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshEntry, metaFrom } from '../../src/queue/meta.ts';
import type { Json } from '../../src/queue/port.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';

const base = freshEntry(
  {
    id: 'e1',
    user: 'u@example.org',
    recipients: ['a@example.net', 'b@example.net'],
    meta: { origin: 'x', n: 1 },
    recipientMeta: [{ legacy: 'a@example.net' }, { legacy: 'b@example.net' }],
  },
  10,
  1000,
  86400,
);

const withRcptMeta = (
  s: QueuedSubmission,
  i: number,
  m: Record<string, Json>,
): QueuedSubmission => ({
  ...s,
  recipients: s.recipients.map((r, j) =>
    j === i ? { ...r, meta: { ...(r.meta as object), ...m } } : r,
  ),
});

test('without `seen`, the answer replaces the meta (annotate under the lock)', () => {
  const out = withRcptMeta(base, 0, { logged: true });
  const next = metaFrom(base, out);
  assert.deepEqual(next.recipients[0]?.meta, { legacy: 'a@example.net', logged: true });
});

test('with `seen`, a member another writer added meanwhile is kept', () => {
  const seen = base;
  // annotate() meanwhile: a report on recipient 0.
  const cur = withRcptMeta(base, 0, { report: { action: 'failed' } });
  // The observer, shown `seen`, marks recipient 0 logged.
  const out = withRcptMeta(seen, 0, { logged: true });
  const next = metaFrom(cur, out, seen);
  assert.deepEqual(next.recipients[0]?.meta, {
    legacy: 'a@example.net',
    report: { action: 'failed' },
    logged: true,
  });
  assert.deepEqual(next.recipients[1]?.meta, { legacy: 'b@example.net' });
});

test('with `seen`, a member the answer removed is removed, and an unchanged answer changes nothing', () => {
  const seen = { ...base, meta: { origin: 'x', n: 1, hold: 5 } };
  const cur = { ...seen, meta: { origin: 'x', n: 2, hold: 5 } };
  const out = { ...seen, meta: { origin: 'x', n: 1 } };
  assert.deepEqual(metaFrom(cur, out, seen).meta, { origin: 'x', n: 2 });
  assert.equal(metaFrom(cur, seen, seen), cur);
});
