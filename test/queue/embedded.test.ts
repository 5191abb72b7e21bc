/**
 * What the embedded queue does beyond the port's contract (test/queue/contract.ts), with a
 * manual clock and tick(): a retry during a pass is merged into its commits; an observer
 * may delete or retry its own entry mid-pass without deadlock, and may change meta only;
 * a deleted entry's id stays taken until its pass ends; recovery observations come after
 * open() returns; an unreadable message is a temporary failure, not a pass that fails
 * again at once; addFile from another file system; closed means closed. Also the two
 * small parts the backends share: the per-destination limiter and legacy message sources.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import type { Reply } from '../../src/core/wire/index.ts';
import {
  DestinationLimiter,
  Queue,
  rawBytesSource,
  rawFileSource,
  type DeliverOutcome,
  type DeliverRequest,
} from '../../src/queue/index.ts';
import type { QueueObserver } from '../../src/queue/port.ts';
import { eventually } from '../support/eventually.ts';

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body: new Uint8Array([0x61]) },
});
const USER = 'alice@example.org';
const T0 = 1_800_000_000;
const dirOf = (): string => mkdtempSync(join(tmpdir(), 'nmtp-queue-emb-'));

function clock(): { now: () => number; advance: (s: number) => void } {
  let t = T0;
  return { now: () => t * 1000, advance: (s) => void (t += s) };
}

const reply = (code: number, params: Record<string, string> = {}): Reply => ({
  code,
  enhanced: `${String(code)[0]}.0.0`,
  params,
  text: '',
});
const accepted = (r: DeliverRequest): DeliverOutcome => ({
  recipients: (r.job.kind === 'deliver' ? r.job.recipients : [r.rcpt!]).map((rcpt) => ({
    rcpt,
    reply: reply(250, { rcpt, id: `id-${rcpt}` }),
  })),
});

/** A promise with its resolve function. */
function later<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test('a retry during a pass: the pass keeps its result, the others become due now', async () => {
  const c = clock();
  const held = later<DeliverOutcome>();
  const started = later();
  let up = false;
  const deliver = async (r: DeliverRequest): Promise<DeliverOutcome> => {
    if (r.domain === 'a.example') {
      started.resolve();
      return held.promise;
    }
    if (!up) throw new Error('unreachable');
    return accepted(r);
  };
  const q = await Queue.open({ dir: dirOf(), deliver, now: c.now, timers: false });
  // b.example is failed first (one attempt, the next an hour away), then a.example holds.
  await q.add({ id: 'm', user: USER, recipients: ['x@b.example', 'y@a.example'], message });
  await q.add({ id: 'm2', user: USER, recipients: ['z@b.example'], message });
  const pass = q.tick();
  await started.promise;
  assert.equal((await q.get('m'))!.recipients[0]!.attempts, 1);
  c.advance(10);
  up = true;
  assert.equal(await q.retry('m'), true);
  assert.equal((await q.get('m'))!.recipients[0]!.nextAt, T0 + 10, 'written at once');
  held.resolve(
    accepted({
      domain: 'a.example',
      job: { kind: 'deliver', recipients: ['y@a.example'], size: 0, digest: '', signers: [] },
      message: undefined,
    }),
  );
  await pass;
  const s = (await q.get('m'))!;
  assert.deepEqual(
    s.recipients.map((r) => [r.state, r.nextAt]),
    [
      ['pending', T0 + 10],
      ['accepted', T0],
    ],
  );
  await q.tick();
  assert.deepEqual(
    (await q.get('m'))!.recipients.map((r) => r.state),
    ['accepted', 'accepted'],
  );
  // The other entry was not retried: still an hour away.
  assert.equal((await q.get('m2'))!.recipients[0]!.state, 'pending');
  await q.close();
});

