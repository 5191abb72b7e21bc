/**
 * The server host loop (src/server/session-loop.ts) with a toy machine on an in-memory
 * socket: actions done at once and actions that wait keep the reducer's order, a read that
 * arrives while the loop waits is handled after, a timeout that arrives while a flush waits
 * for 'drain' is still seen, and a host failure is one 451 and a close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BaseAction, BaseEvent } from '../../src/core/session/index.ts';
import { encodeCommand, END, NEED_MORE, WireDecoder } from '../../src/core/wire/index.ts';
import { runSession } from '../../src/server/session-loop.ts';

/** A socket whose writes can be held (no 'drain' until released). */
class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  private held: (() => void)[] = [];
  hold = false;

  constructor(highWaterMark?: number) {
    super(highWaterMark === undefined ? {} : { writableHighWaterMark: highWaterMark });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.written.push(chunk);
    if (this.hold) this.held.push(cb);
    else cb();
  }

  release(): void {
    this.hold = false;
    for (const cb of this.held.splice(0)) cb();
  }

  /** The reply lines written so far, one string per reply: "code text". */
  replies(): string[] {
    const d = new WireDecoder('client');
    d.push(new Uint8Array(Buffer.concat(this.written)));
    const out: string[] = [];
    for (let i = d.next(); i !== NEED_MORE && i !== END; i = d.next()) {
      if (i.kind === 'reply') out.push(`${i.reply.code} ${i.reply.params['err'] ?? i.reply.text}`);
    }
    return out;
  }
}

type Ev = { type: 'connected' } | { type: 'done'; n: number };
type Act = { type: 'job'; n: number };
type Action = Act | BaseAction;

const reply = (code: number, text: string): BaseAction => ({
  type: 'reply',
  reply: { code, enhanced: `${Math.floor(code / 100)}.0.0`, params: {}, text },
});
const noop = (): Uint8Array => encodeCommand({ verb: 'NOOP', args: [], params: {} });

interface Toy {
  readonly socket: FakeSocket;
  /** Every event the reducer saw, as a short string. */
  readonly log: string[];
  readonly errors: unknown[];
  readonly done: Promise<void>;
}

/**
 * Runs the toy machine: the nth command asks for `onCommand(n)`; `done n` answers
 * "250 done n"; a timeout answers 421 and closes.
 */
function toy(o: {
  onCommand: (n: number) => Action[];
  perform: (a: Act) => Ev | undefined | Promise<Ev | undefined>;
  greeting?: Action[];
  socket?: FakeSocket;
}): Toy {
  const socket = o.socket ?? new FakeSocket();
  const log: string[] = [];
  const errors: unknown[] = [];
  const done = runSession<number, Ev, Act>(socket, {
    initial: 0,
    reducer: (n, e: BaseEvent | Ev) => {
      switch (e.type) {
        case 'connected':
          log.push('connected');
          return { state: n, actions: o.greeting ?? [reply(220, 'hi')] };
        case 'wire':
          log.push(`wire ${n + 1}`);
          return { state: n + 1, actions: o.onCommand(n + 1) };
        case 'done':
          log.push(`done ${e.n}`);
          return { state: n, actions: [reply(250, `done ${e.n}`)] };
        case 'timeout':
          log.push('timeout');
          return { state: n, actions: [reply(421, 'timeout'), { type: 'close' }] };
        case 'closed':
          log.push('closed');
          return { state: n, actions: [] };
      }
    },
    connected: { type: 'connected' },
    perform: o.perform,
    timeoutScale: 0.01,
    onError: (e) => errors.push(e),
  });
  return { socket, log, errors, done };
}

