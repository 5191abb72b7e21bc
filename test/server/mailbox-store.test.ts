/**
 * The mailbox's journal store (src/server/mailbox-store.ts) and its writer thread
 * (src/server/mailbox-writer.ts): messages put into new/ from a journal entry (a copy per
 * recipient with its Received field, a replay rewrites them whole), entry meta checked
 * before any file is named after it, the replay a crash leaves to the next start, the one-writer claim,
 * and the writer end to end.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NmtpError } from '../../src/core/errors/index.ts';
import { JournalWriter, listSegments } from '../../src/store/journal.ts';
import {
  claimMaildir,
  decodeEntry,
  encodeMeta,
  journalDir,
  materialize,
  recoverMailbox,
  removeParts,
  type StoredMessage,
} from '../../src/server/mailbox-store.ts';
import { MailboxWriter } from '../../src/server/mailbox-writer.ts';
import { codeOf } from '../support/code-of.ts';
import { appendTraceField, decodeMessage, encodeMessage } from '../../src/core/frame/index.ts';
import { formatReceived, parseReceived } from '../../src/core/session/index.ts';

const root = mkdtempSync(join(tmpdir(), 'nmtp-mailbox-store-'));
let dirs = 0;
/** A maildir with the directories Mailbox.open makes. */
function freshMaildir(): string {
  const maildir = join(root, `m${++dirs}`);
  for (const d of ['tmp', 'new', 'held']) mkdirSync(join(maildir, d), { recursive: true });
  return maildir;
}

after(() => {
  rmSync(root, { recursive: true, force: true });
});

const field = (rcpt: string): string =>
  formatReceived({
    rcpt,
    at: 1795000000,
    domain: 'example.org',
    ip: '192.0.2.10',
    proof: 'pass',
    csv: 'pass',
  });
/** A framed message with a random body of 500 octets and one trace field already. */
const framed = (): Uint8Array =>
  encodeMessage({
    trace: [{ name: 'Trace', value: 'by mx.example.org' }],
    root: { fields: [{ name: 'Subject', value: 'hi' }], body: randomBytes(500) },
  });
const message = (ids: string[], body = framed()): StoredMessage => ({
  ids,
  fields: ids.map((id) => field(`${id}@example.net`)),
  body,
});

/** Asserts new/ holds `m`'s copies: the body with each one's Received field, byte for byte. */
function assertStored(maildir: string, m: StoredMessage): void {
  for (const [i, id] of m.ids.entries()) {
    const copy = readFileSync(join(maildir, 'new', `${id}.nmtp`));
    const expected = appendTraceField(m.body, { name: 'Received', value: m.fields[i]! });
    assert.ok(copy.equals(expected), `${id}.nmtp`);
    const trace = decodeMessage(copy).trace;
    assert.equal(parseReceived(trace.at(-1)!.value).rcpt, `${id}@example.net`);
  }
}

test('materialize: one id: its copy in new/ with its Received field, nothing left in tmp/', async () => {
  const maildir = freshMaildir();
  const m = message(['solo-1']);
  const paths = await materialize(maildir, m);
  assert.deepEqual(paths, [join(maildir, 'new', 'solo-1.nmtp')]);
  assertStored(maildir, m);
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
  assert.deepEqual(readdirSync(join(maildir, 'new')), ['solo-1.nmtp']);
  // The field goes after the trace fields already there; the content is untouched.
  const d = decodeMessage(readFileSync(paths[0]!));
  assert.deepEqual(
    d.trace.map((f) => f.name),
    ['Trace', 'Received'],
  );
  assert.deepEqual(d.contentDigest, decodeMessage(m.body).contentDigest);
});

test('materialize: three ids get a copy each, each with its own recipient; a replay gives the same result', async () => {
  const maildir = freshMaildir();
  const m = message(['r_1', 'r_2', 'r-3']);
  await materialize(maildir, m);
  const check = (): void => {
    assertStored(maildir, m);
    assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
    assert.equal(readdirSync(join(maildir, 'new')).length, 3);
  };
  check();
  // A replay after a crash: the same entry again.
  await materialize(maildir, m);
  check();
  // A reader took one recipient's copy before the crash: it comes back.
  rmSync(join(maildir, 'new', 'r_2.nmtp'));
  await materialize(maildir, m);
  check();
});

