/**
 * The native dot-stuffing path (adapters/smtp-sender/data-stuff.ts) against nodemailer's own
 * DataStream: for random inputs biased toward dots, CR, LF and their pairs, and random
 * chunkings (1-octet chunks, splits between CR and LF, empty chunks), a hooked DataStream
 * pushes the same buffers and keeps the same inByteCount / outByteCount / lastByte as a
 * plain one, through _flush. Then the hook through the connection pool: a message with dot
 * lines arrives intact at a scripted server, the native path did run, and a changed
 * nodemailer (no _createSendStream, or no DataStream from it) fails the message with
 * NMTP_ERR_INTERNAL before any of it is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable, type Transform } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import {
  fastStuffedChunks,
  hookDataStream,
  stuffCrlfChunk,
} from '../../../adapters/smtp-sender/data-stuff.ts';
import { smtpPool, type SmtpPool } from '../../../adapters/smtp-sender/pool.ts';
import { startScripted } from './scripted-server.ts';
import { prng } from '../../support/prng.ts';

/** nodemailer's DataStream: not exported, loaded from beside the SMTPConnection in use. */
interface DataStream extends Transform {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  _transform(
    chunk: unknown,
    encoding: BufferEncoding | 'buffer',
    done: (err?: Error | null) => void,
  ): void;
  _flush(done: (err?: Error | null) => void): void;
}
const DataStreamClass = (
  (await import(
    new URL('./smtp-connection/data-stream.js', import.meta.resolve('nodemailer')).href
  )) as { default: new () => DataStream }
).default;

const DIRTY = [
  '.',
  '\r',
  '\n',
  '\r\n',
  '\r.',
  '\n.',
  '\r\n.',
  '..',
  'a',
  '\0',
  '\xff',
  '\r\r',
  '\n\n',
];
const CLEAN = ['\r\n', '\r\n.', '\r\n..', '.', '..', 'ab', '\r\n.\r\n', '\r\n\r\n', 'é'];

function randomInput(rnd: () => number): Buffer {
  // Mostly CRLF text (the native path), some with a rare bare CR/LF, some noise.
  const mode = rnd();
  const dirtyRate = mode < 0.5 ? 0 : mode < 0.8 ? 0.02 : 0.6;
  const tokens = rnd() < 0.02 ? 1000 : Math.floor(rnd() * 120);
  const parts: string[] = [];
  for (let i = 0; i < tokens; i++) {
    const r = rnd();
    if (r < 0.08) parts.push('x'.repeat(1 + Math.floor(rnd() * (rnd() < 0.1 ? 3000 : 80))));
    else {
      const set = rnd() < dirtyRate ? DIRTY : CLEAN;
      parts.push(set[Math.floor(rnd() * set.length)]!);
    }
  }
  return Buffer.from(parts.join(''), 'latin1');
}

type Chunking = 'whole' | 'octets' | 'random' | 'at-cr' | 'at-dots';

function chunk(input: Buffer, how: Chunking, rnd: () => number): Buffer[] {
  const cuts: number[] = [];
  for (let i = 1; i < input.length; i++) {
    const prev = input[i - 1]!;
    const byte = input[i]!;
    if (
      how === 'octets' ||
      (how === 'random' && rnd() < 0.05) ||
      (how === 'at-cr' && prev === 0x0d) ||
      (how === 'at-dots' && (byte === 0x2e || prev === 0x0a))
    ) {
      cuts.push(i);
    }
  }
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, input.length]) {
    out.push(input.subarray(from, c));
    if (how === 'random' && rnd() < 0.02) out.push(Buffer.alloc(0));
    from = c;
  }
  return out;
}

/** A DataStream whose pushes are recorded instead of buffered. */
function recording(hooked: boolean): { ds: DataStream; pushed: Buffer[] } {
  const ds = new DataStreamClass();
  if (hooked) assert.equal(hookDataStream(ds), true);
  const pushed: Buffer[] = [];
  ds.push = (b: unknown): boolean => {
    pushed.push(Buffer.from(b as Buffer));
    return true;
  };
  return { ds, pushed };
}

function counters(ds: DataStream): [number, number, number | false] {
  return [ds.inByteCount, ds.outByteCount, ds.lastByte];
}

function syncCall(f: (done: (err?: Error | null) => void) => void): void {
  let called = false;
  f((err) => {
    assert.equal(err ?? null, null);
    called = true;
  });
  assert.ok(called, 'done is called synchronously');
}

