/**
 * The append-only journal (src/store/journal.ts): the entry format read back whole, a
 * segment cut anywhere (torn) told apart from one damaged before its end, the limits, the
 * writer's segments and sequence numbers, and the startup recovery.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { NmtpError } from '../../src/core/errors/index.ts';
import {
  ENTRY_HEAD,
  entryHead,
  listSegments,
  MAX_BODY,
  MAX_META,
  recoverJournal,
  scanSegment,
  JournalWriter,
  type Entry,
} from '../../src/store/journal.ts';
import { codeOf } from '../support/code-of.ts';

const root = mkdtempSync(join(tmpdir(), 'nmtp-journal-'));
let dirs = 0;
const freshDir = (): string => join(root, `j${++dirs}`);

after(() => {
  rmSync(root, { recursive: true, force: true });
});

const utf8 = new TextEncoder();
// Buffer.from or TextEncoder alike (see the test of an empty body at the end).
const entry = (meta: string, body: string | Uint8Array): Entry => ({
  meta: Buffer.from(meta),
  body: typeof body === 'string' ? Buffer.from(body) : body,
});

/** A segment's octets as the writer lays them out, with each entry's end offset. */
function segmentOf(entries: readonly Entry[]): { bytes: Uint8Array; ends: number[] } {
  const parts: Uint8Array[] = [];
  const ends: number[] = [];
  let at = 0;
  for (const e of entries) {
    parts.push(entryHead(e.meta, e.body), e.meta, e.body);
    at += ENTRY_HEAD + e.meta.length + e.body.length;
    ends.push(at);
  }
  return { bytes: new Uint8Array(Buffer.concat(parts)), ends };
}

/** Entries as plain arrays, for deepEqual across Buffer / Uint8Array views. */
const plain = (es: readonly Entry[]): { meta: number[]; body: number[] }[] =>
  es.map((e) => ({ meta: [...e.meta], body: [...e.body] }));

/** Writes `entries` into `dir` as one committed segment; returns the segment's path. */
function writeSegment(dir: string, entries: readonly Entry[]): string {
  const w = new JournalWriter(dir);
  for (const e of entries) w.append(e.meta, e.body);
  w.commit(Date.now());
  const sealed = w.rotate();
  w.close();
  assert.ok(sealed !== undefined);
  return sealed;
}

const three = [entry('{"a":1}', 'first body'), entry('{"b":2}', 'second'), entry('', 'third!')];

test('round trip: entries written through JournalWriter are read back the same, clean', () => {
  const dir = freshDir();
  const big = Uint8Array.from(randomBytes(100 * 1024));
  const entries = [
    entry('{"ids":["x"]}', 'hello\r\n'),
    entry('', ''),
    entry('', 'body without meta'),
    entry('meta without body', ''),
    { meta: utf8.encode('{"empty":"on-heap"}'), body: new Uint8Array(0) },
    entry('{"big":true}', big),
  ];
  const w = new JournalWriter(dir);
  w.append(entries[0]!.meta, entries[0]!.body);
  w.append(entries[1]!.meta, entries[1]!.body);
  w.commit(1000);
  assert.equal(w.startedAt, 1000);
  for (const e of entries.slice(2)) w.append(e.meta, e.body);
  w.commit(2000);
  // The segment's age is counted from its first entry.
  assert.equal(w.startedAt, 1000);
  const expected = entries.reduce((n, e) => n + ENTRY_HEAD + e.meta.length + e.body.length, 0);
  assert.equal(w.bytes, expected);
  w.close();

  const segments = listSegments(dir);
  assert.equal(segments.length, 1);
  const bytes = readFileSync(segments[0]!.path);
  assert.equal(bytes.length, expected);
  const scan = scanSegment(bytes);
  assert.equal(scan.state, 'clean');
  assert.equal(scan.end, expected);
  assert.deepEqual(plain(scan.entries), plain(entries));
});

