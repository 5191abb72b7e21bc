/**
 * "Accepted means stored", across a real crash: `nmtp serve` (journalling small messages,
 * src/server/mailbox-store.ts) takes 30 messages, is killed with SIGKILL the moment the
 * last 250 arrives (its writer thread had no chance to put them into new/ or checkpoint),
 * and is started again on the same maildir. The restart takes over the dead process's
 * claim, replays the journal, and every accepted id is in new/, byte-identical, with its
 * record naming the recipient. The key TXT for the HELLO proof comes from a real DNS server
 * (dnsmasq, test/harness); the listener is plaintext on loopback.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { deliverJob, TransferPool, type ClientIdentity } from '../../src/client/transfer.ts';
import { startDnsmasq, type DnsServer } from '../harness/dnsmasq.ts';
import { startServe, type ServeProcess } from '../support/serve-process.ts';
import { readStored } from '../support/stored.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nmtp-mailbox-crash-'));
const maildir = join(dir, 'mail');
const key = keyPairFromSeed(randomBytes(32));
const identity: ClientIdentity = { domain: 'example.org', selector: 's1', key };
let dns: DnsServer;
const running = new Set<ChildProcess>();
/** The server started again on the crashed one's maildir (stopped by the last test). */
let second: Server | undefined;

before(async () => {
  dns = await startDnsmasq({
    txt: new Map([
      [
        domainKeyName('s1', 'example.org'),
        [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
      ],
    ]),
  });
});

after(async () => {
  for (const child of running) child.kill('SIGKILL');
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Server = ServeProcess;

/** `nmtp serve --plaintext` on an ephemeral loopback port; resolves once it listens. */
function startServer(): Promise<Server> {
  return startServe({
    command: ['--import', 'tsx', cli],
    args: [
      '--listen',
      '127.0.0.1:0',
      '--plaintext',
      '--domain',
      'mx.example.net',
      '--maildir',
      maildir,
      '--dns-server',
      dns.address,
    ],
    running,
  });
}

const utf8 = new TextEncoder();
/** A small framed message, different each time (random octets in its body). */
function messageFor(i: number): Uint8Array {
  return encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'Subject', value: `crash test ${i}` },
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'text/plain' }],
          body: utf8.encode(`no. ${i}\r\n`),
        },
        {
          fields: [{ name: 'Content-Type', value: 'application/octet-stream' }],
          body: Uint8Array.from(randomBytes(200 + i * 37)),
        },
      ],
    },
  });
}

test('SIGKILL right after the last 250: after a restart every accepted message is in new/', async () => {
  const first = await startServer();
  const pool = new TransferPool(identity, { plaintext: true });
  const endpoint = { host: '127.0.0.1', port: first.port };
  const N = 30;
  const sent = Array.from({ length: N }, (_, i) => ({
    // Every fifth message has two recipients: one journal entry, two ids.
    rcpts: i % 5 === 0 ? [`u${i}@example.net`, `v${i}@example.net`] : [`u${i}@example.net`],
    body: messageFor(i),
  }));
  let results;
  try {
    results = await Promise.all(
      sent.map((s) => pool.run(endpoint, deliverJob(s.rcpts, s.body), s.body)),
    );
  } finally {
    // No graceful close: the writer thread may not even have started on new/.
    first.child.kill('SIGKILL');
  }
  const killed = await first.exited;
  assert.equal(killed.signal, 'SIGKILL');
  await pool.close();

  const accepted: { id: string; rcpt: string; body: Uint8Array }[] = [];
  for (const [i, r] of results.entries()) {
    assert.equal(r.failure, undefined, `message ${i}: ${String(r.failure)}`);
    assert.deepEqual(
      r.recipients.map((x) => x.rcpt),
      sent[i]!.rcpts,
    );
    for (const x of r.recipients) {
      assert.equal(x.reply.code, 250, `${x.rcpt}: ${JSON.stringify(x.reply)}`);
      const id = x.reply.params['id'];
      assert.ok(id !== undefined && /^[A-Za-z0-9_-]+$/.test(id), `${x.rcpt}: id ${id}`);
      accepted.push({ id, rcpt: x.rcpt, body: sent[i]!.body });
    }
  }
  assert.equal(accepted.length, N + N / 5);
  assert.equal(new Set(accepted.map((a) => a.id)).size, accepted.length, 'ids are unique');

  // The dead process's claim is still there.
  const owner = join(maildir, 'journal', 'owner');
  assert.equal(readFileSync(owner, 'utf8').trim(), String(first.child.pid));

  second = await startServer();
  // Listening means the journal was replayed (Mailbox.open comes first).
  assert.equal(readFileSync(owner, 'utf8').trim(), String(second.child.pid), 'claim taken over');
  for (const a of accepted) {
    const nmtp = join(maildir, 'new', `${a.id}.nmtp`);
    assert.ok(existsSync(nmtp), `${a.id} (${a.rcpt}) is in new/`);
    const copy = readStored(nmtp);
    assert.ok(copy.sent.equals(a.body), `${a.id}.nmtp is what was sent`);
    assert.equal(copy.received.rcpt, a.rcpt, `${a.id}.nmtp names its recipient`);
  }
  // Nothing but what was accepted (each id once).
  assert.deepEqual(
    readdirSync(join(maildir, 'new')).sort(),
    accepted.map((a) => `${a.id}.nmtp`).sort(),
  );
  // The journal was replayed and removed, and nothing an interrupted write left in tmp/
  // survived the recovery.
  assert.deepEqual(
    readdirSync(join(maildir, 'journal')).filter((f) => f.includes('.log')),
    [],
  );
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
});

test('a clean stop (SIGTERM) after the restart: exit 0, the claim released, no segment left', async () => {
  assert.ok(second !== undefined, 'the restarted server runs');
  const owner = join(maildir, 'journal', 'owner');
  second.child.kill('SIGTERM');
  const stopped = await second.exited;
  assert.deepEqual(stopped, { code: 0, signal: null }, second.stderr());
  assert.equal(existsSync(owner), false, 'claim released');
  assert.deepEqual(
    readdirSync(join(maildir, 'journal')).filter((f) => f.includes('.log')),
    [],
  );
  assert.equal(second.stderr(), '');
});
