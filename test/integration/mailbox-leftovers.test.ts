/**
 * Crash leftovers of the reference mailbox (issue 12), with `nmtp serve` killed (SIGKILL)
 * at exactly each point where a crash used to leave files behind — the point placed by
 * test/support/crash-at.ts in the child process — then started again on the same maildir:
 *
 * - a large message received into tmp/, killed before its copy is moved into new/ (no
 *   answer was sent): the file in tmp/ is removed;
 * - a deferred recipient, killed before the rename of its cookie's temporary file: the
 *   `cookies/.tmp-*` file and the held message without a cookie are removed;
 * - the same, killed before the cookie's temporary file is even opened: the held orphan is
 *   removed;
 * - `nmtp mailbox approve`, run from another directory than the server's (which was given
 *   a relative --maildir), killed after the approved copy and the final cookie, before the
 *   held file's removal: the held file is removed at the next start, a held file whose
 *   cookie still waits is kept.
 *
 * The restart says what it removed on stderr. Key records are static (--key-record): no
 * DNS server. The listener is plaintext on loopback.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { deliverJob, transferTo, type ClientIdentity } from '../../src/client/transfer.ts';
import type { StoredCookie } from '../../src/store/cookies.ts';
import type { CrashAt } from '../support/crash-at.ts';
import { startServe, type ServeProcess } from '../support/serve-process.ts';

// The bin launcher: it runs from any directory (the servers here run in their own).
const cli = fileURLToPath(new URL('../../bin/nmtp', import.meta.url));
const crashAt = fileURLToPath(new URL('../support/crash-at.ts', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'nmtp-leftovers-'));
const key = keyPairFromSeed(randomBytes(32));
const identity: ClientIdentity = { domain: 'example.org', selector: 's1', key };
const keyRecord = `${domainKeyName('s1', 'example.org')}=${printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })}`;
const running = new Set<ChildProcess>();
/** Node flags of a child that dies where NMTP_TEST_CRASH_AT says (resolved from the repo). */
const withCrashAt = ['--import', import.meta.resolve('tsx'), '--import', crashAt];

after(() => {
  for (const c of running) c.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

type Server = ServeProcess;

/**
 * `nmtp serve` in `cwd` on `maildir` (relative to it), dying at `at` when given; resolves
 * once it listens.
 */
function serve(cwd: string, maildir: string, at?: CrashAt): Promise<Server> {
  return startServe({
    command: [...(at === undefined ? [] : withCrashAt), cli],
    args: [
      '--listen',
      '127.0.0.1:0',
      '--plaintext',
      '--domain',
      'mx.example.net',
      '--maildir',
      maildir,
      '--key-record',
      keyRecord,
    ],
    running,
    cwd,
    env: { ...process.env, NMTP_TEST_CRASH_AT: at === undefined ? '' : JSON.stringify(at) },
  });
}

async function stop(s: Server): Promise<void> {
  s.child.kill('SIGTERM');
  assert.deepEqual(await s.exited, { code: 0, signal: null }, s.stderr());
}

/** A framed message of about `size` octets. */
function message(size: number): Uint8Array {
  return encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'Subject', value: 'leftovers' }],
      body: Uint8Array.from(randomBytes(size)),
    },
  });
}

async function send(s: Server, rcpts: string[], body: Uint8Array) {
  const job = deliverJob(rcpts, body);
  return transferTo({ host: '127.0.0.1', port: s.port }, identity, job, body, { plaintext: true });
}

/** A maildir (relative to its own directory, the server's cwd) with a policy.json. */
function maildirWith(policy: object): { cwd: string; dir: string } {
  const cwd = mkdtempSync(join(base, 'run-'));
  const dir = join(cwd, 'mail');
  mkdirSync(dir);
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  return { cwd, dir };
}

const ls = (dir: string, sub: string): string[] => readdirSync(join(dir, sub)).sort();