test('an observer may delete or retry its own entry mid-pass; it changes meta only', async () => {
  const dir = dirOf();
  const c = clock();
  const calls: DeliverRequest[] = [];
  const deliver = async (r: DeliverRequest): Promise<DeliverOutcome> => {
    calls.push(r);
    return r.domain === 'slow.example'
      ? {
          recipients: [
            { rcpt: r.job.kind === 'deliver' ? r.job.recipients[0]! : '', reply: reply(451) },
          ],
        }
      : accepted(r);
  };
  const errors: unknown[] = [];
  const ref: { q?: Queue } = {};
  const observer: QueueObserver = async (s) => {
    const q = ref.q!;
    if (s.id === 'gone' && s.recipients[0]!.attempts === 1) await q.delete(s.id);
    if (s.id === 'again' && s.recipients[0]!.attempts === 1) await q.retry(s.id);
    // States are the queue's: only meta is taken from what an observer returns.
    return {
      ...s,
      recipients: s.recipients.map((r) => ({ ...r, state: 'accepted' as const, meta: 'seen' })),
    };
  };
  const q = (ref.q = await Queue.open({
    dir,
    deliver,
    observer,
    now: c.now,
    timers: false,
    retry: { initial: 60 },
    onError: (e) => errors.push(e),
  }));
  // Two domains: the pass would go on to the second after the first commit.
  await q.add({ id: 'gone', user: USER, recipients: ['a@slow.example', 'b@ok.example'], message });
  await q.add({ id: 'again', user: USER, recipients: ['c@slow.example'], message });
  await q.tick();
  assert.equal(await q.get('gone'), undefined);
  assert.deepEqual(
    calls.map((r) => r.domain),
    ['slow.example', 'slow.example'],
    'the deleted entry commits and delivers nothing more',
  );
  assert.equal(existsSync(join(dir, 'msg', 'gone.nmtp')), false, 'its message went with its pass');
  const again = (await q.get('again'))!;
  assert.equal(again.recipients[0]!.state, 'pending');
  assert.equal(again.recipients[0]!.meta, 'seen');
  assert.equal(again.recipients[0]!.nextAt, T0, 'the retry made it due now');
  await q.tick();
  assert.equal((await q.get('again'))!.recipients[0]!.attempts, 2);
  await q.close();
  assert.deepEqual(errors, []);
});

test('a deleted entry keeps its id taken until its pass ends', async () => {
  const dir = dirOf();
  const held = later<DeliverOutcome>();
  const started = later();
  const deliver = async (): Promise<DeliverOutcome> => {
    started.resolve();
    return held.promise;
  };
  const q = await Queue.open({ dir, deliver, timers: false });
  await q.add({ id: 'd', user: USER, recipients: ['a@example.net'], message });
  const pass = q.tick();
  await started.promise;
  assert.equal(await q.delete('d'), true);
  assert.deepEqual(readdirSync(join(dir, 'state')), [], 'the state is gone at once');
  assert.deepEqual(await q.store.readMessage('d'), message, 'the message stays for the job');
  await assert.rejects(
    q.add({ id: 'd', user: USER, recipients: ['a@example.net'], message }),
    /duplicate/,
  );
  held.resolve({ recipients: [{ rcpt: 'a@example.net', reply: reply(250, { id: 'x' }) }] });
  await pass;
  assert.deepEqual(readdirSync(join(dir, 'msg')), []);
  assert.deepEqual(readdirSync(join(dir, 'state')), [], 'the result did not bring it back');
  await q.add({ id: 'd', user: USER, recipients: ['b@example.net'], message });
  assert.equal((await q.get('d'))!.recipients[0]!.rcpt, 'b@example.net');
  await q.close();
});

test('recovery: each entry is observed once, after open() returned', async () => {
  const dir = dirOf();
  const deliver = async (): Promise<DeliverOutcome> => Promise.reject(new Error('down'));
  let q = await Queue.open({ dir, deliver, timers: false });
  await q.add({ id: 'r1', user: USER, recipients: ['a@example.net'], message });
  await q.add({ id: 'r2', user: USER, recipients: ['b@example.net'], message });
  await q.close();
  const seen: string[] = [];
  const ref: { q?: Queue } = {};
  q = ref.q = await Queue.open({
    dir,
    deliver,
    timers: false,
    // Uses the queue it observes: set only once open() has returned.
    observer: async (s) => {
      seen.push(`${s.id}:${(await ref.q!.get(s.id))?.user}`);
      return undefined;
    },
  });
  await eventually(() => seen.length === 2, 'both observed');
  assert.deepEqual(seen.sort(), [`r1:${USER}`, `r2:${USER}`]);
  await q.close();
});

