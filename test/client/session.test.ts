/**
 * The transfer client session's host loop, on a scripted in-memory socket: what it writes
 * and when — the whole eager transaction in one write (§60.10.4), pipelined commands
 * batched, each large chunk written only once the socket took the previous one —, a job's
 * result reported after the rest of its step, per-state timers (an idle session has none),
 * and a server that closes in the middle of a job.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { ClientSession, type JobResult } from '../../src/client/session.ts';
import { announce, deliverJob, fileSource } from '../../src/client/transfer.ts';
import type { MessageSource } from '../../src/client/source.ts';
import { identity, smallMessage, world } from './helpers.ts';

const GREETING =
  '220 2.0.0 version=NMTP/1 service=transfer server=mx.example.net challenge=oKGio6SlpqeoqaqrrK2urw\r\n';
const BOB = 'bob@example.net';
const CAROL = 'carol@example.net';
const endpoint = { host: '127.0.0.1', port: 1 };

/**
 * A socket the test plays the server of: every write() the session makes is recorded; with
 * `hold`, the socket takes nothing until the test releases it (a peer that reads slowly).
 */
class ScriptedSocket extends Duplex {
  /** Each write() call, in order (what one TLS record would carry). */
  readonly writes: Buffer[] = [];
  /** Writes handed to the socket but not yet taken (`hold`). */
  readonly held: (() => void)[] = [];
  ended = false;

  constructor(
    private readonly hold = false,
    highWaterMark = 16 * 1024,
  ) {
    super({ writableHighWaterMark: highWaterMark });
    this.on('finish', () => (this.ended = true));
  }

  override write(chunk: unknown, ...rest: unknown[]): boolean {
    this.writes.push(Buffer.from(chunk as Uint8Array));
    return (super.write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }

  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.hold) this.held.push(() => cb());
    else cb();
  }

  override _read(): void {}

  /** The server's octets. */
  answer(s: string): void {
    this.push(Buffer.from(s));
  }

  /** What the session wrote since the last call, as text. */
  taken(): string[] {
    return this.writes.splice(0).map((b) => b.toString('latin1'));
  }
}

/** Lets the session handle what it was given (a few turns of the event loop). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

function session(
  socket: ScriptedSocket,
  recipients: string[],
  message: Uint8Array,
  o: {
    keepOpen?: boolean;
    pipelining?: boolean;
    timeoutScale?: number;
    source?: MessageSource;
  } = {},
): { s: ClientSession; result: Promise<JobResult>; idleAtResult: Promise<boolean> } {
  let s!: ClientSession;
  const result = new Promise<JobResult>((resolve) => {
    const job = deliverJob(recipients, message);
    s = new ClientSession(socket, endpoint, identity, job, o.source ?? message, resolve, o);
  });
  const idleAtResult = result.then(() => s.idle);
  return { s, result, idleAtResult };
}

/** Greeting, HELLO and its 250 (with the eager limit); returns what was written. */
async function hello(socket: ScriptedSocket, eager = 65536): Promise<string[]> {
  socket.answer(GREETING);
  await settle();
  const h = socket.taken();
  assert.equal(h.length, 1);
  assert.match(h[0]!, /^HELLO example\.org sel=s1 proof=[A-Za-z0-9_-]+\r\n$/);
  socket.answer(`250 2.0.0 eager=${eager}\r\n`);
  await settle();
  // A file source reads before it writes.
  for (let i = 0; i < 200 && socket.writes.length === 0; i++) await sleep(5);
  await settle();
  return socket.taken();
}

test('eager: RCPTs, DATA send=full and the message in one write; the result once idle', async () => {
  const m = smallMessage();
  const socket = new ScriptedSocket();
  const { s, result, idleAtResult } = session(socket, [BOB, CAROL], m, { keepOpen: true });
  const [tx, ...more] = await hello(socket);
  assert.equal(more.length, 0, 'one write');
  const { size, digest } = announce(m);
  assert.equal(
    tx,
    `RCPT ${BOB}\r\nRCPT ${CAROL}\r\nDATA size=${size} digest=${digest} send=full\r\n` +
      `CHUNK ${m.length} LAST\r\n${Buffer.from(m).toString('latin1')}\r\n`,
  );
  socket.answer(
    `250 2.1.5\r\n250 2.1.5\r\n354 2.0.0 view=full\r\n250 2.0.0 rcpt=${BOB}\r\n250 2.0.0 rcpt=${CAROL}\r\n`,
  );
  const r = await result;
  assert.equal(r.failure, undefined);
  assert.deepEqual(
    r.recipients.map((x) => [x.rcpt, x.reply.code]),
    [
      [BOB, 250],
      [CAROL, 250],
    ],
  );
  // "a caller that runs the next job as soon as it has the result finds the session idle".
  assert.equal(await idleAtResult, true);

  // The next job on the kept session: the same single write.
  const second = s.run(deliverJob([BOB], m), m);
  await settle();
  const [tx2, ...more2] = socket.taken();
  assert.equal(more2.length, 0);
  assert.ok(tx2!.startsWith(`RCPT ${BOB}\r\nDATA size=${size} `));
  assert.ok(tx2!.endsWith(`CHUNK ${m.length} LAST\r\n${Buffer.from(m).toString('latin1')}\r\n`));
  socket.answer(`250 2.1.5\r\n354 2.0.0 view=full\r\n250 2.0.0 rcpt=${BOB}\r\n`);
  assert.equal((await second).recipients[0]?.reply.code, 250);

  s.finish();
  await settle();
  assert.deepEqual(socket.taken(), ['QUIT\r\n']);
  socket.answer('221 2.0.0\r\n');
  await settle();
  assert.equal(socket.ended, true, 'our side closed after 221');
  socket.destroy();
  await s.ended;
  assert.equal(s.closed, true);
});