test('a large message in tmp/ when the server dies before its answer is removed at the next start', async () => {
  const m = maildirWith({});
  const first = await serve(m.cwd, 'mail', {
    op: 'rename',
    match: '/tmp/[A-Za-z0-9_-]+\\.nmtp$',
    when: 'before',
  });
  // Over the 256 KiB journal limit: received into a file in tmp/.
  const r = await send(first, ['bob@example.net'], message(600 * 1024)).catch((e: Error) => e);
  assert.equal((await first.exited).signal, 'SIGKILL');
  assert.ok(
    r instanceof Error || r.recipients.every((x) => x.reply.code !== 250),
    'never answered 250',
  );
  const left = ls(m.dir, 'tmp');
  assert.equal(left.length, 1, 'the point was reached: the received file is in tmp/');
  assert.ok(readFileSync(join(m.dir, 'tmp', left[0]!)).length > 600 * 1024);
  assert.deepEqual(ls(m.dir, 'new'), []);

  const second = await serve(m.cwd, 'mail');
  assert.deepEqual(ls(m.dir, 'tmp'), []);
  assert.match(second.stderr(), /removed 1 unanswered file\(s\) from tmp\//);
  await stop(second);
});

for (const c of [
  {
    what: 'before the rename of its temporary file',
    at: { op: 'rename', match: '/cookies/\\.tmp-', when: 'before' } as const,
    temps: 1,
  },
  {
    what: 'before its temporary file is opened',
    at: { op: 'open', match: '/cookies/\\.tmp-', when: 'before' } as const,
    temps: 0,
  },
]) {
  test(`a held message whose cookie was never written (killed ${c.what}) is removed at the next start`, async () => {
    const m = maildirWith({ defer: ['carol@example.net'] });
    const first = await serve(m.cwd, 'mail', c.at);
    await send(first, ['carol@example.net'], message(2000)).catch((e: Error) => e);
    assert.equal((await first.exited).signal, 'SIGKILL');
    assert.equal(ls(m.dir, 'held').length, 1, 'the held message was written');
    const cookies = ls(m.dir, 'cookies');
    assert.equal(cookies.filter((n) => n.endsWith('.json')).length, 0, 'no cookie');
    assert.equal(cookies.filter((n) => n.startsWith('.tmp-')).length, c.temps);

    const second = await serve(m.cwd, 'mail');
    assert.deepEqual(ls(m.dir, 'held'), []);
    assert.deepEqual(ls(m.dir, 'cookies'), []);
    assert.match(
      second.stderr(),
      new RegExp(
        `${c.temps} interrupted cookie write\\(s\\), 1 held message\\(s\\) no cookie waits for`,
      ),
    );
    await stop(second);
  });
}

test('approve from another directory, killed before the held file goes: the copy is in new/, the held file is removed at the next start', async () => {
  const m = maildirWith({ defer: ['carol@example.net', 'dan@example.net'] });
  const first = await serve(m.cwd, 'mail');
  const r = await send(first, ['carol@example.net', 'dan@example.net'], message(2000));
  const cookies = r.recipients.map((x) => x.reply.params['cookie']!);
  assert.deepEqual(
    r.recipients.map((x) => x.reply.code),
    [350, 350],
  );
  await stop(first);
  // The cookie names its held message relative to the maildir, not to the server's cwd.
  const stored = JSON.parse(
    readFileSync(join(m.dir, 'cookies', `${cookies[0]!}.json`), 'utf8'),
  ) as StoredCookie;
  assert.equal(stored.ref, `held/${cookies[0]!}.nmtp`);

  const approve = spawnSync(
    process.execPath,
    [...withCrashAt, cli, 'mailbox', 'approve', cookies[0]!, '--maildir', m.dir],
    {
      cwd: tmpdir(),
      env: {
        ...process.env,
        NMTP_TEST_CRASH_AT: JSON.stringify({ op: 'unlink', match: '/held/', when: 'before' }),
      },
    },
  );
  assert.equal(approve.signal, 'SIGKILL', approve.stderr.toString());
  assert.equal(ls(m.dir, 'new').length, 1, 'the approved copy');
  assert.equal(ls(m.dir, 'held').length, 2, 'the approved one is still held');

  const second = await serve(m.cwd, 'mail');
  assert.deepEqual(ls(m.dir, 'held'), [`${cookies[1]!}.nmtp`], "dan's cookie still waits");
  assert.equal(ls(m.dir, 'new').length, 1);
  assert.match(second.stderr(), /1 held message\(s\) no cookie waits for/);
  // `nmtp mailbox list`: what is held, and with --all what was decided.
  const list = (all: string[]) =>
    spawnSync(process.execPath, [cli, 'mailbox', 'list', '--maildir', m.dir, ...all], {
      cwd: tmpdir(),
    }).stdout.toString();
  const waiting = list([]).trim().split('\n');
  assert.equal(waiting.length, 1, list([]));
  assert.match(
    waiting[0]!,
    new RegExp(
      `^${cookies[1]!} deferred dan@example\\.net from=example\\.org issued=\\S+ expires=\\S+ held$`,
    ),
  );
  const all = list(['--all']);
  assert.match(
    all,
    new RegExp(`^${cookies[0]!} accepted carol@example\\.net from=example\\.org .*[^d]$`, 'm'),
  );
  await stop(second);
});
