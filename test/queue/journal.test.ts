/**
 * The embedded queue's journal (src/queue/journal.ts, src/queue/store.ts): the changes made
 * at the same moment share one fdatasync (issue 9: ~5 fsyncs per message before); the
 * files stay readable at once; a replay at open leaves every file at its last committed
 * content, drops a torn last change and keeps a damaged segment aside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { Queue, type DeliverOutcome, type DeliverRequest } from '../../src/queue/index.ts';
import { QueueJournal, replayJournal, type JournalRecord } from '../../src/queue/journal.ts';
import { entryHead } from '../../src/store/journal.ts';

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body: new Uint8Array([0x61]) },
});
const accept = async (r: DeliverRequest): Promise<DeliverOutcome> => ({
  recipients: (r.job.kind === 'deliver' ? r.job.recipients : [r.rcpt!]).map((rcpt) => ({
    rcpt,
    reply: { code: 250, enhanced: '2.0.0', params: { rcpt, id: `id-${rcpt}` }, text: '' },
  })),
});
const dirOf = (): string => mkdtempSync(join(tmpdir(), 'nmtp-queue-journal-'));
const enc = new TextEncoder();
const dec = new TextDecoder();

test('20 entries added at once: one fdatasync for all of them, both files written behind', async () => {
  const dir = dirOf();
  const q = await Queue.open({ dir, deliver: accept, timers: false, concurrency: 20 });
  try {
    const ids = Array.from({ length: 20 }, (_, i) => `g${i}`);
    await Promise.all(
      ids.map((id) =>
        q.add({ id, user: 'alice@example.org', recipients: ['bob@b.example'], message }),
      ),
    );
    const stats = q.store.journalStats!;
    assert.equal(stats.commits, 20);
    assert.equal(stats.syncs, 1, 'one group commit');
    // The queue reads the messages from memory until their files are written.
    for (const id of ids) assert.deepEqual(await q.store.readMessage(id), message);
    await q.store.writeBehindNow();
    for (const id of ids) {
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'msg', `${id}.nmtp`))), message);
      const s = JSON.parse(readFileSync(join(dir, 'state', `${id}.json`), 'utf8')) as {
        id: string;
      };
      assert.equal(s.id, id);
    }
    // Their deliveries are journaled too.
    await q.tick();
    assert.equal(stats.commits, 40);
  } finally {
    await q.close();
  }
  // A clean close leaves no journal to replay: only the files.
  assert.deepEqual(readdirSync(join(dir, 'journal')), []);
  const q2 = await Queue.open({ dir, deliver: accept, timers: false });
  try {
    assert.equal((await q2.list()).length, 20);
    assert.ok((await q2.list()).every((s) => s.done !== undefined));
  } finally {
    await q2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('written behind: an entry delivered before then never gets a message file, and its state file is written once, final', async () => {
  const dir = dirOf();
  const q = await Queue.open({ dir, deliver: accept, timers: false });
  try {
    await q.add({ id: 'wb', user: 'alice@example.org', recipients: ['bob@b.example'], message });
    assert.deepEqual(readdirSync(join(dir, 'msg')), [], 'not written yet');
    assert.deepEqual(readdirSync(join(dir, 'state')), [], 'not written yet');
    await q.tick();
    assert.notEqual((await q.get('wb'))?.done, undefined, 'delivered from memory');
    const stats = q.store.journalStats!;
    assert.ok(stats.commits >= 2, 'every change journaled');
    await q.store.writeBehindNow();
    assert.deepEqual(readdirSync(join(dir, 'msg')), [], 'the message never reached a file');
    const s = JSON.parse(readFileSync(join(dir, 'state', 'wb.json'), 'utf8')) as {
      done?: number;
      recipients: { state: string }[];
    };
    assert.notEqual(s.done, undefined, 'the state file holds the last change');
    assert.equal(s.recipients[0]!.state, 'accepted');
  } finally {
    await q.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('written behind: each file waits its own time, not the batch of the first one due', async () => {
  // With one timer for the whole batch, B's files (added half-way) were written with A's.
  const dir = dirOf();
  const wait = 1500;
  const q = await Queue.open({ dir, deliver: accept, timers: false, writeBehindMs: wait });
  const until = async (path: string): Promise<void> => {
    for (const end = Date.now() + 30_000; !existsSync(path);) {
      if (Date.now() > end) assert.fail(`${path} never written`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    await q.add({ id: 'a', user: 'alice@example.org', recipients: ['bob@b.example'], message });
    await new Promise((r) => setTimeout(r, wait / 2));
    const bAdded = performance.now();
    await q.add({ id: 'b', user: 'alice@example.org', recipients: ['bob@b.example'], message });
    await until(join(dir, 'msg', 'a.nmtp'));
    await until(join(dir, 'msg', 'b.nmtp'));
    assert.ok(
      performance.now() - bAdded >= wait - 60,
      'B written no earlier than its own due time',
    );
  } finally {
    await q.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('written behind: a kill before the files are written loses nothing committed (replayed at open)', async () => {
  const dir = dirOf();
  const q = await Queue.open({ dir, deliver: accept, timers: false });
  await q.add({ id: 'k1', user: 'alice@example.org', recipients: ['bob@b.example'], message });
  q.abandon();
  assert.deepEqual(readdirSync(join(dir, 'state')), [], 'no file was written');
  const q2 = await Queue.open({ dir, deliver: accept, timers: false });
  try {
    assert.equal((await q2.get('k1'))?.recipients[0]?.state, 'pending');
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'msg', 'k1.nmtp'))), message);
    await q2.tick();
    assert.equal((await q2.get('k1'))?.recipients[0]?.state, 'accepted');
  } finally {
    await q2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a large message is written on its own, its state journaled; both survive a restart', async () => {
  const dir = dirOf();
  const big = encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: '<alice@example.org>' }],
      body: new Uint8Array(300 * 1024).fill(0x61),
    },
  });
  const q = await Queue.open({ dir, deliver: accept, timers: false });
  await q.add({
    id: 'big',
    user: 'alice@example.org',
    recipients: ['bob@b.example'],
    message: big,
  });
  q.abandon();
  const q2 = await Queue.open({ dir, deliver: accept, timers: false });
  try {
    assert.equal((await q2.get('big'))?.recipients[0]?.state, 'pending');
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'msg', 'big.nmtp'))), big);
  } finally {
    await q2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Journals records with the writer, abandons it (a crash: nothing removed), returns the dir. */
