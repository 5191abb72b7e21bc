/**
 * The submission backend and its queue delivering to a REAL receiver: the reference
 * mailbox (`serveMailbox`) over TLS on loopback, which checks our HELLO proof against the
 * domain key in a real DNS server (dnsmasq), where the queue also finds the receiver by SRV.
 * Covers an accepted recipient (stored byte-identical), a deferred one polled with STATUS
 * and approved by the mailbox's person, a queue restart in the middle, and a retry after a
 * refused connection.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { dnsSrvResolver, type SrvAnswer } from '../../src/dns/srv.ts';
import { dnsTxtResolver } from '../../src/dns/txt.ts';
import { Queue, transferDeliver } from '../../src/queue/index.ts';
import type { MessageSink } from '../../src/server/transfer-host.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { ReferenceSubmissionBackend } from '../../src/server/submission-backend.ts';
import { UserStore } from '../../src/store/users.ts';
import { startDnsmasq, type DnsServer } from '../harness/dnsmasq.ts';
import { freeTcpPort } from '../support/net.ts';
import { readStored } from '../support/stored.ts';
import { eventually } from '../support/eventually.ts';
import { bytesSource, deliverJob } from '../../src/client/transfer.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-tls-'));
const qdir = join(dir, 'queue');
const maildir = join(dir, 'mail');
const domainKey = keyPairFromSeed(randomBytes(32));
let dns: DnsServer;
let receiver: Serving;
let ca: Buffer;
let deadPort: number;
let t = Math.floor(Date.now() / 1000);
const now = (): number => t * 1000;
const users = new UserStore(join(dir, 'users.json'));
/** carol@example.com's SRV answer, switched by a test (example.net's comes from dnsmasq). */
let comTarget = 0;

function openQueue(): Promise<Queue> {
  const fromDns = dnsSrvResolver({ servers: [dns.address] });
  return Queue.open({
    dir: qdir,
    now,
    timers: false,
    deliver: transferDeliver({
      identity: { domain: 'example.org', selector: 's1', key: domainKey },
      srv: async (service, domain): Promise<SrvAnswer> =>
        domain === 'example.com'
          ? {
              status: 'ok',
              targets: [{ name: '127.0.0.1', port: comTarget, priority: 1, weight: 0 }],
            }
          : fromDns(service, domain),
      connect: { ca },
    }),
  });
}

const backendOf = (queue: Queue): ReferenceSubmissionBackend =>
  new ReferenceSubmissionBackend({
    users,
    queue,
    domain: 'example.org',
    selector: 's1',
    key: domainKey,
    now,
  });

let queue: Queue;

before(async () => {
  const cert = generateSelfSigned(join(dir, 'certs'), '127.0.0.1');
  ca = readFileSync(cert.certFile);
  deadPort = await freeTcpPort();
  receiver = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    ...cert,
    serverName: 'mx.example.net',
    maildir,
    resolveTxt: async (name) => dnsTxtResolver({ servers: [dns.address] })(name),
  });
  dns = await startDnsmasq({
    txt: new Map([
      [
        domainKeyName('s1', 'example.org'),
        [printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: '' })],
      ],
    ]),
    srv: new Map([
      [
        '_nmtp-transfer._tcp.example.net',
        [{ target: '127.0.0.1', port: receiver.port, priority: 10, weight: 0 }],
      ],
    ]),
  });
  writeFileSync(join(maildir, 'policy.json'), JSON.stringify({ defer: ['bob@example.net'] }));
  await users.setPassword('alice@example.org', 'pw');
  queue = await openQueue();
});

after(async () => {
  await queue?.close();
  await receiver?.close();
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function submit(backend: ReferenceSubmissionBackend, recipients: string[]): Promise<string> {
  const bytes = encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'From', value: '<alice@example.org>' },
        { name: 'Subject', value: 'through the queue' },
      ],
      body: Uint8Array.from(randomBytes(5000)),
    },
  });
  const sink: MessageSink = await backend.open();
  await sink.write(bytes);
  return backend.submit(
    { type: 'submit', user: 'alice@example.org', recipients, size: bytes.length },
    sink,
  );
}

let id = '';