test('split anywhere: every prefix gives the whole entries before the cut, torn between boundaries', () => {
  const { bytes, ends } = segmentOf(three);
  for (let n = 0; n <= bytes.length; n++) {
    const scan = scanSegment(bytes.subarray(0, n));
    const whole = ends.filter((e) => e <= n).length;
    const boundary = n === 0 || ends.includes(n);
    assert.equal(scan.state, boundary ? 'clean' : 'torn', `prefix ${n}`);
    assert.equal(scan.entries.length, whole, `prefix ${n}`);
    assert.deepEqual(plain(scan.entries), plain(three.slice(0, whole)), `prefix ${n}`);
    assert.equal(scan.end, whole === 0 ? 0 : ends[whole - 1], `prefix ${n}`);
  }
});

test('a flipped octet: damaged inside a middle entry, torn inside the last one', () => {
  const { bytes, ends } = segmentOf(three);
  // In the body of the second entry (its last octet): the CRC no longer checks out.
  const middle = Uint8Array.from(bytes);
  middle[ends[1]! - 1]! ^= 0x01;
  const m = scanSegment(middle);
  assert.equal(m.state, 'damaged');
  assert.deepEqual(plain(m.entries), plain(three.slice(0, 1)));
  assert.equal(m.end, ends[0]);

  // The same in the last entry's body: a write that only partly reached the disk.
  const last = Uint8Array.from(bytes);
  last[ends[2]! - 2]! ^= 0x80;
  const l = scanSegment(last);
  assert.equal(l.state, 'torn');
  assert.deepEqual(plain(l.entries), plain(three.slice(0, 2)));
  assert.equal(l.end, ends[1]);

  // The magic of the first entry.
  const magic = Uint8Array.from(bytes);
  magic[0] = 0x58;
  const g = scanSegment(magic);
  assert.equal(g.state, 'damaged');
  assert.deepEqual(g.entries, []);
  assert.equal(g.end, 0);

  // The magic of the second entry: the first is still returned.
  const second = Uint8Array.from(bytes);
  second[ends[0]! + 1]! ^= 0xff;
  const s = scanSegment(second);
  assert.equal(s.state, 'damaged');
  assert.deepEqual(plain(s.entries), plain(three.slice(0, 1)));

  // A short tail that is not the start of a magic cannot be a torn head.
  const junk = Uint8Array.from([...bytes, 0x00, 0x01]);
  assert.equal(scanSegment(junk).state, 'damaged');
  assert.equal(scanSegment(junk).entries.length, 3);
});

test('lengths over MAX_META / MAX_BODY are damage, refused before anything is allocated', () => {
  const { bytes, ends } = segmentOf(three);
  for (const [offset, value] of [
    [4, MAX_META + 1],
    [8, MAX_BODY + 1],
    [4, 0xffffffff],
    [8, 0xffffffff],
  ] as const) {
    // The second entry's head claims more than the limits allow; the octets that follow
    // are far too few for it, so only the limit check can call it damaged (not torn).
    const b = Uint8Array.from(bytes);
    new DataView(b.buffer).setUint32(ends[0]! + offset, value);
    const scan = scanSegment(b);
    assert.equal(scan.state, 'damaged', `offset ${offset} = ${value}`);
    assert.deepEqual(plain(scan.entries), plain(three.slice(0, 1)));
    assert.equal(scan.end, ends[0]);
  }
  // At the limits exactly: not damage, just a torn (incomplete) entry.
  const head = entryHead(new Uint8Array(0), new Uint8Array(0));
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  v.setUint32(4, MAX_META);
  v.setUint32(8, MAX_BODY);
  assert.equal(scanSegment(head).state, 'torn');
});

test('entryHead refuses sizes over the limits', () => {
  const ok = entryHead(new Uint8Array(3), new Uint8Array(5));
  assert.equal(ok.length, ENTRY_HEAD);
  assert.equal(
    codeOf(() => entryHead(new Uint8Array(MAX_META + 1), new Uint8Array(0))),
    'NMTP_ERR_TRANSPORT_LOCAL',
  );
  // A body over the limit, without allocating 64 MiB: only `.length` is looked at.
  const huge = { length: MAX_BODY + 1 } as unknown as Uint8Array;
  assert.throws(() => entryHead(new Uint8Array(0), huge), NmtpError);
  // The writer refuses it at append, before anything is queued.
  const w = new JournalWriter(freshDir());
  assert.throws(() => w.append(new Uint8Array(MAX_META + 1), new Uint8Array(0)), NmtpError);
  w.commit(0);
  assert.equal(w.bytes, 0);
  w.close();
});

