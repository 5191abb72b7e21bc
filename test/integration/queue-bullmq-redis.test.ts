/**
 * The BullMQ backend against real, private Redis servers (test/harness/redis.ts), for what
 * the queue contract (queue-bullmq.test.ts) cannot see: the key layout in Redis, the
 * refusal of a Redis that would not keep acknowledged writes, the size limit, a kill -9 of
 * Redis right after add() resolved, a Redis restart under a running queue, two processes
 * sharing one queue (each entry delivered once), and the entry lock against a second job
 * and a retry that comes while the entry is held.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BullmqQueue, type BullmqQueueOptions } from '../../adapters/bullmq/queue.ts';
import { jobIdFor, keysFor, WORK_QUEUE } from '../../adapters/bullmq/keys.ts';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { MessageSource } from '../../src/client/source.ts';
import type { JobResult } from '../../src/client/transfer.ts';
import type { DeliverFn, DeliverRequest } from '../../src/queue/queue.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';

const USER = 'alice@example.org';
const SLOW = { initial: 3600, factor: 1, maxInterval: 3600, maxAge: 86400 } as const;
const FAST = { initial: 1, factor: 1, maxInterval: 1, maxAge: 600 } as const;

const frame = (text: string | Uint8Array): Uint8Array =>
  encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: `<${USER}>` }],
      body: typeof text === 'string' ? new TextEncoder().encode(text) : text,
    },
  });

const accepted = (r: DeliverRequest): JobResult => ({
  endpoint: { host: 'mx.example.net', port: 4025 },
  recipients: (r.job.kind === 'deliver' ? r.job.recipients : []).map((rcpt) => ({
    rcpt,
    reply: { code: 250, enhanced: '2.0.0', params: { id: `id-${rcpt}` }, text: '' },
  })),
});
const unreachable = (): NmtpError =>
  new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', 'connection refused');
const noDeliver: DeliverFn = () => Promise.reject(new Error('no delivery expected'));

async function bytesOf(m: MessageSource): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  for await (const p of m.pieces('full')) out.push(Uint8Array.from(p));
  return new Uint8Array(Buffer.concat(out));
}

/** A bound so that a bug fails the test instead of hanging it (not a timing assertion). */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not true after 20 s: ${what}`);
    await sleep(10);
  }
}

const states = (s: QueuedSubmission | undefined): string[] =>
  s?.recipients.map((r) => r.state) ?? [];

/** Redis, backends and clients a test started, all stopped at its end. */
async function withRedis(
  f: (t: {
    redis: RedisServer;
    open: (o: Partial<BullmqQueueOptions>) => Promise<BullmqQueue>;
    client: () => Redis;
  }) => Promise<void>,
  config?: Record<string, string>,
): Promise<void> {
  const redis = await startRedis(config === undefined ? {} : { config });
  const queues: BullmqQueue[] = [];
  const clients: Redis[] = [];
  try {
    await f({
      redis,
      open: async (o) => {
        const q = await BullmqQueue.open({
          redis: redis.url,
          prefix: 'test',
          retry: FAST,
          deliver: noDeliver,
          lockMs: 2000,
          ...o,
        });
        queues.push(q);
        return q;
      },
      client: () => {
        const c = new Redis(redis.url, { maxRetriesPerRequest: null });
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const q of queues) await q.close();
    for (const c of clients) c.disconnect();
    await redis.stop();
  }
}

test('add() stores message, state and index under the prefix, then one job per entry', async () => {
  await withRedis(async ({ redis, open, client }) => {
    const q = await open({ work: false, retry: SLOW });
    const r = client();
    const k = keysFor('test');
    const m1 = frame('one');
    const m2 = frame('two');
    const s1 = await q.add({ id: 'k-1', user: USER, recipients: ['a@example.net'], message: m1 });
    const s2 = await q.add({ id: 'k-2', user: USER, recipients: ['b@example.net'], message: m2 });
    assert.deepEqual(new Uint8Array((await r.getBuffer(k.msg('k-1')))!), m1);
    assert.deepEqual(JSON.parse((await r.get(k.state('k-1')))!), s1);
    assert.deepEqual(JSON.parse((await r.get(k.state('k-2')))!), s2);
    assert.deepEqual(await r.zrange(k.ids, '0', '-1'), ['k-1', 'k-2'], 'creation order');
    assert.deepEqual((await r.smembers(k.unobserved)).sort(), ['k-1', 'k-2']);
    assert.equal(await r.ttl(k.state('k-1')), -1, 'no expiry while unfinished');
    assert.equal(await r.exists(k.lock('k-1')), 0);

    // Nothing works on this queue (work: false): the job waits in BullMQ, named after the
    // entry and its due second.
    const jobs = new Queue(WORK_QUEUE, {
      connection: { host: '127.0.0.1', port: redis.port },
      prefix: 'test',
    });
    try {
      const job = await jobs.getJob(jobIdFor('k-1', s1.recipients[0]!.nextAt));
      assert.ok(job !== undefined, 'the job of k-1');
      assert.deepEqual(job.data, { id: 'k-1', due: s1.recipients[0]!.nextAt });
    } finally {
      await jobs.close();
    }

    assert.equal(await q.delete('k-1'), true);
    for (const key of [k.msg('k-1'), k.state('k-1')]) assert.equal(await r.exists(key), 0);
    assert.deepEqual(await r.zrange(k.ids, '0', '-1'), ['k-2']);
    assert.deepEqual(await r.smembers(k.unobserved), ['k-2']);
  });
});

test('a Redis that would lose acknowledged writes is refused, naming the setting', async () => {
  // A second Redis without AOF, as Redis ships.
  await withRedis(
    async ({ redis }) => {
      await assert.rejects(
        BullmqQueue.open({ redis: redis.url, deliver: noDeliver }),
        (e: unknown) =>
          e instanceof NmtpError &&
          e.code === 'NMTP_ERR_QUEUE_NOT_DURABLE' &&
          /appendonly/.test(e.message) &&
          e.details.setting === 'appendonly',
      );
    },
    { appendonly: 'no' },
  );
  await withRedis(async ({ redis, client }) => {
    const r = client();
    for (const [name, bad, good] of [
      ['appendfsync', 'everysec', 'always'],
      ['maxmemory-policy', 'allkeys-lru', 'noeviction'],
    ] as const) {
      await r.config('SET', name, bad);
      await assert.rejects(
        BullmqQueue.open({ redis: redis.url, deliver: noDeliver }),
        (e: unknown) =>
          e instanceof NmtpError &&
          e.code === 'NMTP_ERR_QUEUE_NOT_DURABLE' &&
          e.details.setting === name &&
          e.details.got === bad,
      );
      await r.config('SET', name, good);
    }
    const q = await BullmqQueue.open({ redis: redis.url, deliver: noDeliver, work: false });
    assert.equal(await q.ready(), true);
    await q.close();
  });
});

test('messages above the maximum are refused with a code; nothing is left behind', async () => {
  await withRedis(async ({ open, client }) => {
    const q = await open({ work: false, maxMessageSize: 100 });
    const r = client();
    const big = frame('x'.repeat(200));
    const isTooLarge = (e: unknown): boolean =>
      e instanceof NmtpError && e.code === 'NMTP_ERR_QUEUE_MESSAGE_TOO_LARGE' && !e.temporary;
    await assert.rejects(
      q.add({ id: 'big-1', user: USER, recipients: ['a@example.net'], message: big }),
      isTooLarge,
    );
    const dir = mkdtempSync(join(tmpdir(), 'nmtp-bullmq-'));
    try {
      const file = join(dir, 'big.nmtp');
      writeFileSync(file, big);
      await assert.rejects(
        q.addFile({ id: 'big-2', user: USER, recipients: ['a@example.net'], file }),
        isTooLarge,
      );
      assert.ok(existsSync(file), 'a refused file stays with its owner');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // BullMQ's own keys aside ("test:work:meta"), nothing.
    const ours = (await r.keys('test:*')).filter((key) => !key.startsWith(`test:${WORK_QUEUE}:`));
    assert.deepEqual(ours, []);
    const small = frame('ok');
    await q.add({ id: 'small', user: USER, recipients: ['a@example.net'], message: small });
  });
});

test('addFile() streams a large file into Redis, byte for byte, and removes the file', async () => {
  await withRedis(async ({ open, client }) => {
    const dir = mkdtempSync(join(tmpdir(), 'nmtp-bullmq-'));
    try {
      const body = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => 0x61 + (i % 26));
      const message = frame(body);
      const file = join(dir, 'spool.nmtp');
      writeFileSync(file, message);
      const q = await open({ work: false });
      const s = await q.addFile({ id: 'file-1', user: USER, recipients: ['a@example.net'], file });
      assert.equal(s.size, message.length);
      assert.ok(!existsSync(file), 'the caller’s file is gone');
      const m = await q.message('file-1');
      assert.ok(m !== undefined);
      assert.deepEqual(await bytesOf(m), message);
      // Only the entry's keys: no streaming leftovers.
      assert.deepEqual((await client().keys('test:tmp:*')).length, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('kill -9 of Redis right after add() resolved: after a restart every entry is there and delivered', async () => {
  await withRedis(async ({ redis, open }) => {
    const producer = await open({ work: false });
    const messages = new Map<string, Uint8Array>();
    const dir = mkdtempSync(join(tmpdir(), 'nmtp-bullmq-'));
    try {
      for (let i = 0; i < 5; i++) {
        const message = frame(`entry ${i}`);
        messages.set(`crash-${i}`, message);
        await producer.add({
          id: `crash-${i}`,
          user: USER,
          recipients: [`u${i}@example.net`],
          message,
        });
      }
      const fileMessage = frame('from a file');
      messages.set('crash-file', fileMessage);
      writeFileSync(join(dir, 'm'), fileMessage);
      await producer.addFile({
        id: 'crash-file',
        user: USER,
        recipients: ['f@example.net'],
        file: join(dir, 'm'),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // No shutdown, no final fsync: only what appendfsync always wrote before answering.
    await redis.kill9();
    await redis.restart();

    const delivered = new Map<string, Uint8Array>();
    const q = await open({
      deliver: async (r) => {
        const rcpt = r.job.kind === 'deliver' ? r.job.recipients[0]! : '';
        delivered.set(rcpt, await bytesOf(r.message!));
        return accepted(r);
      },
    });
    await until(async () => (await q.counts()).accepted === 6, 'all six delivered');
    for (const [id, message] of messages) {
      const s = await q.get(id);
      assert.deepEqual(states(s), ['accepted'], id);
      assert.deepEqual(delivered.get(s!.recipients[0]!.rcpt), message, id);
    }
    // The producer's connection came back by itself.
    await until(() => producer.ready(), 'the producer reconnected');
  });
});

test('a running queue rides out a Redis crash: ready() says so, and work goes on after', async () => {
  await withRedis(async ({ redis, open }) => {
    const seen: string[] = [];
    const q = await open({
      onError: () => undefined,
      deliver: async (r) => {
        seen.push(r.job.kind === 'deliver' ? r.job.recipients[0]! : '');
        return accepted(r);
      },
    });
    await q.add({ id: 'before', user: USER, recipients: ['a@example.net'], message: frame('1') });
    await until(async () => states(await q.get('before'))[0] === 'accepted', 'first delivered');
    await redis.kill9();
    await until(async () => !(await q.ready()), 'not ready without Redis');
    await redis.restart();
    await until(() => q.ready(), 'ready again');
    await q.add({ id: 'after', user: USER, recipients: ['b@example.net'], message: frame('2') });
    await until(async () => states(await q.get('after'))[0] === 'accepted', 'second delivered');
    assert.deepEqual(seen, ['a@example.net', 'b@example.net']);
  });
});

test('two processes on one Redis share the work; each entry is delivered exactly once', async () => {
  await withRedis(async ({ open }) => {
    const calls = new Map<string, number>();
    const inFlight = [0, 0];
    let held: (() => void)[] = [];
    let opened = false;
    // Each process works on one entry at a time; the first deliveries wait until both
    // processes have one, which shows both take part.
    const deliverer =
      (p: number): DeliverFn =>
      async (r) => {
        const rcpt = r.job.kind === 'deliver' ? r.job.recipients[0]! : '';
        calls.set(rcpt, (calls.get(rcpt) ?? 0) + 1);
        inFlight[p]!++;
        try {
          if (!opened) await new Promise<void>((go) => held.push(go));
          // Every other entry fails once: retried (by whichever process), then accepted.
          if (rcpt.startsWith('odd') && calls.get(rcpt) === 1) throw unreachable();
          return accepted(r);
        } finally {
          inFlight[p]!--;
        }
      };
    const a = await open({ deliver: deliverer(0), concurrency: 1 });
    const b = await open({ deliver: deliverer(1), concurrency: 1 });
    const n = 30;
    for (let i = 0; i < n; i++) {
      const rcpt = `${i % 2 === 1 ? 'odd' : 'even'}${i}@d${i % 3}.example`;
      await (i % 2 === 0 ? a : b).add({
        id: `share-${i}`,
        user: USER,
        recipients: [rcpt],
        message: frame(`m${i}`),
      });
    }
    await until(() => inFlight[0] === 1 && inFlight[1] === 1, 'both processes at work');
    opened = true;
    for (const go of held) go();
    held = [];
    await until(async () => (await a.counts()).accepted === n, 'all delivered');
    assert.equal(calls.size, n);
    for (const [rcpt, count] of calls) assert.equal(count, rcpt.startsWith('odd') ? 2 : 1, rcpt);
    assert.deepEqual(await b.counts(), {
      pending: 0,
      deferred: 0,
      accepted: n,
      rejected: 0,
      'given-up': 0,
    });
  });
});

test('a second job for an entry another worker holds waits: never two passes at once', async () => {
  await withRedis(async ({ redis, open }) => {
    let go: (() => void) | undefined;
    let calls = 0;
    let now = 0;
    let most = 0;
    const q = await open({
      concurrency: 4,
      deliver: async (r) => {
        calls++;
        most = Math.max(most, ++now);
        try {
          if (calls === 1) await new Promise<void>((resolve) => (go = resolve));
          return accepted(r);
        } finally {
          now--;
        }
      },
    });
    const s = await q.add({
      id: 'held',
      user: USER,
      recipients: ['a@example.net'],
      message: frame('h'),
    });
    await until(() => go !== undefined, 'the first pass is delivering');
    // A spare job for the same entry, due now (as a sweep or another process might add).
    const jobs = new Queue(WORK_QUEUE, {
      connection: { host: '127.0.0.1', port: redis.port },
      prefix: 'test',
    });
    try {
      const spare = jobIdFor('held', s.created - 1);
      await jobs.add(
        'entry',
        { id: 'held', due: s.created - 1 },
        { jobId: spare, removeOnComplete: true },
      );
      await until(async () => (await jobs.getJob(spare)) === undefined, 'the spare job ran');
      go!();
      await until(async () => states(await q.get('held'))[0] === 'accepted', 'delivered');
      // The spare job put itself off; its later look finds nothing due and adds nothing.
      await until(async () => {
        const c = await jobs.getJobCounts('active', 'waiting', 'delayed', 'failed');
        return Object.values(c).every((x) => x === 0);
      }, 'no job left');
    } finally {
      await jobs.close();
    }
    assert.equal(calls, 1);
    assert.equal(most, 1);
  });
});

test('a retry that comes while a worker holds the entry is applied by that worker', async () => {
  await withRedis(async ({ open }) => {
    let attempts = 0;
    const ref: { q?: BullmqQueue } = {};
    const q = (ref.q = await open({
      // The next attempt would be an hour away…
      retry: SLOW,
      deliver: async () => {
        attempts++;
        throw unreachable();
      },
      // … but the observer (running while the worker holds the entry) asks for it now.
      observer: async (s) => {
        if (s.recipients[0]!.attempts === 1) assert.equal(await ref.q!.retry(s.id), true);
        return undefined;
      },
    }));
    await q.add({ id: 'again', user: USER, recipients: ['a@example.net'], message: frame('r') });
    await until(
      async () => (await q.get('again'))?.recipients[0]?.attempts === 2,
      'a second attempt',
    );
    assert.equal(attempts, 2);
    const s = (await q.get('again'))!;
    assert.ok(s.recipients[0]!.nextAt > q.now() + 3000, 'then an hour’s wait again');
  });
});

test('a finished entry loses its message and keeps its state keepDone seconds', async () => {
  await withRedis(async ({ open, client }) => {
    const r = client();
    const k = keysFor('test');
    const q = await open({ deliver: async (x) => accepted(x), keepDone: 3600 });
    await q.add({ id: 'fin', user: USER, recipients: ['a@example.net'], message: frame('f') });
    await until(async () => (await q.get('fin'))?.done !== undefined, 'finished');
    assert.equal(await r.exists(k.msg('fin')), 0);
    assert.equal(await q.message('fin'), undefined);
    const ttl = await r.ttl(k.state('fin'));
    assert.ok(ttl > 3500 && ttl <= 3600, `state expires in keepDone (${ttl})`);

    // Once it expired, list() forgets it.
    const q2 = await open({ deliver: async (x) => accepted(x), keepDone: 1, prefix: 'short' });
    await q2.add({ id: 'gone', user: USER, recipients: ['a@example.net'], message: frame('g') });
    await until(async () => (await q2.list()).length === 0, 'expired and forgotten');
    assert.equal(await r.zcard(keysFor('short').ids), 0);
  });
});
