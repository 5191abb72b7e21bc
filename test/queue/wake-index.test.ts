/**
 * The embedded queue's wake-up index (src/queue/heap.ts, src/queue/queue.ts): schedule()
 * and tick() look at what is due or to be purged, not at every entry kept — a gateway
 * keeps a day of finished entries. Shown structurally, by the number of index pairs the
 * queue looked at (`visited`), never by timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { WakeHeap } from '../../src/queue/heap.ts';
import {
  Queue,
  type DeliverOutcome,
  type DeliverRequest,
  type QueuedSubmission,
  type Timers,
} from '../../src/queue/index.ts';

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body: new Uint8Array([0x61]) },
});
const USER = 'alice@example.org';
const T0 = 1_800_000_000;
const KEEP = 3060; // the oldest finished entry is purged at T0 + 61 s
const FINISHED = 3000;

const accepted = (r: DeliverRequest): DeliverOutcome => ({
  recipients: (r.job.kind === 'deliver' ? r.job.recipients : []).map((rcpt) => ({
    rcpt,
    reply: { code: 250, enhanced: '2.0.0', params: { id: 'x' }, text: '' },
  })),
});

/** A queue directory holding `n` finished entries (as a restart finds them), done at T0-i. */
function finishedDir(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-wake-'));
  mkdirSync(join(dir, 'state'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const s: QueuedSubmission = {
      version: 1,
      id: `done-${i}`,
      user: USER,
      created: T0 - 10_000 - i,
      expires: T0 + 86400,
      size: 1,
      recipients: [
        { rcpt: 'bob@example.net', state: 'accepted', attempts: 1, polls: 0, nextAt: 0 },
      ],
      done: T0 - i,
    };
    writeFileSync(join(dir, 'state', `${s.id}.json`), JSON.stringify(s));
  }
  return dir;
}

test('the heap gives its pairs back earliest first', () => {
  const h = new WakeHeap();
  const ats = Array.from({ length: 500 }, (_, i) => (i * 7919) % 503);
  for (const [i, at] of ats.entries()) h.push({ at, id: String(i) });
  const out: number[] = [];
  for (let w = h.pop(); w !== undefined; w = h.pop()) out.push(w.at);
  assert.deepEqual(
    out,
    [...ats].sort((a, b) => a - b),
  );
  assert.equal(h.size, 0);
});

test('schedule() and tick() do not walk the finished entries kept', async () => {
  let t = T0;
  const sleeps: number[] = [];
  const timers: Timers = {
    set: (ms) => {
      sleeps.push(ms);
      return sleeps.length;
    },
    clear: () => undefined,
  };
  const q = await Queue.open({
    dir: finishedDir(FINISHED),
    deliver: async (r) => accepted(r),
    now: () => t * 1000,
    timers,
    keepDone: KEEP,
  });
  try {
    assert.equal((await q.counts()).accepted, FINISHED);
    // Nothing due: the wake-up is for the oldest finished entry's purge.
    assert.equal(sleeps.at(-1), (T0 - (FINISHED - 1) + KEEP - t) * 1000);

    q.visited.count = 0;
    await q.add({ id: 'new', user: USER, recipients: ['bob@example.net'], message });
    assert.equal(sleeps.at(-1), 0, 'the new entry is due now');
    await q.tick();
    assert.equal((await q.get('new'))?.recipients[0]?.state, 'accepted');
    // Each schedule() (after add, after the pass) and the tick looked at a handful of
    // pairs, where a scan looked at every one of the FINISHED entries.
    assert.ok(q.visited.count < 20, `looked at ${q.visited.count} pairs`);
    const c = await q.counts();
    assert.deepEqual(c, {
      pending: 0,
      deferred: 0,
      accepted: FINISHED + 1,
      rejected: 0,
      'given-up': 0,
    });

    // Purge: only the entries whose time has come, and then the next wake-up.
    t = T0 - (FINISHED - 1) + KEEP + 9; // the ten oldest expire
    q.visited.count = 0;
    await q.tick();
    assert.equal((await q.list()).length, FINISHED + 1 - 10);
    assert.equal(await q.get(`done-${FINISHED - 1}`), undefined);
    assert.ok((await q.get(`done-${FINISHED - 11}`)) !== undefined);
    assert.ok(q.visited.count < 40, `looked at ${q.visited.count} pairs`);
    assert.equal((await q.counts()).accepted, FINISHED + 1 - 10);
  } finally {
    await q.close();
  }
});