test('eager from a file source: the same single write', async () => {
  const w = world('nmtp-session-');
  try {
    const m = smallMessage('from a file');
    const path = join(w.dir, 'm.nmtp');
    writeFileSync(path, m);
    const socket = new ScriptedSocket();
    const { result } = session(socket, [BOB], m, { source: await fileSource(path) });
    const [tx, ...more] = await hello(socket);
    assert.equal(more.length, 0);
    const { size, digest } = announce(m);
    assert.equal(
      tx,
      `RCPT ${BOB}\r\nDATA size=${size} digest=${digest} send=full\r\n` +
        `CHUNK ${m.length} LAST\r\n${Buffer.from(m).toString('latin1')}\r\n`,
    );
    socket.answer(`250 2.1.5\r\n354 2.0.0 view=full\r\n250 2.0.0 rcpt=${BOB}\r\n`);
    assert.equal((await result).recipients[0]?.reply.code, 250);
    socket.destroy();
  } finally {
    w.cleanup();
  }
});

test('no eager limit: RCPTs and DATA in one write, the view after the 354', async () => {
  const m = smallMessage();
  const socket = new ScriptedSocket();
  const { result } = session(socket, [BOB, CAROL], m);
  const [tx, ...more] = await hello(socket, 0);
  assert.equal(more.length, 0);
  const { size, digest } = announce(m);
  assert.equal(tx, `RCPT ${BOB}\r\nRCPT ${CAROL}\r\nDATA size=${size} digest=${digest}\r\n`);
  socket.answer('250 2.1.5\r\n250 2.1.5\r\n354 2.0.0 view=full\r\n');
  await settle();
  assert.deepEqual(socket.taken(), [
    `CHUNK ${m.length} LAST\r\n${Buffer.from(m).toString('latin1')}\r\n`,
  ]);
  socket.answer(`250 2.0.0 rcpt=${BOB}\r\n250 2.0.0 rcpt=${CAROL}\r\n`);
  assert.equal((await result).recipients.length, 2);
  await settle();
  assert.deepEqual(socket.taken(), ['QUIT\r\n']);
  socket.destroy();
});

test('without pipelining: one command per write, each after its answer', async () => {
  const m = smallMessage();
  const socket = new ScriptedSocket();
  const { result } = session(socket, [BOB, CAROL], m, { pipelining: false });
  assert.deepEqual(await hello(socket), [`RCPT ${BOB}\r\n`]);
  socket.answer('250 2.1.5\r\n');
  await settle();
  assert.deepEqual(socket.taken(), [`RCPT ${CAROL}\r\n`]);
  socket.answer('250 2.1.5\r\n');
  await settle();
  const [data] = socket.taken();
  assert.match(data!, /^DATA size=\d+ digest=\S+\r\n$/);
  socket.answer('354 2.0.0 view=full\r\n');
  await settle();
  assert.equal(socket.taken().length, 1);
  socket.answer(`250 2.0.0 rcpt=${BOB}\r\n250 2.0.0 rcpt=${CAROL}\r\n`);
  assert.equal((await result).recipients.length, 2);
  socket.destroy();
});

/** A message of about `n` octets: one text/plain body. */
function bigMessage(n: number): Uint8Array {
  const body = Buffer.alloc(n, 'abcdefghij0123456789\r\n');
  return encodeMessage({
    trace: [],
    root: { fields: [{ name: 'Content-Type', value: 'text/plain' }], body },
  });
}

