/**
 * The transfer client host over real TLS on loopback: the connection pool (reuse, limits,
 * a broken connection replaced, idle sessions closed), messages streamed from a file (views
 * equal to the in-memory ones; a 50 MB message sent with bounded memory, measured in a
 * child process).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import type { View } from '../../src/core/session/index.ts';
import {
  announce,
  bytesSource,
  deliver,
  deliverJob,
  fileSource,
  TransferPool,
  transferTo,
  viewOf,
} from '../../src/client/transfer.ts';
import type { Serving } from '../../src/server/serve.ts';
import { identity, mailbox, seed, smallMessage, srvOf, world, type World } from './helpers.ts';
import { readStored } from '../support/stored.ts';

let w: World;
let server: Serving;

before(async () => {
  w = world('nmtp-pool-');
  server = await mailbox(w, 'mail');
});

after(async () => {
  await server.close();
  w.cleanup();
});

const endpoint = (): { host: string; port: number } => ({ host: '127.0.0.1', port: server.port });
/** What the server stored, once every answer it gave has its files in new/. */
const stored = async (): Promise<string[]> => {
  await server.mailbox.settled();
  return readdirSync(join(w.dir, 'mail', 'new')).filter((f) => f.endsWith('.nmtp'));
};

test('pool: two messages over one connection, each accepted and stored', async () => {
  const pool = new TransferPool(identity, { ca: w.ca });
  const before = (await stored()).length;
  const m1 = smallMessage('one');
  const m2 = smallMessage('two');
  const r1 = await pool.run(endpoint(), deliverJob(['a@example.net'], m1), m1);
  const r2 = await pool.run(endpoint(), deliverJob(['b@example.net', 'c@example.net'], m2), m2);
  assert.equal(pool.opened, 1);
  assert.equal(pool.size(endpoint()), 1);
  for (const r of [r1, r2]) {
    assert.equal(r.failure, undefined);
    assert.ok(
      r.recipients.every((x) => x.reply.code === 250),
      JSON.stringify(r.recipients),
    );
  }
  assert.equal((await stored()).length, before + 3);
  await pool.close();
  assert.equal(pool.size(endpoint()), 0);
});

test('pool: the same bytes sent by several jobs share one source (scanned once), each stored whole', async () => {
  const m = smallMessage('again');
  // One source per Uint8Array: its layout is computed once and kept.
  assert.equal(bytesSource(m), bytesSource(m));
  assert.notEqual(bytesSource(m), bytesSource(Uint8Array.from(m)));
  const pool = new TransferPool(identity, { ca: w.ca });
  const before = await stored();
  const results = await Promise.all(
    [1, 2, 3].map((i) => pool.run(endpoint(), deliverJob([`r${i}@example.net`], m), m)),
  );
  for (const r of results) assert.equal(r.recipients[0]?.reply.code, 250);
  const added = (await stored()).filter((f) => !before.includes(f));
  assert.equal(added.length, 3);
  for (const f of added)
    assert.deepEqual(readStored(join(w.dir, 'mail', 'new', f)).sent, Buffer.from(m));
  await pool.close();
});

test('pool: at most maxPerDestination sessions; queued jobs reuse them, one job at a time', async () => {
  const pool = new TransferPool(identity, { ca: w.ca, maxPerDestination: 2 });
  const m = smallMessage('many');
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      pool.run(endpoint(), deliverJob([`r${i}@example.net`], m), m),
    ),
  );
  assert.equal(pool.opened, 2);
  for (const [i, r] of results.entries()) {
    assert.equal(r.failure, undefined);
    assert.deepEqual(
      r.recipients.map((x) => [x.rcpt, x.reply.code]),
      [[`r${i}@example.net`, 250]],
    );
  }
  await pool.close();
});