test('materialize: an empty field stores the body as given (octets that are not a framed message)', async () => {
  const maildir = freshMaildir();
  const body = Buffer.from('Subject: legacy\r\n\r\nhello\r\n');
  await materialize(maildir, { ids: ['raw-1'], fields: [''], body });
  assert.deepEqual(readFileSync(join(maildir, 'new', 'raw-1.nmtp')), body);
});

test('materialize: a replay after a crash mid-way never rewrites a file already in new/; leftovers in tmp/ are removed', async () => {
  const maildir = freshMaildir();
  const m = message(['crash-a', 'crash-b']);
  await materialize(maildir, m);
  // What a crash after the first recipient's rename leaves, if a temporary name had been
  // reused: a second name of new/crash-a.nmtp in tmp/, and crash-b not in place yet.
  rmSync(join(maildir, 'new', 'crash-b.nmtp'));
  const stale = join(maildir, 'tmp', 'AAAAAAAAAAAA.part');
  linkSync(join(maildir, 'new', 'crash-a.nmtp'), stale);
  const inode = statSync(stale).ino;
  await materialize(maildir, m);
  assertStored(maildir, m);
  // The replay wrote fresh files (new names in tmp/, renamed over): the old inode, still
  // named in tmp/, was neither truncated nor rewritten.
  assert.deepEqual(
    readFileSync(stale),
    Buffer.from(appendTraceField(m.body, { name: 'Received', value: m.fields[0]! })),
  );
  assert.equal(statSync(stale).ino, inode);
  assert.notEqual(statSync(join(maildir, 'new', 'crash-a.nmtp')).ino, inode);
  // A second replay works as well, and the recovery removes what interrupted attempts left.
  await materialize(maildir, m);
  await removeParts(maildir);
  assertStored(maildir, m);
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
});

test('materialize: no ids, no files', async () => {
  const maildir = freshMaildir();
  assert.deepEqual(await materialize(maildir, message([])), []);
  assert.deepEqual(readdirSync(join(maildir, 'new')), []);
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
});

test('encodeMeta / decodeEntry round trip', () => {
  const m = message(['a', 'B-2_c']);
  const back = decodeEntry({ meta: encodeMeta(m), body: m.body });
  assert.deepEqual(back.ids, m.ids);
  assert.deepEqual(back.fields, m.fields);
  assert.equal(back.body, m.body);
});

test('decodeEntry rejects bad meta as journal damage, before any file is named after it', () => {
  const body = new Uint8Array([1, 2, 3]);
  const bad = [
    'not json',
    '',
    'null',
    '42',
    '"ids"',
    '[]',
    '{}',
    '{"ids":["a"]}',
    '{"fields":["x"]}',
    '{"ids":"a","fields":"x"}',
    '{"ids":["a","b"],"fields":["x"]}',
    '{"ids":["a"],"fields":["x","y"]}',
    '{"ids":[1],"fields":["x"]}',
    '{"ids":["a"],"fields":[{}]}',
    '{"ids":["../evil"],"fields":["x"]}',
    '{"ids":["a/b"],"fields":["x"]}',
    '{"ids":[""],"fields":["x"]}',
    '{"ids":["a.json"],"fields":["x"]}',
    // The shape before copies carried their record (a `<id>.json` text per id).
    '{"ids":["a"],"records":["x"]}',
    `{"ids":["${'x'.repeat(65)}"],"fields":["x"]}`,
  ];
  for (const meta of bad) {
    assert.equal(
      codeOf(() => decodeEntry({ meta: Buffer.from(meta), body })),
      'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED',
      meta,
    );
  }
  // Not UTF-8.
  assert.equal(
    codeOf(() => decodeEntry({ meta: Uint8Array.of(0x7b, 0xff, 0x7d), body })),
    'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED',
  );
  // The longest id allowed.
  const long = 'x'.repeat(64);
  assert.deepEqual(
    decodeEntry({ meta: Buffer.from(`{"ids":["${long}"],"fields":["x"]}`), body }).ids,
    [long],
  );
});