test('an unreadable message is a temporary failure, retried with backoff', async () => {
  const dir = dirOf();
  const c = clock();
  const calls: DeliverRequest[] = [];
  const deliver = async (r: DeliverRequest): Promise<DeliverOutcome> => {
    calls.push(r);
    return accepted(r);
  };
  const errors: unknown[] = [];
  const q = await Queue.open({
    dir,
    deliver,
    now: c.now,
    timers: false,
    onError: (e) => errors.push(e),
  });
  await q.add({ id: 'bad', user: USER, recipients: ['a@example.net'], message });
  // Its file written (behind, src/queue/store.ts), then spoiled: the delivery reads the file.
  await q.store.writeBehindNow();
  writeFileSync(join(dir, 'msg', 'bad.nmtp'), 'not a framed message');
  await q.tick();
  const r = (await q.get('bad'))!.recipients[0]!;
  assert.equal(r.state, 'pending');
  assert.equal(r.attempts, 1);
  assert.equal(r.nextAt, T0 + 300);
  assert.ok(r.last?.err?.startsWith('NMTP_ERR_'), String(r.last?.err));
  assert.equal(calls.length, 0, 'nothing was sent');
  assert.deepEqual(errors, []);
  await q.close();
});

test('add checks recipientMeta; addFile takes a file from another file system', async () => {
  const dir = dirOf();
  const q = await Queue.open({
    dir,
    deliver: () => Promise.reject(new Error('down')),
    timers: false,
  });
  await assert.rejects(
    q.add({ id: 'x', user: USER, recipients: ['a@example.net'], recipientMeta: [1, 2], message }),
    /recipientMeta/,
  );
  assert.deepEqual(readdirSync(join(dir, 'msg')), []);
  // /dev/shm is a tmpfs where there is one: rename cannot move the file, so it is copied.
  const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const file = join(mkdtempSync(join(shm, 'nmtp-queue-file-')), 'm.nmtp');
  writeFileSync(file, message);
  const s = await q.addFile({
    id: 'f',
    user: USER,
    recipients: ['a@example.net'],
    file,
    kind: 'nmtp',
  });
  assert.equal(s.size, message.length);
  assert.equal(existsSync(file), false, "the caller's file is gone");
  const m = await q.message('f');
  assert.equal(m?.size, message.length);
  assert.equal((await m!.layout()).size, message.length);
  assert.deepEqual(
    readdirSync(join(dir, 'msg')).filter((n) => n.startsWith('.tmp-')),
    [],
  );
  await q.close();
});

test('closed: no longer ready, nothing more is stored', async () => {
  const q = await Queue.open({ dir: dirOf(), deliver: () => Promise.reject(new Error('down')) });
  assert.equal(await q.ready(), true);
  assert.equal(q.backend, 'embedded');
  await q.add({ id: 'c', user: USER, recipients: ['a@example.net'], message });
  await q.close();
  assert.equal(await q.ready(), false);
  await assert.rejects(
    q.add({ id: 'c2', user: USER, recipients: ['a@example.net'], message }),
    /closed/,
  );
  await assert.rejects(q.retry('c'), /closed/);
  await assert.rejects(q.delete('c'), /closed/);
  assert.equal((await q.get('c'))?.id, 'c', 'what it holds can still be read');
});

