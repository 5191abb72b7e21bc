/**
 * The outgoing queue with a scripted deliver function and a manual clock: durable before
 * add() resolves, one job per destination domain, retries with backoff up to the maximum
 * age, cookie polls inside the receiver's window, a bigger view on 352, GIVEUP at the
 * deadline, restart from disk, what a crash leaves behind, STATUS only for the owner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { Reply } from '../../src/core/wire/index.ts';
import type { JobResult } from '../../src/client/transfer.ts';
import {
  DEFAULT_RETRY,
  Queue,
  pollDelay,
  retryDelay,
  type DeliverRequest,
} from '../../src/queue/index.ts';

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body: new Uint8Array([0x61]) },
});

const T0 = 1_800_000_000;
function clock(): { now: () => number; advance: (s: number) => void; t: () => number } {
  let t = T0;
  return { now: () => t * 1000, advance: (s) => void (t += s), t: () => t };
}

const reply = (code: number, params: Record<string, string> = {}, enhanced?: string): Reply => ({
  code,
  enhanced: enhanced ?? `${String(code)[0]}.0.0`,
  params,
  text: '',
});
const endpoint = { host: 'mx.example.net', port: 4025 };
const answers = (...rs: [string, Reply][]): JobResult => ({
  endpoint,
  recipients: rs.map(([rcpt, r]) => ({ rcpt, reply: r })),
});

/** A deliver function answering from a script; records every request. */
function scripted(script: (r: DeliverRequest) => JobResult | Error | Promise<JobResult>) {
  const calls: DeliverRequest[] = [];
  const deliver = async (r: DeliverRequest): Promise<JobResult> => {
    calls.push(r);
    const out = await script(r);
    if (out instanceof Error) throw out;
    return out;
  };
  return { calls, deliver };
}

const dirOf = (): string => mkdtempSync(join(tmpdir(), 'nmtp-queue-'));

test('backoff and poll intervals', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((n) => retryDelay(n, DEFAULT_RETRY)),
    [300, 600, 1200, 2400, 3600, 3600],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((n) => pollDelay(n, 60, 300)),
    [60, 120, 240, 300, 300],
  );
});

test('add() is durable before it resolves; one job per domain; results recorded; owner only', async () => {
  const dir = dirOf();
  const c = clock();
  const { calls, deliver } = scripted((r) =>
    r.job.kind === 'deliver'
      ? answers(
          ...r.job.recipients.map((rcpt): [string, Reply] => [
            rcpt,
            rcpt.startsWith('no')
              ? reply(550, { rcpt, err: 'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED' }, '5.1.1')
              : reply(250, { rcpt, id: `id-${rcpt}` }),
          ]),
        )
      : new Error('unexpected'),
  );
  const q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  await q.add({
    id: 'sub1',
    user: 'alice@example.org',
    recipients: ['bob@example.net', 'no@example.net', 'carol@example.com'],
    message,
  });
  // Durable before add() resolved: in the queue's journal (test/queue/crash-journal.test.ts
  // kills a process there); its files, written behind, as written (message) and as the
  // state says.
  await q.store.writeBehindNow();
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'msg', 'sub1.nmtp'))), message);
  const state = JSON.parse(readFileSync(join(dir, 'state', 'sub1.json'), 'utf8')) as {
    recipients: { state: string }[];
  };
  assert.deepEqual(
    state.recipients.map((r) => r.state),
    ['pending', 'pending', 'pending'],
  );
  assert.equal(calls.length, 0, 'nothing is delivered before tick()');
  await q.tick();
  assert.deepEqual(
    calls.map((r) => [r.domain, r.job.kind === 'deliver' ? r.job.recipients : []]),
    [
      ['example.net', ['bob@example.net', 'no@example.net']],
      ['example.com', ['carol@example.com']],
    ],
  );
  assert.deepEqual(q.status('sub1', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'accepted' },
    { rcpt: 'no@example.net', state: 'rejected' },
    { rcpt: 'carol@example.com', state: 'accepted' },
  ]);
  assert.equal((await q.get('sub1'))?.recipients[0]?.id, 'id-bob@example.net');
  // STATUS of another user's id, or of an unknown id: undefined (answered as unknown).
  assert.equal(q.status('sub1', 'mallory@example.org'), undefined);
  assert.equal(q.status('nope', 'alice@example.org'), undefined);
  // Every recipient is final: the message file is gone, the state stays for STATUS …
  assert.equal(existsSync(join(dir, 'msg', 'sub1.nmtp')), false);
  assert.equal((await q.get('sub1'))?.done, T0);
  // … until it is older than keepDone.
  c.advance(7 * 86400);
  await q.tick();
  assert.equal(await q.get('sub1'), undefined);
  // The removal is journaled at once, its file removed behind.
  await q.store.writeBehindNow();
  assert.deepEqual(readdirSync(join(dir, 'state')), []);
  await q.close();
});