async function journalOf(batches: JournalRecord[][]): Promise<string> {
  const dir = join(dirOf(), 'journal');
  const errors: unknown[] = [];
  const j = new QueueJournal({
    dir,
    durable: async () => undefined,
    onError: (e) => errors.push(e),
  });
  for (const b of batches) (await j.commit(b, [])).release(true);
  j.abandon();
  assert.deepEqual(errors, []);
  return dir;
}

const state = (id: string, v: string): JournalRecord => ({ op: 'state', id, body: enc.encode(v) });

async function replayed(
  dir: string,
): Promise<{ files: Map<string, string>; damage: string[]; n: number }> {
  const files = new Map<string, string>();
  const damage: string[] = [];
  const n = await replayJournal(
    dir,
    async (r) => {
      if (r.op === 'remove') {
        files.delete(`state:${r.id}`);
      } else {
        files.set(`${r.op}:${r.id}`, dec.decode(r.body));
      }
      return [];
    },
    async () => undefined,
    (e) => damage.push(e.message),
  );
  return { files, damage, n };
}

test('replay: every file at its last committed content, removals kept, segments gone', async () => {
  const dir = await journalOf([
    [{ op: 'message', id: 'a', body: enc.encode('A') }, state('a', 's1')],
    [state('b', 'b1')],
    [state('a', 's2')],
    [{ op: 'remove', id: 'b', body: new Uint8Array(0) }],
  ]);
  const r = await replayed(dir);
  assert.equal(r.n, 5);
  assert.deepEqual([...r.files.entries()].sort(), [
    ['message:a', 'A'],
    ['state:a', 's2'],
  ]);
  assert.deepEqual(r.damage, []);
  assert.deepEqual(readdirSync(dir), [], 'replayed segments are removed');
});

