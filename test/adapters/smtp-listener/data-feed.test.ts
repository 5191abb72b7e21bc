/**
 * The DATA reader's fast path (adapters/smtp-listener/data-feed.ts) against smtp-server's
 * own: the same message octets, the same end of the data, the same byte counts and size
 * verdict, and the same commands read after the data — for random data full of CR, LF and
 * dots (escape dots, terminators, dots at the start of the data), split anywhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { fastDataFeed } from '../../../adapters/smtp-listener/data-feed.ts';

interface Seen {
  data: string;
  ended: boolean;
  bytes: number;
  sizeExceeded: boolean;
  commands: string[];
}

async function read(chunks: readonly Buffer[], maxBytes: number, fast: boolean): Promise<Seen> {
  const s = new SMTPStream();
  if (fast) fastDataFeed(s);
  const seen: Seen = { data: '', ended: false, bytes: 0, sizeExceeded: false, commands: [] };
  s.oncommand = (command: Buffer, callback?: () => void): void => {
    seen.commands.push(command.toString('latin1'));
    callback?.();
  };
  const stream = s.startDataMode(maxBytes);
  stream.on('data', (d: Buffer) => (seen.data += d.toString('latin1')));
  stream.on('end', () => {
    seen.ended = true;
    seen.bytes = stream.byteLength;
    seen.sizeExceeded = stream.sizeExceeded;
    s.continue();
  });
  for (const c of chunks) {
    await new Promise<void>((resolve, reject) =>
      s.write(c, (e?: Error | null) => (e ? reject(e) : resolve())),
    );
  }
  // The end of the data and what follows it settle on later turns of the event loop.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  if (!seen.ended) seen.bytes = s.dataBytes;
  return seen;
}

const piece = fc.constantFrom(
  'a',
  'text ',
  '\r\n',
  '\r',
  '\n',
  '.',
  '..',
  '\r\n.',
  '\r\n..',
  '\r\n.\r\n',
  '.\r\n',
  'QUIT\r\n',
  'x'.repeat(70),
);
const input = fc
  .tuple(fc.array(piece, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 8 }), fc.nat(400))
  .map(([parts, cuts, max]) => {
    const all = Buffer.from(parts.join(''), 'latin1');
    const at = [...new Set(cuts.map((c) => (all.length === 0 ? 0 : c % all.length)))].sort(
      (a, b) => a - b,
    );
    const chunks: Buffer[] = [];
    let from = 0;
    for (const c of at) {
      if (c > from) chunks.push(all.subarray(from, c));
      from = Math.max(from, c);
    }
    if (from < all.length) chunks.push(all.subarray(from));
    return { chunks, maxBytes: max + 1 };
  });

test('the fast path reads what smtp-server reads, for any data split anywhere', async () => {
  await fc.assert(
    fc.asyncProperty(input, async ({ chunks, maxBytes }) => {
      const own = await read(chunks, maxBytes, false);
      const fast = await read(chunks, maxBytes, true);
      assert.deepEqual(fast, own);
    }),
    { numRuns: 3000 },
  );
});

test('a long clean message: passed on in its chunks, all but the last 4 octets each time', async () => {
  const body = 'a line of text of a message\r\n'.repeat(4000);
  const msg = Buffer.from(`${body}.\r\nQUIT\r\n`, 'latin1');
  const chunks = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) =>
    msg.subarray((k * msg.length) / 9, ((k + 1) * msg.length) / 9),
  );
  const own = await read(chunks, 10_000_000, false);
  const fast = await read(chunks, 10_000_000, true);
  assert.deepEqual(fast, own);
  assert.equal(fast.data, body);
  assert.deepEqual(fast.commands, ['QUIT']);
});