test('temporary failures are retried with backoff and given up at the maximum age', async () => {
  const dir = dirOf();
  const c = clock();
  let up = false;
  const { calls, deliver } = scripted((r) =>
    up && r.job.kind === 'deliver' && r.job.recipients[0] === 'bob@example.net'
      ? answers([r.job.recipients[0]!, reply(250, { rcpt: 'bob@example.net', id: 'x' })])
      : new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', 'connection refused'),
  );
  const q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  await q.add({ id: 'a', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  await q.add({ id: 'b', user: 'alice@example.org', recipients: ['eve@example.net'], message });
  await q.tick();
  assert.equal(calls.length, 2);
  const bob = (await q.get('a'))!.recipients[0]!;
  assert.equal(bob.state, 'pending');
  assert.equal(bob.attempts, 1);
  assert.equal(bob.nextAt, T0 + 300);
  assert.equal(bob.last?.err, 'NMTP_ERR_TRANSPORT_CONNECT_FAILED');
  c.advance(299);
  await q.tick();
  assert.equal(calls.length, 2, 'not due yet');
  c.advance(1);
  await q.tick();
  assert.equal(calls.length, 4);
  assert.equal((await q.get('a'))!.recipients[0]!.nextAt, T0 + 300 + 600);
  // The receiver comes back for a: accepted. b keeps failing until the maximum age.
  up = true;
  c.advance(600);
  await q.tick();
  assert.deepEqual(q.status('a', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'accepted' },
  ]);
  for (let i = 0; i < 200 && q.status('b', 'alice@example.org')?.[0]?.state === 'pending'; i++) {
    c.advance(3600);
    await q.tick();
  }
  const eve = (await q.get('b'))!.recipients[0]!;
  assert.equal(eve.state, 'given-up');
  // The last attempt was made before the maximum age; no later one was planned.
  assert.ok(eve.last!.at <= T0 + DEFAULT_RETRY.maxAge);
  assert.ok(eve.last!.at + 3600 > T0 + DEFAULT_RETRY.maxAge);
  await q.close();
});

test('deferred: polls inside the window, a bigger view on 352, accepted; restart keeps state', async () => {
  const dir = dirOf();
  const c = clock();
  let sent: Uint8Array | undefined;
  const collect = async (pieces: AsyncIterable<Uint8Array>): Promise<Uint8Array> => {
    const out: Uint8Array[] = [];
    for await (const p of pieces) out.push(p);
    return new Uint8Array(Buffer.concat(out));
  };
  let statusAnswer: Reply = reply(350, {
    cookie: 'ck1',
    rcpt: 'bob@example.net',
    min: '60',
    max: '600',
    expires: String(T0 + 86400),
  });
  const { calls, deliver } = scripted((r) => {
    switch (r.job.kind) {
      case 'deliver':
        return answers([
          'bob@example.net',
          reply(350, {
            rcpt: 'bob@example.net',
            cookie: 'ck1',
            min: '60',
            max: '600',
            expires: String(T0 + 86400),
          }),
        ]);
      case 'status':
        return answers(['bob@example.net', statusAnswer]);
      case 'data-on-cookie':
        return collect(r.message!.pieces('full')).then((bytes) => {
          sent = bytes;
          return answers([
            'bob@example.net',
            reply(250, { rcpt: 'bob@example.net', cookie: 'ck1', id: 'r1' }),
          ]);
        });
      default:
        return new Error('unexpected');
    }
  });
  let q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  await q.add({ id: 's', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  await q.tick();
  let bob = (await q.get('s'))!.recipients[0]!;
  assert.equal(bob.state, 'deferred');
  assert.equal(bob.cookie, 'ck1');
  assert.deepEqual(bob.endpoint, endpoint);
  // "no more often than every min seconds": nothing at min - 1.
  assert.equal(bob.nextAt, T0 + 60);
  c.advance(59);
  await q.tick();
  assert.equal(calls.length, 1);
  c.advance(1);
  await q.tick();
  assert.deepEqual(
    calls.map((r) => r.job.kind),
    ['deliver', 'status'],
  );
  // The poll went to the endpoint that issued the cookie.
  assert.deepEqual(calls[1]!.endpoint, endpoint);
  bob = (await q.get('s'))!.recipients[0]!;
  assert.equal(bob.nextAt, T0 + 60 + 120, 'the interval doubles');

  // Restart: a new queue on the same directory carries on where the old one stopped.
  await q.close();
  q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  assert.deepEqual((await q.get('s'))!.recipients[0], bob);
  statusAnswer = reply(352, { cookie: 'ck1', rcpt: 'bob@example.net', view: 'full' });
  c.advance(120);
  await q.tick();
  assert.deepEqual(
    calls.map((r) => r.job.kind),
    ['deliver', 'status', 'status', 'data-on-cookie'],
  );
  const data = calls[3]!;
  assert.ok(data.job.kind === 'data-on-cookie');
  assert.equal(data.job.cookie, 'ck1');
  assert.equal(data.job.size, message.length);
  // The message is streamed from the queue's file, not held in memory.
  assert.deepEqual(sent, message);
  assert.deepEqual(q.status('s', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'accepted' },
  ]);
  assert.equal((await q.get('s'))!.recipients[0]!.id, 'r1');
  await q.close();
});

test('GIVEUP at the deadline; a decision that raced it stands; an unknown cookie redelivers', async () => {
  const dir = dirOf();
  const c = clock();
  const deferred = (rcpt: string, cookie: string): Reply =>
    reply(350, { rcpt, cookie, min: '300', max: '300', expires: String(c.t() + 1000) });
  let delivered = 0;
  const { calls, deliver } = scripted((r) => {
    const j = r.job;
    if (j.kind === 'deliver') {
      delivered++;
      return answers(
        ...j.recipients.map((rcpt): [string, Reply] => [
          rcpt,
          delivered > 1 ? reply(250, { rcpt, id: 'again' }) : deferred(rcpt, `c-${rcpt[0]}`),
        ]),
      );
    }
    if (j.kind === 'status') {
      return answers([
        '',
        reply(550, { cookie: j.cookie, err: 'NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN' }, '5.5.4'),
      ]);
    }
    if (j.kind === 'giveup') {
      return j.cookie === 'c-b'
        ? answers(['bob@example.net', reply(250, { cookie: j.cookie, state: 'given-up' })])
        : answers(['x@example.net', reply(250, { cookie: j.cookie, state: 'accepted', id: 'z' })]);
    }
    return new Error('unexpected');
  });
  const q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  await q.add({
    id: 'g',
    user: 'alice@example.org',
    recipients: ['bob@example.net', 'x@example.net'],
    message,
  });
  await q.tick();
  const r = (await q.get('g'))!.recipients;
  assert.deepEqual(
    r.map((x) => [x.state, x.nextAt]),
    [
      ['deferred', T0 + 300],
      ['deferred', T0 + 300],
    ],
  );
  // Past the cookie's expiry: GIVEUP rather than STATUS, for both.
  c.advance(1000);
  await q.tick();
  assert.deepEqual(
    calls.slice(1).map((x) => x.job.kind),
    ['giveup', 'giveup'],
  );
  assert.deepEqual(q.status('g', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'given-up' },
    { rcpt: 'x@example.net', state: 'accepted' },
  ]);

  // A cookie the receiver does not know (before its expiry): delivered again, not lost.
  await q.add({ id: 'u', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  delivered = 0;
  await q.tick();
  c.advance(300);
  await q.tick();
  assert.deepEqual(
    calls.slice(3).map((x) => x.job.kind),
    ['deliver', 'status', 'deliver'],
  );
  assert.deepEqual(q.status('u', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'accepted' },
  ]);
  await q.close();
});

test('a crash leaves a consistent queue: orphans and temporary files go, state stays', async () => {
  const dir = dirOf();
  const c = clock();
  const { deliver } = scripted(() => new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED'));
  let q = await Queue.open({ dir, deliver, now: c.now, timers: false });
  await q.add({ id: 'kept', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  await q.close();
  // What a crash can leave: a message whose state was never written (its id was never
  // returned), a temporary file of an interrupted rename, a spool file of a receiving SEND.
  writeFileSync(join(dir, 'msg', 'orphan.nmtp'), message);
  writeFileSync(join(dir, 'state', '.tmp-0123'), '{"ver');
  writeFileSync(join(dir, 'tmp', 'abc.spool'), 'partial');
  // A state file a person broke by hand is reported, and its message kept.
  writeFileSync(join(dir, 'state', 'broken.json'), '{');
  writeFileSync(join(dir, 'msg', 'broken.nmtp'), message);
  const errors: unknown[] = [];
  q = await Queue.open({ dir, deliver, now: c.now, timers: false, onError: (e) => errors.push(e) });
  assert.deepEqual(readdirSync(join(dir, 'msg')).sort(), ['broken.nmtp', 'kept.nmtp']);
  assert.deepEqual(readdirSync(join(dir, 'state')).sort(), ['broken.json', 'kept.json']);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  assert.equal(errors.length, 1);
  assert.deepEqual(q.status('kept', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'pending' },
  ]);
  await q.close();
});

test('with timers, the queue wakes itself when something is due', async () => {
  const dir = dirOf();
  const c = clock();
  const pending: { ms: number; f: () => void }[] = [];
  const timers = {
    set: (ms: number, f: () => void) => {
      const t = { ms, f };
      pending.push(t);
      return t;
    },
    clear: (h: unknown) => {
      const i = pending.indexOf(h as { ms: number; f: () => void });
      if (i >= 0) pending.splice(i, 1);
    },
  };
  let done: () => void = () => undefined;
  const delivered = new Promise<void>((resolve) => (done = resolve));
  const { deliver } = scripted(() => {
    done();
    return answers(['bob@example.net', reply(250, { rcpt: 'bob@example.net', id: 'i' })]);
  });
  const q = await Queue.open({ dir, deliver, now: c.now, timers });
  assert.equal(pending.length, 0, 'nothing to wake up for');
  await q.add({ id: 't', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  assert.deepEqual(
    pending.map((t) => t.ms),
    [0],
  );
  pending.shift()!.f();
  await delivered;
  await q.close();
  assert.deepEqual(q.status('t', 'alice@example.org'), [
    { rcpt: 'bob@example.net', state: 'accepted' },
  ]);
});

test('a GIVEUP that reaches nobody still ends the wait, with the reason recorded', async () => {
  const dir = dirOf();
  const c = clock();
  const { deliver } = scripted((r) =>
    r.job.kind === 'deliver'
      ? answers([
          'bob@example.net',
          reply(350, { rcpt: 'bob@example.net', cookie: 'k', min: '60', max: '60' }),
        ])
      : new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', 'connection refused'),
  );
  const q = await Queue.open({
    dir,
    deliver,
    now: c.now,
    timers: false,
    retry: { maxAge: 100 },
  });
  await q.add({ id: 'n', user: 'alice@example.org', recipients: ['bob@example.net'], message });
  await q.tick();
  c.advance(60);
  await q.tick(); // a poll that reaches nobody: polled again, never later than the deadline
  const bob = (await q.get('n'))!.recipients[0]!;
  assert.equal(bob.state, 'deferred');
  assert.equal(bob.nextAt, T0 + 100);
  c.advance(40);
  await q.tick();
  const last = (await q.get('n'))!.recipients[0]!;
  assert.equal(last.state, 'given-up');
  assert.equal(last.last?.err, 'NMTP_ERR_TRANSPORT_CONNECT_FAILED');
  await q.close();
});