test('a large message from memory: 1 MiB chunks, each written once the socket took the one before', async () => {
  const m = bigMessage(3 * 1024 * 1024 + 1000);
  const socket = new ScriptedSocket(true, 1024);
  const { result } = session(socket, [BOB], m);
  socket.answer(GREETING);
  await settle();
  socket.taken();
  socket.held.splice(0).forEach((f) => f());
  socket.answer('250 2.0.0 eager=65536\r\n');
  await settle();
  socket.held.splice(0).forEach((f) => f());
  await settle();
  assert.equal(socket.taken().length, 1, 'RCPT and DATA');
  socket.answer('250 2.1.5\r\n354 2.0.0 view=full\r\n');
  await settle();
  // Release what the socket holds one write at a time: never more than one chunk body is
  // handed over before the previous one was taken.
  const out: Buffer[] = [];
  let bodies = 0;
  for (let i = 0; i < 100 && out.reduce((n, b) => n + b.length, 0) < m.length; i++) {
    const w = socket.writes.splice(0);
    out.push(...w);
    const big = w.filter((b) => b.length > 64 * 1024).length;
    assert.ok(big <= 1, `at most one chunk body in flight (${big})`);
    bodies += big;
    socket.held.shift()?.();
    await settle();
  }
  out.push(...socket.writes.splice(0));
  for (let i = 0; i < 10; i++) {
    socket.held.splice(0).forEach((f) => f());
    await settle();
    out.push(...socket.writes.splice(0));
  }
  // The last chunk is small: head, body and CRLF in one write.
  assert.equal(bodies, 3);
  // The chunks put back together are the message, heads as §60.5 has them.
  const all = Buffer.concat(out);
  const parts: Buffer[] = [];
  let at = 0;
  const heads: string[] = [];
  while (at < all.length) {
    const eol = all.indexOf('\r\n', at);
    const head = all.subarray(at, eol).toString();
    heads.push(head);
    const n = Number(head.split(' ')[1]);
    parts.push(all.subarray(eol + 2, eol + 2 + n));
    assert.equal(all.subarray(eol + 2 + n, eol + 4 + n).toString(), '\r\n');
    at = eol + 4 + n;
  }
  const MiB = 1024 * 1024;
  assert.deepEqual(heads, [
    `CHUNK ${MiB}`,
    `CHUNK ${MiB}`,
    `CHUNK ${MiB}`,
    `CHUNK ${m.length - 3 * MiB} LAST`,
  ]);
  assert.ok(Buffer.concat(parts).equals(Buffer.from(m)));
  socket.answer(`250 2.0.0 rcpt=${BOB}\r\n`);
  assert.equal((await result).recipients[0]?.reply.code, 250);
  socket.destroy();
});

test('per-state timers: an idle session has none; a silent server times the job out', async (t) => {
  // The session's timers never hold the process (nor does this socket): this test does.
  const alive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(alive));
  const m = smallMessage();
  const socket = new ScriptedSocket();
  // 60 s states are 30 ms, 600 s ones 300 ms.
  const scale = 0.0005;
  const { s, result } = session(socket, [BOB], m, { keepOpen: true, timeoutScale: scale });
  await hello(socket);
  socket.answer(`250 2.1.5\r\n354 2.0.0 view=full\r\n250 2.0.0 rcpt=${BOB}\r\n`);
  assert.equal((await result).failure, undefined);
  // Idle far longer than any state's timeout: still open, still usable.
  await sleep(400);
  assert.equal(s.closed, false);
  assert.equal(s.idle, true);
  const again = s.run(deliverJob([BOB], m), m);
  await settle();
  assert.equal(socket.taken().length, 1);
  socket.answer(`250 2.1.5\r\n354 2.0.0 view=full\r\n250 2.0.0 rcpt=${BOB}\r\n`);
  assert.equal((await again).failure, undefined);
  // Now the server stops answering after the RCPT: the rcpt state's timer fails the job.
  const silent = s.run(deliverJob([BOB], m), m);
  const started = Date.now();
  await settle();
  socket.answer('250 2.1.5\r\n');
  const r = await silent;
  assert.equal(r.failure, 'timeout');
  assert.ok(Date.now() - started < 2000);
  await settle();
  assert.equal(socket.ended, true, 'closed after the timeout');
  socket.destroy();
  await s.ended;
});

test('the server closes in the middle of a job: the job fails "closed", the session ends', async () => {
  const m = smallMessage();
  const socket = new ScriptedSocket();
  const { s, result } = session(socket, [BOB, CAROL], m, { keepOpen: true });
  let changes = 0;
  s.onChange = () => changes++;
  await hello(socket);
  socket.answer('250 2.1.5\r\n');
  await settle();
  socket.destroy();
  const r = await result;
  assert.equal(r.failure, 'closed');
  await s.ended;
  assert.equal(s.closed, true);
  assert.equal(s.idle, false);
  assert.equal(changes, 1);
  await assert.rejects(s.run(deliverJob([BOB], m), m), /not idle/);
});
