/**
 * The cleanup service (src/gateway/cleanup.ts) on worker threads (cleanup-pool.ts) gives
 * what it gives on the event loop: the same octets for the same job, the same NmtpError
 * (code and message) for a message the converter or signer refuses — over every corpus
 * message; a thread that dies fails its jobs as temporary and is replaced; a thread that
 * answers no job within the timeout is stopped so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { keyPairFromSeed } from '../../src/core/keys/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { cleanup, type CleanupJob } from '../../src/gateway/cleanup.ts';
import { CleanupPool } from '../../src/gateway/cleanup-pool.ts';
import { bytesSource, messageLayout } from '../../src/client/source.ts';
import { corpusFiles } from '../adapters/mime/helpers.ts';

const key = keyPairFromSeed(new Uint8Array(32).fill(7));
const job = (legacy: Uint8Array, i: number): CleanupJob => ({
  legacy,
  convert: {
    gateway: 'gw.example',
    now: 1_760_000_000_000 + i,
    envelope: { mailFrom: 'alice@legacy.example', rcptTo: ['bob@nmtp.example'], helo: 'mx' },
    limits: { maxMessageBytes: 10_240_000, maxDepth: 30, maxHeaderBytes: 102_400 },
  },
  sign: {
    key,
    domain: 'gw.example',
    selector: 'gw1',
    recipients: ['bob@nmtp.example'],
    signedAt: 1_760_000_000 + i,
    expiresAt: 1_760_500_000,
    salt: new Uint8Array(16).fill(i % 256),
  },
});

type Outcome = { ok: Uint8Array } | { code: string; message: string };
const outcome = (p: Promise<Uint8Array>): Promise<Outcome> =>
  p.then(
    (ok) => ({ ok: new Uint8Array(ok) }),
    (e: unknown) => {
      assert.ok(e instanceof NmtpError, `an NmtpError, got ${String(e)}`);
      return { code: e.code, message: e.message };
    },
  );

test('every corpus message: the same octets or the same error on a thread as on the event loop', async () => {
  const files = [...corpusFiles().values()];
  const pool = await CleanupPool.start(2);
  try {
    let refused = 0;
    // All at once: answers come back in any order, each to its own job.
    const jobs = files.map((f, i) => job(new Uint8Array(readFileSync(f)), i));
    const onThreads = await Promise.all(jobs.map((j) => outcome(pool.run(j))));
    for (const [i, j] of jobs.entries()) {
      const inline = await outcome(cleanup(j));
      assert.deepEqual(onThreads[i], inline, files[i]);
      if ('code' in inline) refused++;
    }
    assert.ok(files.length > 100 && refused > 0, `${files.length} messages, ${refused} refused`);
    // The layout the thread sent with the octets (the client sends from it, without decoding
    // them again) is the one the client would compute.
    const framed = await pool.run(jobs[onThreads.findIndex((o) => 'ok' in o)]!);
    assert.deepEqual(await bytesSource(framed).layout(), messageLayout(new Uint8Array(framed)));
  } finally {
    await pool.close();
  }
});

test('a thread that dies: its jobs fail as temporary (NMTP_ERR_TRANSPORT_LOCAL), a new thread takes the next ones', async () => {
  const errors: unknown[] = [];
  const pool = await CleanupPool.start(1, (e) => errors.push(e));
  const slots = (pool as unknown as { slots: { worker?: { terminate(): Promise<number> } }[] })
    .slots;
  try {
    const legacy = new TextEncoder().encode(
      'Subject: hi\r\nFrom: alice@legacy.example\r\n\r\nhello\r\n',
    );
    assert.ok((await pool.run(job(legacy, 1))).length > 0);
    const inFlight = outcome(pool.run(job(legacy, 2)));
    await slots[0]!.worker!.terminate();
    const lost = await inFlight;
    // Either it finished before the thread went, or it failed as temporary: never lost.
    if ('code' in lost) assert.equal(lost.code, 'NMTP_ERR_TRANSPORT_LOCAL');
    const meanwhile = await outcome(pool.run(job(legacy, 3)));
    assert.deepEqual(
      'code' in meanwhile ? meanwhile.code : 'ok',
      'NMTP_ERR_TRANSPORT_LOCAL',
      'no thread until the restart',
    );
    for (const end = Date.now() + 30_000; slots[0]!.worker === undefined;) {
      assert.ok(Date.now() < end, 'the thread restarts');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(
      await outcome(pool.run(job(legacy, 4))),
      await outcome(cleanup(job(legacy, 4))),
    );
    assert.ok(
      errors.some((e) => String(e).includes('cleanup thread exited')),
      'reported',
    );
  } finally {
    await pool.close();
  }
});

test('close waits for the jobs given, then refuses new ones', async () => {
  const pool = await CleanupPool.start(1);
  const legacy = new TextEncoder().encode(
    'Subject: x\r\nFrom: alice@legacy.example\r\n\r\nbody\r\n',
  );
  const given = Promise.all([1, 2, 3].map((i) => pool.run(job(legacy, i))));
  await pool.close();
  assert.equal((await given).length, 3);
  await assert.rejects(pool.run(job(legacy, 4)), /no cleanup thread/);
});

test('close past its grace: the threads stop, a job they had fails as temporary', async () => {
  const pool = await CleanupPool.start(1);
  const legacy = new TextEncoder().encode(
    `Subject: x\r\nFrom: alice@legacy.example\r\n\r\n${'line of text\r\n'.repeat(50_000)}`,
  );
  const given = [1, 2, 3].map((i) => outcome(pool.run(job(legacy, i))));
  await pool.close(0);
  const got = await Promise.all(given);
  // 700 KB each: not converted within no grace at all.
  assert.ok(
    got.some((o) => 'code' in o),
    'a job was stopped',
  );
  for (const o of got) if ('code' in o) assert.equal(o.code, 'NMTP_ERR_TRANSPORT_LOCAL');
});

test('a thread that answers no job within jobTimeoutMs is stopped: its jobs fail as temporary, the next thread serves', async () => {
  const errors: unknown[] = [];
  // 700 KB messages take far longer than the 1 ms given: the watchdog's case of a thread
  // that does not come back (a message that makes the converter loop).
  const pool = await CleanupPool.start(1, (e) => errors.push(e), { jobTimeoutMs: 1 });
  const slots = (pool as unknown as { slots: { worker?: unknown }[] }).slots;
  try {
    const big = new TextEncoder().encode(
      `Subject: x\r\nFrom: alice@legacy.example\r\n\r\n${'line of text\r\n'.repeat(50_000)}`,
    );
    const got = await Promise.all([1, 2, 3].map((i) => outcome(pool.run(job(big, i)))));
    const stopped = got.filter((o) => 'code' in o);
    assert.ok(stopped.length > 0, 'a job was stopped');
    for (const o of stopped) {
      assert.deepEqual(o, {
        code: 'NMTP_ERR_TRANSPORT_LOCAL',
        message:
          'NMTP_ERR_TRANSPORT_LOCAL: cleanup gave no answer within 0.001 s: its thread was stopped',
      });
    }
    assert.ok(
      errors.some((e) => String(e).includes('gave no answer within 0.001 s: stopped')),
      'reported',
    );
    for (const end = Date.now() + 30_000; slots[0]!.worker === undefined;) {
      assert.ok(Date.now() < end, 'the thread restarts');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await pool.close();
  }
  // A thread that answers in time is left alone: the default timeout, the same jobs.
  const calm = await CleanupPool.start(1);
  try {
    const legacy = new TextEncoder().encode(
      'Subject: hi\r\nFrom: alice@legacy.example\r\n\r\nhello\r\n',
    );
    assert.deepEqual(
      await outcome(calm.run(job(legacy, 5))),
      await outcome(cleanup(job(legacy, 5))),
    );
  } finally {
    await calm.close();
  }
});