/** A TCP relay in front of the server whose connections the test can cut. */
async function relay(port: number): Promise<{ server: Server; port: number; cut(): void }> {
  const open = new Set<Socket>();
  const s = createServer((c) => {
    const up = connect(port, '127.0.0.1');
    open.add(c);
    open.add(up);
    c.pipe(up).pipe(c);
    const drop = (): void => {
      c.destroy();
      up.destroy();
    };
    c.on('error', drop);
    up.on('error', drop);
    c.on('close', drop);
    up.on('close', drop);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  return {
    server: s,
    port: typeof addr === 'object' && addr !== null ? addr.port : 0,
    cut: () => {
      for (const x of open) x.destroy();
      open.clear();
    },
  };
}

test('pool: a broken connection is discarded and replaced', async () => {
  const r = await relay(server.port);
  const pool = new TransferPool(identity, { ca: w.ca });
  const at = { host: '127.0.0.1', port: r.port };
  const m = smallMessage('broken');
  const first = await pool.run(at, deliverJob(['x@example.net'], m), m);
  assert.equal(first.recipients[0]?.reply.code, 250);
  // Cut the idle session under the pool's feet, then ask at once: whether the pool notices
  // the close first or finds out on the dead session, the job runs on a new connection.
  r.cut();
  const second = await pool.run(at, deliverJob(['y@example.net'], m), m);
  assert.equal(second.failure, undefined);
  assert.equal(second.recipients[0]?.reply.code, 250);
  assert.equal(pool.opened, 2);
  await pool.close();
  await new Promise((resolve) => r.server.close(resolve));
});

test('pool: an idle session is closed after the idle timeout', async () => {
  const pool = new TransferPool(identity, { ca: w.ca, idleTimeoutMs: 20 });
  const m = smallMessage('idle');
  await pool.run(endpoint(), deliverJob(['z@example.net'], m), m);
  while (pool.size(endpoint()) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(pool.opened, 1);
});

test('deliver() with a shared pool: two messages to one domain over one connection', async () => {
  const pool = new TransferPool(identity, { ca: w.ca });
  const o = { srv: srvOf(server.port), pool };
  const a = await deliver('example.net', ['p@example.net'], smallMessage('p'), identity, o);
  const b = await deliver('example.net', ['q@example.net'], smallMessage('q'), identity, o);
  assert.deepEqual(
    [...a.recipients, ...b.recipients].map((x) => [x.rcpt, x.reply.code, x.endpoint.port]),
    [
      ['p@example.net', 250, server.port],
      ['q@example.net', 250, server.port],
    ],
  );
  assert.equal(pool.opened, 1);
  await pool.close();
});

test('deliver(): SRV fallback past a dead target; no route is reported, not thrown', async () => {
  const dead = createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const deadPort = (dead.address() as { port: number }).port;
  await new Promise((resolve) => dead.close(resolve));
  const m = smallMessage('fallback');
  const r = await deliver('example.net', ['f@example.net'], m, identity, {
    srv: srvOf(deadPort, server.port),
    ca: w.ca,
  });
  assert.deepEqual(r.unanswered, []);
  assert.equal(r.recipients[0]?.endpoint.port, server.port);
  const none = await deliver('example.net', ['f@example.net'], m, identity, {
    srv: () => Promise.resolve({ status: 'none' }),
  });
  assert.deepEqual(none.unanswered, ['f@example.net']);
  assert.equal((none.failure as { code: string }).code, 'NMTP_ERR_TRANSPORT_NO_ROUTE');
});

test('file source: announcement and every view equal the in-memory ones', async () => {
  const m = smallMessage('file');
  const path = join(w.dir, 'view.nmtp');
  writeFileSync(path, m);
  const src = await fileSource(path);
  const l = await src.layout();
  assert.deepEqual({ size: l.size, digest: l.digest, signers: l.signers }, announce(m));
  for (const v of ['full', 'headers', 'signers', 'digest', 'text'] as View[]) {
    const pieces: Uint8Array[] = [];
    // Small pieces: views are cut at arbitrary points and still come out whole.
    for await (const p of src.pieces(v, 7)) {
      // A piece is valid until the next is asked for: keep a copy.
      assert.ok(p.length <= 7);
      pieces.push(p.slice());
    }
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(viewOf(m, v)), v);
    assert.equal(await src.viewLength(v), viewOf(m, v).length);
  }
  // Octets after the message are not part of it: the file is refused, not half-sent.
  writeFileSync(path, Buffer.concat([m, Buffer.from('junk')]));
  await assert.rejects((await fileSource(path)).layout(), /NMTP_ERR_FRAME_TRAILING_BYTES/);
});

test('file source: a 50 MB message is sent with bounded memory (child process RSS)', async (t) => {
  const big = join(w.dir, 'big.nmtp');
  const small = join(w.dir, 'small.nmtp');
  const size = 50 * 1000 * 1000;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) body.writeUInt32BE(i, i);
  writeFileSync(
    big,
    encodeMessage({
      trace: [],
      root: { fields: [{ name: 'Content-Type', value: 'application/octet-stream' }], body },
    }),
  );
  writeFileSync(small, smallMessage('warm-up'));
  const child = fileURLToPath(new URL('./send-child.ts', import.meta.url));
  // Asynchronous: the receiving server runs in this process and must keep serving.
  const proc = spawn(process.execPath, [
    '--import',
    'tsx',
    child,
    String(server.port),
    w.cert.certFile,
    seed.toString('hex'),
    small,
    big,
  ]);
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  const r = { status, stdout, stderr };
  const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    code: number;
    size: number;
    baselineRss: number;
    peakRss: number;
  };
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  t.diagnostic(`50 MB send: baseline RSS ${mib(m.baselineRss)} MiB, peak ${mib(m.peakRss)} MiB`);
  assert.equal(m.code, 250);
  assert.ok(m.size > size);
  const id = readdirSync(join(w.dir, 'mail', 'new')).filter((f) => f.endsWith('.nmtp'));
  assert.ok(id.some((f) => readStored(join(w.dir, 'mail', 'new', f)).sent.length === m.size));
  // Generous (TLS buffers, lazy GC), but under the message: a client that held it whole
  // would grow by more than its 47.7 MiB.
  assert.ok(
    m.peakRss - m.baselineRss < 40 * 2 ** 20,
    `RSS grew by ${mib(m.peakRss - m.baselineRss)} MiB`,
  );
});

test('per-state timeouts: a server that never greets fails the job with "timeout"', async () => {
  const silent = createServer((c) => c.on('error', () => undefined));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  const m = smallMessage('silent');
  // Every client timeout divided by 1000: the 60 s greeting wait becomes 60 ms.
  const r = await transferTo(
    { host: '127.0.0.1', port },
    identity,
    deliverJob(['s@example.net'], m),
    m,
    {
      plaintext: true,
      timeoutScale: 0.001,
    },
  );
  assert.equal(r.failure, 'timeout');
  assert.deepEqual(r.recipients, []);
  await new Promise((resolve) => silent.close(resolve));
});