test('JournalWriter: an empty commit writes nothing; rotate starts a later segment', () => {
  const dir = freshDir();
  const w = new JournalWriter(dir);
  assert.equal(w.current, 1);
  w.commit(1);
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(w.rotate(), undefined, 'nothing to seal');
  assert.equal(w.current, 1);

  w.append(three[0]!.meta, three[0]!.body);
  w.commit(2);
  const first = w.rotate();
  assert.ok(first !== undefined);
  assert.equal(basename(first), '0000000000000001.log');
  assert.equal(w.current, 2);
  assert.equal(w.bytes, 0);

  // Appended then discarded (a failed commit): never written.
  w.append(utf8.encode('dropped'), utf8.encode('dropped'));
  w.discardPending();
  w.commit(3);
  assert.equal(listSegments(dir).length, 1);

  w.append(three[1]!.meta, three[1]!.body);
  w.append(three[2]!.meta, three[2]!.body);
  w.commit(4);
  assert.equal(w.startedAt, 4);
  w.close();

  const segments = listSegments(dir);
  assert.deepEqual(
    segments.map((s) => [s.seq, basename(s.path)]),
    [
      [1, '0000000000000001.log'],
      [2, '0000000000000002.log'],
    ],
  );
  assert.deepEqual(
    plain(scanSegment(readFileSync(segments[0]!.path)).entries),
    plain(three.slice(0, 1)),
  );
  assert.deepEqual(
    plain(scanSegment(readFileSync(segments[1]!.path)).entries),
    plain(three.slice(1)),
  );

  // A new writer on the same directory (a restart) continues after the last segment.
  const again = new JournalWriter(dir);
  assert.equal(again.current, 3);
  again.append(three[0]!.meta, three[0]!.body);
  again.commit(5);
  again.close();
  assert.deepEqual(
    listSegments(dir).map((s) => s.seq),
    [1, 2, 3],
  );
});

test('listSegments: oldest first, only <16 digits>.log names', () => {
  const dir = freshDir();
  new JournalWriter(dir).close();
  for (const name of [
    '0000000000000010.log',
    '0000000000000002.log',
    '0000000000000009.log',
    '0000000000000003.log.damaged',
    '12.log',
    'owner',
    '0000000000000004.log.tmp',
  ]) {
    writeFileSync(join(dir, name), '');
  }
  assert.deepEqual(
    listSegments(dir).map((s) => s.seq),
    [2, 9, 10],
  );
});

interface Recovery {
  readonly n: number;
  readonly applied: Entry[];
  readonly durable: number;
  readonly damage: NmtpError[];
}

async function recover(dir: string): Promise<Recovery> {
  const applied: Entry[] = [];
  const damage: NmtpError[] = [];
  let durable = 0;
  const n = await recoverJournal(
    dir,
    (e) => {
      applied.push(e);
      return Promise.resolve();
    },
    () => {
      durable++;
      return Promise.resolve();
    },
    (e) => damage.push(e),
  );
  return { n, applied, durable, damage };
}

test('recoverJournal: a clean segment and one with a torn tail: all whole entries, then removed', async () => {
  const dir = freshDir();
  const a = writeSegment(dir, three.slice(0, 2));
  const b = writeSegment(dir, [three[2]!, entry('{"torn":1}', 'never acknowledged')]);
  // A crash in the middle of the last write.
  const bytes = readFileSync(b);
  writeFileSync(b, bytes.subarray(0, bytes.length - 5));
  assert.equal(scanSegment(readFileSync(b)).state, 'torn');

  const r = await recover(dir);
  assert.equal(r.n, 3);
  assert.deepEqual(plain(r.applied), plain(three));
  assert.equal(r.durable, 1);
  assert.deepEqual(r.damage, []);
  assert.equal(existsSync(a), false);
  assert.equal(existsSync(b), false);
  assert.deepEqual(readdirSync(dir), []);
});