test('actions done at once and actions that wait: each event fed back in order, replies of one read in one write', async () => {
  const t = toy({
    onCommand: (n) => [{ type: 'job', n }, reply(250, `cmd ${n}`)],
    // Odd jobs are done at once, even ones later.
    perform: (a) =>
      a.n % 2 === 1
        ? { type: 'done', n: a.n }
        : sleep(5).then((): Ev => ({ type: 'done', n: a.n })),
  });
  await sleep(5);
  t.socket.push(Buffer.concat([noop(), noop(), noop(), noop()]));
  await sleep(50);
  t.socket.push(null);
  await t.done;
  assert.deepEqual(t.log, [
    'connected',
    'wire 1',
    'done 1',
    'wire 2',
    'done 2',
    'wire 3',
    'done 3',
    'wire 4',
    'done 4',
    'closed',
    'closed',
  ]);
  assert.deepEqual(t.socket.replies(), [
    '220 hi',
    '250 cmd 1',
    '250 done 1',
    '250 cmd 2',
    '250 done 2',
    '250 cmd 3',
    '250 done 3',
    '250 cmd 4',
    '250 done 4',
  ]);
  // The greeting, then every reply to the one read (§60.2: held until NEED_MORE).
  assert.equal(t.socket.written.length, 2);
  assert.deepEqual(t.errors, []);
});

test('a read that arrives while an action waits is handled after it (the socket is paused)', async () => {
  let finish: (() => void) | undefined;
  const t = toy({
    onCommand: (n) => [{ type: 'job', n }],
    perform: (a) =>
      a.n === 1
        ? new Promise<Ev>((resolve) => (finish = () => resolve({ type: 'done', n: 1 })))
        : undefined,
  });
  await sleep(5);
  t.socket.push(noop());
  await sleep(5);
  t.socket.push(noop());
  await sleep(10);
  assert.deepEqual(t.log, ['connected', 'wire 1']);
  finish!();
  await sleep(10);
  assert.deepEqual(t.log, ['connected', 'wire 1', 'done 1', 'wire 2']);
  assert.deepEqual(t.socket.replies(), ['220 hi', '250 done 1']);
  t.socket.push(null);
  await t.done;
});

test("a timeout that arrives while a flush waits for 'drain' is still handled", async () => {
  // Every write fills the buffer (high-water mark 1), and the first one is held.
  const socket = new FakeSocket(1);
  socket.hold = true;
  const t = toy({
    socket,
    greeting: [reply(220, 'hi'), { type: 'set-timer', seconds: 2 }], // 20 ms
    onCommand: () => [],
    perform: () => undefined,
  });
  await sleep(60);
  // The timer fired during the flush: queued, not yet handled.
  assert.deepEqual(t.log, ['connected']);
  assert.deepEqual(socket.replies(), ['220 hi']);
  socket.release();
  await sleep(10);
  assert.deepEqual(t.log, ['connected', 'timeout']);
  assert.deepEqual(socket.replies(), ['220 hi', '421 timeout']);
  assert.equal(socket.writableEnded, true);
  socket.push(null);
  await t.done;
});

for (const how of ['throws', 'rejects'] as const) {
  test(`a perform that ${how}: 451 NMTP_ERR_TRANSPORT_LOCAL, the rest of the step dropped, close`, async () => {
    const boom = new Error('storage on fire');
    const t = toy({
      onCommand: (n) => [reply(250, `cmd ${n}`), { type: 'job', n }, reply(250, 'not sent')],
      perform: () => {
        if (how === 'throws') throw boom;
        return Promise.reject(boom);
      },
    });
    await sleep(5);
    t.socket.push(Buffer.concat([noop(), noop()]));
    await sleep(20);
    assert.deepEqual(t.socket.replies(), ['220 hi', '250 cmd 1', '451 NMTP_ERR_TRANSPORT_LOCAL']);
    assert.deepEqual(t.log, ['connected', 'wire 1']);
    assert.deepEqual(t.errors, [boom]);
    assert.equal(t.socket.writableEnded, true);
    t.socket.push(null);
    await t.done;
  });
}

test('beyond 64 KiB the replies are written at once, and the next action waits for the drain', async () => {
  const socket = new FakeSocket(1);
  const performed: number[] = [];
  const big: BaseAction = { type: 'chunk', bytes: new Uint8Array(70 * 1024), last: true };
  const t = toy({
    socket,
    onCommand: (n) => [big, { type: 'job', n }],
    perform: (a) => {
      performed.push(a.n);
      return undefined;
    },
  });
  await sleep(5);
  socket.hold = true;
  socket.push(noop());
  await sleep(10);
  assert.equal(socket.written.length, 2); // the greeting, then the chunk, not held for NEED_MORE
  assert.deepEqual(performed, []);
  socket.release();
  await sleep(10);
  assert.deepEqual(performed, [1]);
  socket.push(null);
  await t.done;
});