test('replay: a message written on its own ("file") is never overwritten by an older one of the id', async () => {
  const dir = await journalOf([
    [{ op: 'message', id: 'x', body: enc.encode('old') }, state('x', 's1')],
    [{ op: 'remove', id: 'x', body: new Uint8Array(0) }],
    [{ op: 'file', id: 'x', body: new Uint8Array(0) }, state('x', 'new')],
  ]);
  const r = await replayed(dir);
  assert.deepEqual([...r.files.entries()], [['state:x', 'new']]);
});

test('an id used again with a large message after a delete: a crash and replay keep the new message', async () => {
  const dir = dirOf();
  const big = encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: '<alice@example.org>' }],
      body: new Uint8Array(300 * 1024).fill(0x62),
    },
  });
  const q = await Queue.open({ dir, deliver: accept, timers: false });
  const e = { id: 'again', user: 'alice@example.org', recipients: ['bob@b.example'] };
  await q.add({ ...e, message });
  assert.equal(await q.delete('again'), true);
  await q.add({ ...e, message: big });
  q.abandon();
  const q2 = await Queue.open({ dir, deliver: accept, timers: false });
  try {
    assert.equal((await q2.get('again'))?.size, big.length);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'msg', 'again.nmtp'))), big);
  } finally {
    await q2.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replay: a torn last change was never acknowledged and is dropped', async () => {
  const dir = await journalOf([[state('a', 's1')]]);
  const [seg] = readdirSync(dir);
  const meta = enc.encode(JSON.stringify({ op: 'state', id: 'a' }));
  const body = enc.encode('s2');
  const whole = new Uint8Array([...entryHead(meta, body), ...meta, ...body]);
  appendFileSync(join(dir, seg!), whole.subarray(0, whole.length - 1));
  const r = await replayed(dir);
  assert.equal(r.files.get('state:a'), 's1');
  assert.deepEqual(r.damage, []);
});

test('replay: a damaged segment is replayed up to the damage and kept aside, reported', async () => {
  const dir = await journalOf([[state('a', 's1')]]);
  const [seg] = readdirSync(dir);
  // Damage, then a whole entry after it: nothing is guessed around the damage.
  appendFileSync(join(dir, seg!), enc.encode('garbage-garbage-garbage'));
  const r = await replayed(dir);
  assert.equal(r.files.get('state:a'), 's1');
  assert.equal(r.damage.length, 1);
  assert.deepEqual(readdirSync(dir), [`${seg}.damaged`]);
  // A new writer numbers after it.
  const j = new QueueJournal({ dir, durable: async () => undefined, onError: () => undefined });
  (await j.commit([state('c', 'c1')], [])).release(true);
  j.abandon();
  assert.equal(readdirSync(dir).length, 2);
});

test('replay: an entry naming a path, not an id, is refused as damage', async () => {
  const dir = join(dirOf(), 'journal');
  mkdirSync(dir, { recursive: true });
  const meta = enc.encode(JSON.stringify({ op: 'state', id: '../../etc/x' }));
  const body = enc.encode('x');
  writeFileSync(
    join(dir, '0000000000000001.log'),
    new Uint8Array([...entryHead(meta, body), ...meta, ...body]),
  );
  const r = await replayed(dir);
  assert.equal(r.files.size, 0);
  assert.equal(r.damage.length, 2, 'the entry, then its segment kept aside');
  assert.ok(existsSync(join(dir, '0000000000000001.log.damaged')));
});

test('a change that could not be written to its file keeps its segment for the next open', async () => {
  const dir = join(dirOf(), 'journal');
  const errors: unknown[] = [];
  const j = new QueueJournal({
    dir,
    durable: async () => undefined,
    onError: (e) => errors.push(e),
  });
  (await j.commit([state('a', 's1')], [])).release(false);
  (await j.commit([state('b', 'b1')], [])).release(true);
  await j.close();
  assert.equal(readdirSync(dir).length, 1, 'kept');
  assert.equal(errors.length, 1);
  const r = await replayed(dir);
  assert.equal(r.files.get('state:a'), 's1');
});