test('recoverJournal: a damaged segment: its whole entries applied, kept as .damaged, reported', async () => {
  const dir = freshDir();
  const a = writeSegment(dir, three);
  const b = writeSegment(dir, [entry('{"later":1}', 'after the damage')]);
  const { ends } = segmentOf(three);
  const bytes = readFileSync(a);
  bytes[ends[0]! + ENTRY_HEAD]! ^= 0x20; // the second entry's meta
  writeFileSync(a, bytes);

  const r = await recover(dir);
  assert.equal(r.n, 2);
  assert.deepEqual(plain(r.applied), plain([three[0]!, entry('{"later":1}', 'after the damage')]));
  assert.equal(r.durable, 1);
  assert.equal(r.damage.length, 1);
  assert.ok(r.damage[0] instanceof NmtpError);
  assert.equal(r.damage[0].code, 'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED');
  assert.equal(existsSync(a), false);
  assert.equal(existsSync(b), false);
  assert.deepEqual(readdirSync(dir), [`${basename(a)}.damaged`]);
  // Kept as it was, for a person to look at.
  assert.ok(readFileSync(`${a}.damaged`).equals(bytes));
  // And never replayed again.
  const again = await recover(dir);
  assert.equal(again.n, 0);
  assert.equal(again.durable, 0);
});

test('recoverJournal: an empty (or missing) directory: 0, nothing made durable', async () => {
  const dir = freshDir();
  const missing = await recover(dir);
  assert.deepEqual(missing, { n: 0, applied: [], durable: 0, damage: [] });
  assert.ok(existsSync(dir), 'created');
  writeFileSync(join(dir, 'owner'), '1\n');
  const r = await recover(dir);
  assert.deepEqual(r, { n: 0, applied: [], durable: 0, damage: [] });
  assert.deepEqual(readdirSync(dir), ['owner']);
});

test('recoverJournal: a segment with no entries at all (created, crash before the write)', async () => {
  const dir = freshDir();
  new JournalWriter(dir).close();
  writeFileSync(join(dir, '0000000000000001.log'), '');
  const r = await recover(dir);
  assert.equal(r.n, 0);
  assert.equal(r.durable, 1);
  assert.deepEqual(readdirSync(dir), []);
});

test('a second damaged segment does not overwrite the first one kept aside (a writer numbers after both)', async () => {
  const dir = freshDir();
  const first = writeSegment(dir, three);
  const firstBytes = readFileSync(first);
  firstBytes[0] = 0; // damaged from the start
  writeFileSync(first, firstBytes);
  await recover(dir);
  // The next run's writer numbers after the damaged segment kept aside.
  const second = writeSegment(dir, three);
  const secondBytes = readFileSync(second);
  secondBytes[1] = 0;
  writeFileSync(second, secondBytes);
  await recover(dir);
  const kept = readdirSync(dir).filter((n) => n.includes('.damaged'));
  assert.equal(kept.length, 2, `kept aside: ${kept.join(' ')}`);
});

test('an empty body on a zero-length ArrayBuffer is written with the CRC of its meta (zlib.crc32 would give 0)', () => {
  const meta = utf8.encode('{"ids":["x"]}');
  for (const body of [utf8.encode(''), new Uint8Array(new ArrayBuffer(0))]) {
    const { bytes } = segmentOf([
      { meta, body },
      { meta, body },
    ]);
    const scan = scanSegment(bytes);
    assert.equal(scan.state, 'clean');
    assert.equal(scan.entries.length, 2);
  }
});

test('a zero-filled tail (the size reached the disk, the data did not) is a torn write, not damage', () => {
  const { bytes } = segmentOf(three);
  for (const zeros of [1, 15, 16, 4096]) {
    const withTail = Buffer.concat([bytes, Buffer.alloc(zeros)]);
    const scan = scanSegment(withTail);
    assert.equal(scan.state, 'torn', `${zeros} zeros`);
    assert.equal(scan.entries.length, three.length);
    assert.equal(scan.end, bytes.length);
  }
  // Zeros followed by anything else are damage.
  const mixed = Buffer.concat([bytes, Buffer.alloc(20), Buffer.from('x')]);
  assert.equal(scanSegment(mixed).state, 'damaged');
});