test('recoverMailbox: a crash after the journal commit, before new/: every message comes back', async () => {
  const maildir = freshMaildir();
  const one = message(['crash-1']);
  const two = message(['crash-2a', 'crash-2b']);
  const w = new JournalWriter(journalDir(maildir));
  for (const m of [one, two]) w.append(encodeMeta(m), m.body);
  w.commit(Date.now());
  w.close();
  assert.equal(listSegments(journalDir(maildir)).length, 1);
  assert.deepEqual(readdirSync(join(maildir, 'new')), []);

  const damage: NmtpError[] = [];
  assert.equal(await recoverMailbox(maildir, (e) => damage.push(e)), 2);
  assert.equal(damage.length, 0);
  assertStored(maildir, one);
  assertStored(maildir, two);
  assert.equal(readdirSync(join(maildir, 'new')).length, 3);
  assert.deepEqual(listSegments(journalDir(maildir)), []);
  assert.deepEqual(readdirSync(journalDir(maildir)), []);
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
  // Nothing left to replay.
  assert.equal(await recoverMailbox(maildir, (e) => damage.push(e)), 0);
});

test('recoverMailbox: an entry whose meta does not check out is reported and its segment kept aside; the others replayed', async () => {
  const maildir = freshMaildir();
  const good = message(['good-1']);
  const w = new JournalWriter(journalDir(maildir));
  w.append(Buffer.from('{"ids":["../evil"],"fields":["x"]}'), Buffer.from('evil'));
  w.append(encodeMeta(good), good.body);
  w.commit(Date.now());
  w.close();
  const damage: NmtpError[] = [];
  await recoverMailbox(maildir, (e) => damage.push(e));
  // Reported twice: the entry, then the segment set aside because of it.
  assert.deepEqual(
    damage.map((e) => e.code),
    ['NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED', 'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED'],
  );
  assert.match(damage[1]!.message, /kept as .*\.damaged/);
  assertStored(maildir, good);
  assert.deepEqual(readdirSync(join(maildir, 'new')).sort(), ['good-1.nmtp']);
  assert.equal(existsSync(join(root, 'evil.nmtp')), false);
  assert.equal(existsSync(join(maildir, 'evil.nmtp')), false);
  // Nothing is thrown away unread: the segment is kept for the operator.
  assert.deepEqual(
    readdirSync(journalDir(maildir)).filter((f) => f.endsWith('.log.damaged')),
    ['0000000000000001.log.damaged'],
  );
});

/** A child process that has exited: its pid names no live process (barring reuse). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(child.pid !== undefined);
  return child.pid;
}

test('claimMaildir: claim and release; a second claim in the same process is refused, by any path; a stale file naming our pid is taken over', async () => {
  const maildir = freshMaildir();
  const owner = join(journalDir(maildir), 'owner');
  const release = await claimMaildir(maildir);
  assert.equal(readFileSync(owner, 'utf8'), `${process.pid}\n`);
  // The pid cannot tell two writers of one process apart: the process keeps its own list,
  // by real path (an alias or a symlink is the same maildir).
  const alias = `${maildir}-link`;
  symlinkSync(maildir, alias);
  for (const other of [join(maildir, '.'), alias]) {
    await assert.rejects(claimMaildir(other), { code: 'NMTP_ERR_TRANSPORT_MAILDIR_IN_USE' });
  }
  release();
  assert.equal(existsSync(owner), false);
  release(); // gone already: no error
  // A file naming this very pid, left by an earlier process (a restarted container gets the
  // same pid): nobody holds the claim, so it is stale.
  writeFileSync(owner, `${process.pid}\n`);
  const again = await claimMaildir(maildir);
  assert.equal(readFileSync(owner, 'utf8'), `${process.pid}\n`);
  // Release removes only our own claim: a file someone else wrote since stays.
  writeFileSync(owner, '12345\n');
  again();
  assert.equal(readFileSync(owner, 'utf8'), '12345\n');
});

/** A child process holding the claim on `maildir` until killed; resolves once it holds it. */
async function holder(maildir: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const store = fileURLToPath(new URL('../../src/server/mailbox-store.ts', import.meta.url));
  const code =
    `import { claimMaildir } from ${JSON.stringify(store)};` +
    `await claimMaildir(${JSON.stringify(maildir)}); console.log('claimed');` +
    'setInterval(() => undefined, 1000);';
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('claimed')) resolve();
    });
    child.once('exit', () => reject(new Error('the holder exited')));
  });
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