test('SEND → queue → the mailbox over TLS (SRV and key from DNS): accepted, and deferred', async () => {
  id = await submit(backendOf(queue), ['alice@example.net', 'bob@example.net']);
  await queue.tick();
  const s = (await queue.get(id))!;
  const [alice, bob] = s.recipients;
  assert.equal(alice?.state, 'accepted', JSON.stringify(alice));
  assert.equal(bob?.state, 'deferred', JSON.stringify(bob));
  assert.equal(bob.endpoint?.port, receiver.port);
  assert.equal(bob.min, 60);
  // Stored by the receiver exactly as queued, and the domain signature verifies there.
  const queued = new Uint8Array(readFileSync(join(qdir, 'msg', `${id}.nmtp`)));
  await receiver.mailbox.settled();
  const stored = new Uint8Array(readStored(join(maildir, 'new', `${alice.id}.nmtp`)).sent);
  assert.deepEqual(stored, queued);
  const v = await verifyMessage(stored, {
    resolveTxt: dnsTxtResolver({ servers: [dns.address] }),
    now: t,
    recipient: 'alice@example.net',
    authenticatedDomain: 'example.org',
  });
  assert.equal(v.signatures[0]?.status, 'valid');
  assert.deepEqual(
    await backendOf(queue).status({ type: 'submission-status', user: 'alice@example.org', id }),
    [
      { rcpt: 'alice@example.net', state: 'accepted' },
      // A deferred recipient: what the user waits on, when the queue polls next (§60.11.5).
      {
        rcpt: 'bob@example.net',
        state: 'deferred',
        cookie: bob.cookie,
        next: bob.nextAt,
        expires: bob.cookieExpires,
      },
    ],
  );
  assert.ok(bob.cookie !== undefined && bob.cookieExpires !== undefined);
  assert.ok(bob.nextAt >= t + 60, 'the next poll is inside the window');
});

test('deferred → polled (still deferred) → queue restarted → approved → polled → accepted', async () => {
  t += 60;
  await queue.tick();
  const bob = (await queue.get(id))!.recipients[1]!;
  assert.equal(bob.state, 'deferred');
  assert.equal(bob.polls, 1);
  assert.equal(bob.last?.code, 350, 'STATUS answered "still deferred"');
  assert.equal(bob.nextAt, t + 120);

  // The queue process stops and starts again: the state is read back from disk.
  await queue.close();
  queue = await openQueue();
  assert.deepEqual((await queue.get(id))!.recipients[1], bob);

  const decided = await receiver.mailbox.decideCookie(bob.cookie!, 'approve');
  t += 119;
  await queue.tick();
  assert.equal(
    (await queue.get(id))!.recipients[1]!.state,
    'deferred',
    'not polled before its time',
  );
  t += 1;
  await queue.tick();
  assert.deepEqual(queue.status(id, 'alice@example.org'), [
    { rcpt: 'alice@example.net', state: 'accepted' },
    { rcpt: 'bob@example.net', state: 'accepted' },
  ]);
  assert.equal((await queue.get(id))!.recipients[1]!.id, decided.id);
});

test('a refused connection is retried after the backoff, then delivered', async () => {
  comTarget = deadPort;
  const id2 = await submit(backendOf(queue), ['carol@example.com']);
  await queue.tick();
  let carol = (await queue.get(id2))!.recipients[0]!;
  assert.equal(carol.state, 'pending');
  assert.equal(carol.attempts, 1);
  assert.equal(carol.last?.err, 'NMTP_ERR_TRANSPORT_CONNECT_FAILED');
  assert.equal(carol.nextAt, t + 300);
  comTarget = receiver.port;
  t += 300;
  await queue.tick();
  carol = (await queue.get(id2))!.recipients[0]!;
  assert.equal(carol.state, 'accepted', JSON.stringify(carol));
  assert.equal(carol.attempts, 2);
});

test('new messages to one destination share a session: the deliver function keeps its connections until closed', async () => {
  const deliver = transferDeliver({
    identity: { domain: 'example.org', selector: 's1', key: domainKey },
    srv: dnsSrvResolver({ servers: [dns.address] }),
    connect: { ca },
  });
  const message = encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: '<alice@example.org>' }],
      body: Buffer.from('hello'),
    },
  });
  const before = receiver.connections().sessions;
  for (let i = 0; i < 3; i++) {
    const r = await deliver({
      domain: 'example.net',
      job: deliverJob(['alice@example.net'], message),
      message: bytesSource(message),
    });
    assert.equal(r.recipients[0]?.reply.code, 250, JSON.stringify(r));
    // One session, kept for the next message (no new TLS handshake and HELLO proof).
    assert.equal(receiver.connections().sessions, before + 1);
  }
  await deliver.close();
  await eventually(() => receiver.connections().sessions === before, 'session closed');
});