test('equivalence: the hooked DataStream pushes what nodemailer pushes, counters included', () => {
  const chunkings: Chunking[] = ['whole', 'octets', 'random', 'at-cr', 'at-dots'];
  const before = fastStuffedChunks();
  let chunks = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const rnd = prng(seed);
    const input = randomInput(rnd);
    for (const how of chunkings) {
      const parts = chunk(input, how, rnd);
      const plain = recording(false);
      const fast = recording(true);
      const where = `seed ${seed}, ${how}`;
      // After each step: the same buffers pushed by it (compared as they come, so a long
      // run of 1-octet chunks stays linear) and the same counters.
      const same = (step: string): void => {
        assert.equal(fast.pushed.length, plain.pushed.length, `${where}, ${step}`);
        for (let k = compared; k < plain.pushed.length; k++) {
          assert.deepEqual(fast.pushed[k], plain.pushed[k], `${where}, ${step}`);
        }
        compared = plain.pushed.length;
        assert.deepEqual(counters(fast.ds), counters(plain.ds), `${where}, ${step}`);
      };
      let compared = 0;
      for (const [i, p] of parts.entries()) {
        syncCall((done) => plain.ds._transform(p, 'buffer', done));
        syncCall((done) => fast.ds._transform(p, 'buffer', done));
        same(`chunk ${i}`);
        chunks++;
      }
      syncCall((done) => plain.ds._flush(done));
      syncCall((done) => fast.ds._flush(done));
      same('flush');
    }
  }
  // Both paths were exercised: the native one on most chunks, nodemailer's on the rest.
  const fastOnes = fastStuffedChunks() - before;
  assert.ok(fastOnes > chunks / 4, `${fastOnes} of ${chunks} chunks on the native path`);
  assert.ok(fastOnes < chunks, `${fastOnes} of ${chunks} chunks on the native path`);
});

test('edge cases octet for octet, including the stream API and string chunks', async () => {
  const cases: (string | Buffer)[][] = [
    ['.'],
    ['.', '.'],
    ['\r\n', '.'],
    ['a\r', '\n.b\r\n'],
    ['a\r', '.b'],
    ['a\r', '\r\n'],
    ['a\n', '.'],
    ['\r\n.\r\n'],
    ['abc'],
    ['x\r\n..y\r\n.\r\n', '.', '\r', '\n'],
    ['a\r\n', Buffer.alloc(0), '.b\r\n'],
  ];
  const run = async (hooked: boolean, parts: (string | Buffer)[]): Promise<Buffer> => {
    const ds = new DataStreamClass();
    if (hooked) hookDataStream(ds);
    const out: Buffer[] = [];
    ds.on('data', (b: Buffer) => out.push(b));
    const ended = new Promise((resolve) => ds.on('end', resolve));
    for (const p of parts) ds.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    ds.end();
    await ended;
    return Buffer.concat(out);
  };
  for (const parts of cases) {
    assert.deepEqual(await run(true, parts), await run(false, parts), JSON.stringify(parts));
  }
  // A string handed to _transform itself goes to nodemailer's code, which decodes it.
  const plain = recording(false);
  const fast = recording(true);
  syncCall((done) => plain.ds._transform('.é\r\n', 'utf8', done));
  syncCall((done) => fast.ds._transform('.é\r\n', 'utf8', done));
  assert.deepEqual(fast.pushed, plain.pushed);
  assert.deepEqual(counters(fast.ds), counters(plain.ds));
});

test('stuffCrlfChunk: the dots, the chunk itself when none, undefined for bare line ends', () => {
  const b = Buffer.from('a\r\nb\r\n');
  assert.equal(stuffCrlfChunk(b, false), b);
  assert.equal(stuffCrlfChunk(Buffer.from('.a\r\n.\r\nb'), false)?.toString(), '..a\r\n..\r\nb');
  assert.equal(stuffCrlfChunk(Buffer.from('.a'), 0x0a)?.toString(), '..a');
  assert.equal(stuffCrlfChunk(Buffer.from('.a'), 0x61)?.toString(), '.a');
  assert.equal(stuffCrlfChunk(Buffer.from('\n.a'), 0x0d)?.toString(), '\n..a');
  assert.equal(stuffCrlfChunk(Buffer.from('.a'), 0x0d), undefined);
  assert.equal(stuffCrlfChunk(Buffer.from('a\nb'), false), undefined);
  assert.equal(stuffCrlfChunk(Buffer.from('a\rb'), false), undefined);
  assert.equal(stuffCrlfChunk(Buffer.from('a\0b'), false), undefined);
  // A CR at the end waits for the next chunk, as in DataStream.
  assert.equal(stuffCrlfChunk(Buffer.from('a\r'), false)?.toString(), 'a\r');
  assert.equal(hookDataStream(new PassThrough()), false);
});