test('claimMaildir: another process holding the claim: MAILDIR_IN_USE; once it dies (SIGKILL), the claim is free', async () => {
  const maildir = freshMaildir();
  const owner = join(journalDir(maildir), 'owner');
  const h = await holder(maildir);
  try {
    assert.equal(readFileSync(owner, 'utf8'), `${h.pid}\n`);
    await assert.rejects(claimMaildir(maildir), { code: 'NMTP_ERR_TRANSPORT_MAILDIR_IN_USE' });
    // MailboxWriter.start refuses the same way (and replays nothing); the claim stays.
    await assert.rejects(MailboxWriter.start(maildir), (e: unknown) => {
      assert.ok(e instanceof NmtpError);
      assert.equal(e.code, 'NMTP_ERR_TRANSPORT_MAILDIR_IN_USE');
      return true;
    });
    assert.equal(readFileSync(owner, 'utf8'), `${h.pid}\n`);
  } finally {
    await h.stop();
  }
  // A crash leaves journal/owner behind; it does not hold the maildir.
  assert.equal(readFileSync(owner, 'utf8'), `${h.pid}\n`);
  const release = await claimMaildir(maildir);
  assert.equal(readFileSync(owner, 'utf8'), `${process.pid}\n`);
  release();
});

test('claimMaildir: a stale journal/owner (a dead pid, garbage, empty) is taken over', async () => {
  const maildir = freshMaildir();
  const owner = join(journalDir(maildir), 'owner');
  mkdirSync(journalDir(maildir), { recursive: true });
  const stale = [`${await deadPid()}\n`, '', 'garbage\n', '-5\n'];
  // On Linux the claim is the kernel lock: a file naming a live process that does not hold
  // it (a reused pid) is stale too.
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  const slept = new Promise((resolve) => sleeper.once('exit', resolve));
  if (process.platform === 'linux') stale.push(`${sleeper.pid}\n`);
  try {
    for (const text of stale) {
      writeFileSync(owner, text);
      const release = await claimMaildir(maildir);
      assert.equal(readFileSync(owner, 'utf8'), `${process.pid}\n`, JSON.stringify(text));
      release();
      assert.equal(existsSync(owner), false);
    }
  } finally {
    sleeper.kill('SIGKILL');
    await slept;
  }
});

test('MailboxWriter: 20 concurrent stores, all in new/ when settled; close checkpoints', async () => {
  const maildir = freshMaildir();
  const errors: unknown[] = [];
  const w = await MailboxWriter.start(maildir, (e) => errors.push(e));
  const owner = join(journalDir(maildir), 'owner');
  assert.equal(readFileSync(owner, 'utf8'), `${process.pid}\n`);
  const messages = Array.from({ length: 20 }, (_, i) => message([`m${i}a`, `m${i}b`]));
  await Promise.all(messages.map((m) => w.store(m)));
  await w.settled();
  for (const m of messages) assertStored(maildir, m);
  assert.equal(readdirSync(join(maildir, 'new')).length, 40); // 20 messages × 2 recipients
  assert.equal(readdirSync(join(maildir, 'new')).filter((f) => f.endsWith('.nmtp')).length, 40);
  await w.close();
  assert.deepEqual(errors, []);
  const left = readdirSync(journalDir(maildir));
  assert.deepEqual(
    left.filter((f) => f.endsWith('.log')),
    [],
    'checkpointed',
  );
  assert.equal(existsSync(owner), false, 'claim released');
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
  // Closed: refuses more work (temporary failure, the sender tries again).
  await assert.rejects(w.store(message(['late'])), /NMTP_ERR_TRANSPORT_LOCAL|closed/);
  // A restart has nothing to replay and finds everything still there.
  const again = await MailboxWriter.start(maildir);
  await again.close();
  for (const m of messages) assertStored(maildir, m);
});

test('MailboxWriter.start replays what the previous run left in the journal', async () => {
  const maildir = freshMaildir();
  const left = message(['left-1', 'left-2']);
  const j = new JournalWriter(journalDir(maildir));
  j.append(encodeMeta(left), left.body);
  j.commit(Date.now());
  j.close();
  const w = await MailboxWriter.start(maildir);
  // Replayed before start resolves, before any new message.
  assertStored(maildir, left);
  const next = message(['next-1']);
  await w.store(next);
  await w.settled();
  assertStored(maildir, next);
  await w.close();
  assert.deepEqual(listSegments(journalDir(maildir)), []);
});
