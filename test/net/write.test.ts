/**
 * writeSocket and writeOrWait (src/net/write.ts): no listeners and no wait when the socket
 * buffer has room; 'drain' or 'close' settles a write that filled it; `flushed` waits until
 * the socket has processed the octets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { writeOrWait, writeSocket } from '../../src/net/write.ts';

/** A socket whose writes complete only when released. */
function slowSocket(highWaterMark: number): { socket: Writable; release: () => void } {
  const held: (() => void)[] = [];
  const socket = new Writable({
    highWaterMark,
    write(_chunk, _enc, cb) {
      held.push(cb);
    },
  });
  return { socket, release: () => held.splice(0).forEach((cb) => cb()) };
}

// The write helpers take a Duplex; only the writable side matters here.
type Socket = Parameters<typeof writeSocket>[0];
const listeners = (s: Writable): number => s.listenerCount('drain') + s.listenerCount('close');

test('room in the buffer: settled at once, no listener added', async () => {
  const { socket } = slowSocket(1024);
  assert.equal(writeOrWait(socket as Socket, new Uint8Array(10)), undefined);
  assert.equal(listeners(socket), 0);
  await writeSocket(socket as Socket, new Uint8Array(10));
  assert.equal(listeners(socket), 0);
});

test("a full buffer waits for 'drain', then removes its listeners", async () => {
  const { socket, release } = slowSocket(4);
  const wait = writeOrWait(socket as Socket, new Uint8Array(10));
  assert.ok(wait instanceof Promise);
  let settled = false;
  void wait.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  release();
  await wait;
  assert.equal(listeners(socket), 0);
});

test("a peer that goes away never drains: 'close' settles the write", async () => {
  const { socket } = slowSocket(4);
  const wait = writeSocket(socket as Socket, new Uint8Array(10));
  socket.destroy();
  await wait;
  assert.equal(listeners(socket), 0);
  // And a destroyed socket is not written to at all.
  assert.equal(writeOrWait(socket as Socket, new Uint8Array(10)), undefined);
});

test('flushed: settled only once the socket has processed the octets', async () => {
  const { socket, release } = slowSocket(1024);
  let settled = false;
  const wait = writeSocket(socket as Socket, new Uint8Array(10), true).then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  release();
  await wait;
  assert.equal(listeners(socket), 0);
});