test('the destination limiter: at most n per destination, served in order, slots handed over', async () => {
  assert.throws(() => new DestinationLimiter(0), /perDestination/);
  const l = new DestinationLimiter(2);
  const order: string[] = [];
  const gates = [later(), later(), later(), later()];
  const runs = gates.map((g, i) =>
    l.run(i === 3 ? 'Other.Example' : 'one.example', async () => {
      order.push(`start ${i}`);
      await g.promise;
      order.push(`end ${i}`);
      return i;
    }),
  );
  await eventually(() => order.length === 3, 'three started');
  assert.deepEqual(order, ['start 0', 'start 1', 'start 3']);
  assert.equal(l.inFlight('one.example'), 2);
  assert.equal(l.inFlight('other.example'), 1, 'destinations compare without case');
  gates[1]!.resolve();
  await eventually(() => order.includes('start 2'), 'the third took the freed slot');
  assert.equal(l.inFlight('one.example'), 2);
  for (const g of gates) g.resolve();
  assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
  assert.equal(l.inFlight('one.example'), 0);
  // A job that fails frees its slot too.
  await assert.rejects(
    l.run('x', () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(l.inFlight('x'), 0);
});

test('legacy message sources: the full view only, octet for octet', async () => {
  const bytes = new TextEncoder().encode(
    'From: <a@b>\r\nSubject: x\r\n\r\nnot framed\r\n'.repeat(50),
  );
  const dir = dirOf();
  const file = join(dir, 'legacy.eml');
  writeFileSync(file, bytes);
  for (const src of [await rawFileSource(file), rawBytesSource(bytes)]) {
    assert.equal(src.size, bytes.length);
    assert.equal(await src.viewLength('full'), bytes.length);
    const out: Uint8Array[] = [];
    for await (const p of src.pieces('full', 100)) out.push(Uint8Array.from(p));
    assert.ok(out.every((p) => p.length <= 100));
    assert.deepEqual(new Uint8Array(Buffer.concat(out)), bytes);
    await assert.rejects(src.layout(), /not framed/);
    await assert.rejects(async () => {
      for await (const _ of src.pieces('headers')) void _;
    }, /no headers view/);
  }
});

test("meta the observer wrote during a pass survives the pass's commits", async () => {
  // The entry's first observation (after add) stores meta while a pass already holds the
  // state without it: the pass's commit keeps the observer's meta and adds its own result.
  const c = clock();
  const ref: { q?: Queue } = {};
  let started = false;
  let polls = 0;
  const deliver = async (r: DeliverRequest): Promise<DeliverOutcome> => {
    if (r.job.kind === 'status') polls++;
    else {
      started = true;
      // Answers only once the observer's meta is stored.
      while (((await ref.q!.get('o'))?.meta as { saw?: string } | undefined)?.saw !== 'pending')
        await sleep(5);
    }
    return {
      recipients: [
        {
          rcpt: r.rcpt ?? 'a@example.net',
          reply:
            r.job.kind === 'deliver'
              ? reply(350, { cookie: 'k', min: '60', max: '60' })
              : reply(250, { state: 'accepted', id: 'z' }),
        },
      ],
    };
  };
  const observer: QueueObserver = async (s) => {
    if (s.recipients[0]!.state !== 'pending') return undefined;
    // Held until the pass has begun with the state as added.
    await eventually(() => started, 'the pass began');
    return {
      ...s,
      meta: { saw: 'pending' },
      recipients: s.recipients.map((r) => ({ ...r, meta: 'r' })),
    };
  };
  const q = (ref.q = await Queue.open({
    dir: dirOf(),
    deliver,
    observer,
    now: c.now,
    timers: false,
  }));
  await q.add({ id: 'o', user: USER, recipients: ['a@example.net'], message, meta: { first: 1 } });
  await q.tick();
  let s = (await q.get('o'))!;
  assert.equal(s.recipients[0]!.state, 'deferred');
  assert.deepEqual(s.meta, { saw: 'pending' });
  assert.equal(s.recipients[0]!.meta, 'r');
  c.advance(60);
  await q.tick();
  await q.close();
  s = (await q.get('o'))!;
  assert.equal(polls, 1);
  assert.equal(s.recipients[0]!.state, 'accepted');
  assert.deepEqual(s.meta, { saw: 'pending' });
  assert.equal(s.recipients[0]!.meta, 'r');
});
