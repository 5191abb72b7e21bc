/**
 * Two NMTP endpoints over TLS on loopback, found through a real DNS server (dnsmasq):
 * `nmtp serve` (the reference mailbox receiver) and the transfer client (`nmtp send` and
 * the client module). Covers SRV with fallback across targets, the key TXT proof and the
 * CSV record, an accepted recipient (message on disk, byte-identical), a deferred one
 * approved by `nmtp mailbox approve` and then STATUS → accepted, GIVEUP, a receiver
 * restart that still answers STATUS for an earlier cookie, a foreign domain's STATUS, a
 * wrong-key client refused, and plaintext refused beyond loopback.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedToPem,
} from '../../src/core/keys/index.ts';
import { signMessage } from '../../src/core/message/index.ts';
import { dnsSrvResolver } from '../../src/dns/srv.ts';
import { deliverJob, transferToDomain, type ClientIdentity } from '../../src/client/transfer.ts';
import { listen } from '../../src/server/listener.ts';
import { startDnsmasq, type DnsServer } from '../harness/dnsmasq.ts';
import { eventually } from '../support/eventually.ts';
import { freeTcpPort } from '../support/net.ts';
import { readStored } from '../support/stored.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const nmtp = (args: string[], input?: Uint8Array) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    input: input ?? new Uint8Array(),
    maxBuffer: 1 << 24,
  });

const dir = mkdtempSync(join(tmpdir(), 'nmtp-transport-'));
const maildir = join(dir, 'mail');
const seed = randomBytes(32);
const key = keyPairFromSeed(seed);
const other = keyPairFromSeed(randomBytes(32));
const keyFile = join(dir, 'example.org.pem');
let dns: DnsServer;
let port: number;
let deadPort: number;
let cert: string;
let server: ChildProcess | undefined;
let message: Uint8Array;

async function startServer(): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      cli,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--cert',
      join(dir, 'certs', '127.0.0.1.crt'),
      '--key',
      join(dir, 'certs', '127.0.0.1.key'),
      '--domain',
      'mx.example.net',
      '--maildir',
      maildir,
      '--dns-server',
      dns.address,
      '--require-csv',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server = child;
  let text = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`nmtp serve exited ${code}: ${text}`)));
  });
  // "nothing listens beyond loopback"
  assert.match(text, /^listening on 127\.0\.0\.1:\d+$/m);
}

async function stopServer(): Promise<void> {
  const child = server;
  server = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const identity = (k = key, domain = 'example.org'): ClientIdentity => ({
  domain,
  selector: 's1',
  key: k,
});

const client = {
  get ca() {
    return readFileSync(cert);
  },
};

before(async () => {
  port = await freeTcpPort();
  deadPort = await freeTcpPort();
  const gen = nmtp(['certs', 'generate', '--out', join(dir, 'certs'), '--name', '127.0.0.1']);
  assert.equal(gen.status, 0, gen.stderr.toString());
  cert = join(dir, 'certs', '127.0.0.1.crt');
  writeFileSync(keyFile, seedToPem(seed));
  dns = await startDnsmasq({
    txt: new Map([
      [
        domainKeyName('s1', 'example.org'),
        [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
      ],
      [
        domainKeyName('s1', 'example.com'),
        [printDomainKeyRecord({ publicKey: other.publicKey, flags: '' })],
      ],
      ['_nmtpclient.example.org', ['v=NMTPCSV1; ip=127.0.0.1/32']],
      ['_nmtpclient.example.com', ['v=NMTPCSV1; ip=127.0.0.0/8']],
      // example.edu's transfer clients are elsewhere: its proof passes, its CSV fails.
      [
        domainKeyName('s1', 'example.edu'),
        [printDomainKeyRecord({ publicKey: other.publicKey, flags: '' })],
      ],
      ['_nmtpclient.example.edu', ['v=NMTPCSV1; ip=192.0.2.0/24']],
    ]),
    srv: new Map([
      [
        '_nmtp-transfer._tcp.example.net',
        [
          // The preferred target is down: the client must fall back to the next priority.
          { target: '127.0.0.1', port: deadPort, priority: 10, weight: 0 },
          { target: '127.0.0.1', port, priority: 20, weight: 5 },
        ],
      ],
    ]),
  });
  await startServer();
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({ defer: ['bob@example.net', 'carol@example.net'] }),
  );
  const t = Math.floor(Date.now() / 1000);
  message = signMessage(
    encodeMessage({
      trace: [],
      root: {
        fields: [
          { name: 'From', value: '<zoë@example.org>' },
          { name: 'Subject', value: 'über NMTP' },
        ],
        body: Uint8Array.from(randomBytes(3000)),
      },
    }),
    {
      key,
      domain: 'example.org',
      selector: 's1',
      recipients: ['alice@example.net', 'bob@example.net', 'carol@example.net'],
      signedAt: t,
      expiresAt: t + 86400,
      salt: randomBytes(16),
    },
  );
});

after(async () => {
  await stopServer();
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const clientArgs = (): string[] => [
  '--key',
  keyFile,
  '--domain',
  'example.org',
  '--selector',
  's1',
  '--dns-server',
  dns.address,
  '--ca',
  cert,
];

let bobCookie = '';

test('nmtp send: alice accepted (byte-identical on disk), bob deferred with a cookie', async () => {
  const r = nmtp(
    ['send', '--to', 'alice@example.net', '--to', 'bob@example.net', ...clientArgs()],
    message,
  );
  const text = r.stdout.toString();
  assert.equal(r.status, 0, text + r.stderr.toString());
  const alice = /^alice@example\.net 250 2\.0\.0 rcpt=alice@example\.net id=(\S+)$/m.exec(text);
  assert.ok(alice, text);
  const bob =
    /^bob@example\.net 350 2\.0\.0 rcpt=bob@example\.net cookie=(\S+) min=5 max=60 expires=\d+$/m.exec(
      text,
    );
  assert.ok(bob, text);
  bobCookie = bob[1]!;
  // The copy appears in new/ moments after the answer (the journal made it durable).
  await eventually(() => existsSync(join(maildir, 'new', `${alice[1]}.nmtp`)), 'stored');
  const meta = readStored(join(maildir, 'new', `${alice[1]}.nmtp`));
  assert.ok(Buffer.from(message).equals(meta.sent), 'stored message is byte-identical');
  // Both identification results are recorded with the message (proof by DNS key, CSV), in
  // the Received field of the recipient's copy.
  assert.equal(meta.received.rcpt, 'alice@example.net');
  assert.deepEqual(meta.client, {
    domain: 'example.org',
    ip: '127.0.0.1',
    proof: 'pass',
    csv: 'pass',
  });
});

test('deferred → nmtp mailbox approve → nmtp status → accepted', async () => {
  let r = nmtp(['status', bobCookie, '--at', 'example.net', ...clientArgs()]);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(
    r.stdout.toString(),
    new RegExp(`350 2\\.0\\.0 cookie=${bobCookie} rcpt=bob@example\\.net`),
  );
  r = nmtp(['mailbox', 'approve', bobCookie, '--maildir', maildir]);
  assert.equal(r.status, 0, r.stderr.toString());
  const id = /accepted id=(\S+)/.exec(r.stdout.toString())?.[1];
  assert.ok(id, r.stdout.toString());
  r = nmtp(['status', bobCookie, '--at', 'example.net', ...clientArgs()]);
  assert.match(
    r.stdout.toString(),
    new RegExp(`250 2\\.0\\.0 cookie=${bobCookie} rcpt=bob@example\\.net state=accepted id=${id}`),
  );
  await eventually(() => existsSync(join(maildir, 'new', `${id}.nmtp`)), 'stored');
  const copy = readStored(join(maildir, 'new', `${id}.nmtp`));
  assert.ok(Buffer.from(message).equals(copy.sent));
  assert.equal(copy.received.rcpt, 'bob@example.net');
});

test('GIVEUP ends the wait on a deferred recipient (client module)', async () => {
  const srv = dnsSrvResolver({ servers: [dns.address] });
  const o = { ca: client.ca };
  const sent = await transferToDomain(
    'example.net',
    srv,
    identity(),
    deliverJob(['carol@example.net'], message),
    message,
    o,
  );
  const cookie = sent.recipients[0]?.reply.params.cookie;
  assert.equal(sent.recipients[0]?.reply.code, 350);
  assert.ok(cookie);
  const gave = await transferToDomain(
    'example.net',
    srv,
    identity(),
    { kind: 'giveup', cookie },
    undefined,
    o,
  );
  assert.equal(gave.failure, undefined);
  assert.equal(gave.recipients[0]?.reply.code, 250);
  assert.equal(gave.recipients[0]?.reply.params.state, 'given-up');
  // The held copy is gone; nothing else was delivered for carol.
  assert.deepEqual(readdirSync(join(maildir, 'held')), []);
});

test('a restarted receiver still answers STATUS for an earlier cookie', async () => {
  await stopServer();
  await startServer();
  const r = nmtp(['status', bobCookie, '--at', 'example.net', ...clientArgs()]);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /state=accepted/);
});

test('another client domain gets "unknown" for the cookie (bound to its owner)', async () => {
  const srv = dnsSrvResolver({ servers: [dns.address] });
  const r = await transferToDomain(
    'example.net',
    srv,
    identity(other, 'example.com'),
    { kind: 'status', cookie: bobCookie },
    undefined,
    { ca: client.ca },
  );
  assert.equal(r.recipients[0]?.reply.code, 550);
  assert.equal(r.recipients[0]?.reply.params.err, 'NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN');
});

test('a client proving with the wrong key is refused (535) and the session closed', async () => {
  const srv = dnsSrvResolver({ servers: [dns.address] });
  const r = await transferToDomain(
    'example.net',
    srv,
    identity(other),
    deliverJob(['alice@example.net'], message),
    message,
    { ca: client.ca },
  );
  assert.ok(r.failure !== undefined && typeof r.failure === 'object' && 'enhanced' in r.failure);
  assert.equal(r.failure.code, 535);
  assert.equal(r.failure.params.err, 'NMTP_ERR_TRANSPORT_PROOF_INVALID');
});

test('a client that does not trust the certificate does not connect', async () => {
  const srv = dnsSrvResolver({ servers: [dns.address] });
  await assert.rejects(
    transferToDomain(
      'example.net',
      srv,
      identity(),
      { kind: 'status', cookie: bobCookie },
      undefined,
      {},
    ),
    /certificate/i,
  );
});

test('with --require-csv, a client connecting from an address its domain does not list is refused', async () => {
  const srv = dnsSrvResolver({ servers: [dns.address] });
  const r = await transferToDomain(
    'example.net',
    srv,
    identity(other, 'example.edu'),
    deliverJob(['alice@example.net'], message),
    message,
    { ca: client.ca },
  );
  assert.ok(r.failure !== undefined && typeof r.failure === 'object' && 'enhanced' in r.failure);
  assert.equal(r.failure.code, 550);
  assert.equal(r.failure.params.csv, 'fail');
  assert.equal(r.failure.params.err, 'NMTP_ERR_TRANSPORT_CSV_FAIL');
});

test('plaintext is refused beyond loopback', async () => {
  await assert.rejects(
    listen({ host: '0.0.0.0', port: 0, plaintext: true }, async () => undefined),
    /loopback/,
  );
});