const DOTTY = Buffer.from(
  '.From: dots\r\nSubject: x\r\n\r\n.\r\n..\r\n.a\r\nb.\r\n\r\n.\r\nend\r\n',
  'latin1',
);

async function withPool(
  run: (pool: SmtpPool, server: Awaited<ReturnType<typeof startScripted>>) => Promise<void>,
): Promise<void> {
  const server = await startScripted();
  const pool = smtpPool({
    connection: { host: '127.0.0.1', port: server.port, name: 'gw.example.net' },
    idleTimeout: 0,
  });
  try {
    await run(pool, server);
  } finally {
    pool.close();
    await server.close();
  }
}

/** What DataStream puts on the wire for `bytes` in these chunks (its outByteCount). */
function wireSize(parts: Buffer[]): number {
  const { ds } = recording(false);
  for (const p of parts) syncCall((done) => ds._transform(p, 'buffer', done));
  syncCall((done) => ds._flush(done));
  return ds.outByteCount;
}

test('the pool stuffs on the native path: dot lines arrive intact, sizes as nodemailer counts', async () => {
  await withPool(async (pool, server) => {
    const envelope = { from: 'a@legacy.example', to: ['b@legacy.example'] };
    const before = fastStuffedChunks();
    const info = await pool.send(envelope, DOTTY);
    assert.ok(fastStuffedChunks() > before, 'the native path ran');
    assert.equal(info.messageSize, wireSize([DOTTY]));

    // A stream cut between CR and LF and before dots.
    const parts = [7, 20, 27, 28, 40].reduce<{ at: number; out: Buffer[] }>(
      (acc, cut) => ({ at: cut, out: [...acc.out, DOTTY.subarray(acc.at, cut)] }),
      { at: 0, out: [] },
    );
    parts.out.push(DOTTY.subarray(parts.at));
    const streamed = fastStuffedChunks();
    const info2 = await pool.send(envelope, () => Readable.from(parts.out, { objectMode: false }));
    assert.ok(fastStuffedChunks() > streamed, 'the native path ran on the stream');
    assert.equal(info2.messageSize, wireSize(parts.out));

    assert.deepEqual(server.connections[0]!.messages, [DOTTY, DOTTY]);
  });
});

type Factory = (this: SMTPConnection, cb: (err: Error | null, r?: string) => void) => unknown;
const proto = SMTPConnection.prototype as unknown as { _createSendStream?: Factory };

test('nodemailer without _createSendStream: NMTP_ERR_INTERNAL before MAIL FROM', async () => {
  const saved = proto._createSendStream;
  delete proto._createSendStream;
  try {
    await withPool(async (pool, server) => {
      await assert.rejects(
        pool.send({ from: 'a@legacy.example', to: ['b@legacy.example'] }, DOTTY),
        {
          code: 'NMTP_ERR_INTERNAL',
        },
      );
      assert.ok(!server.connections[0]!.commands.some((c) => c.startsWith('MAIL')));
    });
  } finally {
    proto._createSendStream = saved;
  }
});

test('a DATA stream that is not a DataStream: NMTP_ERR_INTERNAL, nothing of the message sent', async () => {
  const saved = proto._createSendStream!;
  proto._createSendStream = function (cb) {
    saved.call(this, cb);
    return new PassThrough();
  };
  try {
    await withPool(async (pool, server) => {
      await assert.rejects(
        pool.send({ from: 'a@legacy.example', to: ['b@legacy.example'] }, DOTTY),
        {
          code: 'NMTP_ERR_INTERNAL',
        },
      );
      const conn = server.connections[0]!;
      await conn.closed;
      assert.deepEqual(conn.messages, []);
      assert.equal(conn.commands.at(-1), 'DATA');
    });
  } finally {
    proto._createSendStream = saved;
  }
});
