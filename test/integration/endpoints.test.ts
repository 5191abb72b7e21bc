/**
 * Every transport feature end to end, with NMTP endpoints started from the CLI and a real
 * DNS server (dnsmasq) on loopback:
 *
 *   alice ──nmtp submit──▶ A  `nmtp serve --submission-listen …` (example.org: submission,
 *                              signing, queue, transfer client)
 *                          │ SRV _nmtp-transfer._tcp.example.net, HELLO proof, CSV
 *                          ▼
 *                          B  `nmtp serve --require-csv` (example.net's mailbox: accept,
 *                              reject, defer, redirect bob)
 *                          │ 351 redirect=C key=SHA256:<bob's key>
 *                          ▼
 *                          C  `nmtp serve --user-key bob@example.net=…` (bob's own endpoint,
 *                              self-signed certificate: PROVE authenticates it)
 *
 * Covers: AUTH PLAIN and AUTH KEY (with a key CERTIFY issued), SEND with Date/Message-Id
 * added and the domain signature, per-recipient status from the queue, accepted /
 * rejected / deferred answers, a redirect followed after PROVE, the fallback when the
 * redirect target is down (RCPT redirect=failed), STATUS and GIVEUP on cookies from the
 * CLI, a preview (headers view) approved and then fetched whole (STATUS → 352 → DATA on
 * the cookie), and SIGN.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
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
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { decodeMessage, encodeMessage } from '../../src/core/frame/index.ts';
import {
  domainKeyName,
  fingerprint,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedToPem,
} from '../../src/core/keys/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { dnsTxtResolver } from '../../src/dns/txt.ts';
import { startDnsmasq, type DnsServer } from '../harness/dnsmasq.ts';
import { eventually } from '../support/eventually.ts';
import { freeTcpPort } from '../support/net.ts';
import { readStored } from '../support/stored.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const nmtp = (args: string[], input?: Uint8Array, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    input: input ?? new Uint8Array(),
    maxBuffer: 1 << 24,
    env: { ...process.env, ...env },
  });
const ok = (r: ReturnType<typeof nmtp>): string => {
  assert.equal(r.status, 0, `${r.stdout.toString()}\n${r.stderr.toString()}`);
  return r.stdout.toString();
};

const dir = mkdtempSync(join(tmpdir(), 'nmtp-endpoints-'));
const orgSeed = randomBytes(32);
const orgKey = keyPairFromSeed(orgSeed);
const bobSeed = randomBytes(32);
const bobKey = keyPairFromSeed(bobSeed);
const aliceSeed = randomBytes(32);
const files = {
  orgKey: join(dir, 'example.org.pem'),
  bobKey: join(dir, 'bob.pem'),
  aliceKey: join(dir, 'alice.pem'),
  users: join(dir, 'users.json'),
  password: join(dir, 'alice.password'),
  certs: join(dir, 'certs'),
  bobCerts: join(dir, 'bob-certs'),
  mailB: join(dir, 'mail-b'),
  mailC: join(dir, 'mail-c'),
  mailA: join(dir, 'mail-a'),
  queue: join(dir, 'queue'),
};
const servers: ChildProcess[] = [];
let dns: DnsServer;
const ports = { aTransfer: 0, aSubmission: 0, b: 0, c: 0 };
let serverC: ChildProcess;

/** Starts `nmtp serve …` and waits until every listener it has reports. */
async function serve(args: string[], listeners: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let text = '';
  let errors = '';
  child.stderr!.on('data', (d: Buffer) => (errors += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if ((text.match(/listening on/g) ?? []).length === listeners) resolve();
    });
    child.once('exit', (code) => reject(new Error(`nmtp serve exited ${code}: ${text}${errors}`)));
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const cert = (): string => join(files.certs, '127.0.0.1.crt');
const submitArgs = (): string[] => [
  '--server',
  `127.0.0.1:${ports.aSubmission}`,
  '--user',
  'alice@example.org',
  '--password-file',
  files.password,
  '--ca',
  cert(),
];
const transferClientArgs = (): string[] => [
  '--key',
  files.orgKey,
  '--domain',
  'example.org',
  '--selector',
  's1',
  '--dns-server',
  dns.address,
  '--ca',
  cert(),
];

/** A framed message from alice, unsigned: the submission server signs it. */
function aliceMessage(subject: string, to?: string): Uint8Array {
  return encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'From', value: '<alice@example.org>' },
        ...(to === undefined ? [] : [{ name: 'To', value: `<${to}>` }]),
        { name: 'Subject', value: subject },
      ],
      body: new TextEncoder().encode(`${subject}\r\n${randomBytes(600).toString('base64')}\r\n`),
    },
  });
}

/** `nmtp submission status` until every recipient has left `pending` (bounded by tries). */
async function settledStatus(id: string): Promise<Map<string, string>> {
  for (let i = 0; ; i++) {
    const lines = ok(nmtp(['submission', 'status', id, ...submitArgs()]))
      .trim()
      .split('\n');
    const m = new Map(lines.map((l) => [l.split(' ')[1]!, l.split(' ')[2]!]));
    if (![...m.values()].includes('pending') || i === 120) return m;
    await sleep(250);
  }
}

/**
 * The copies a mailbox accepted, with the recipient their Received field names (a
 * journalled message's copy appears, whole, moments after the answer).
 */
function accepted(maildir: string): { rcpt: string; file: string }[] {
  const d = join(maildir, 'new');
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.nmtp'))
    .map((f) => ({ rcpt: readStored(join(d, f)).received.rcpt, file: join(d, f) }));
}

/** Waits until `maildir` holds a message for `rcpt` (see `accepted`). */
const storedFor = (maildir: string, rcpt: string): Promise<void> =>
  eventually(() => accepted(maildir).some((x) => x.rcpt === rcpt), `${rcpt} in ${maildir}`);

before(async () => {
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freeTcpPort();
  ok(nmtp(['certs', 'generate', '--out', files.certs, '--name', '127.0.0.1']));
  // Bob's endpoint has a certificate nobody trusts: only its key proof counts (§60.10.8).
  ok(nmtp(['certs', 'generate', '--out', files.bobCerts, '--name', '127.0.0.1']));
  writeFileSync(files.orgKey, seedToPem(orgSeed));
  writeFileSync(files.bobKey, seedToPem(bobSeed));
  writeFileSync(files.aliceKey, seedToPem(aliceSeed));
  writeFileSync(files.password, 'correct horse battery staple\n');
  ok(
    nmtp(['users', 'add', '--users', files.users, '--user', 'alice@example.org'], undefined, {
      NMTP_PASSWORD: 'correct horse battery staple',
    }),
  );
  dns = await startDnsmasq({
    txt: new Map([
      [
        domainKeyName('s1', 'example.org'),
        [printDomainKeyRecord({ publicKey: orgKey.publicKey, flags: '' })],
      ],
      ['_nmtpclient.example.org', ['v=NMTPCSV1; ip=127.0.0.1/32']],
    ]),
    srv: new Map([
      [
        '_nmtp-transfer._tcp.example.net',
        [{ target: '127.0.0.1', port: ports.b, priority: 10, weight: 0 }],
      ],
    ]),
  });
  mkdirSync(files.mailB, { recursive: true });
  writeFileSync(
    join(files.mailB, 'policy.json'),
    JSON.stringify({
      defer: ['carol@example.net', 'frank@example.net'],
      reject: ['dave@example.net'],
      // grace reads a preview first: headers only, then the full message once approved.
      preview: { 'grace@example.net': 'headers' },
      redirect: {
        'bob@example.net': `127.0.0.1:${ports.c} ${fingerprint(bobKey.publicKey)}`,
      },
    }),
  );
  const tls = ['--cert', cert(), '--key', join(files.certs, '127.0.0.1.key')];
  const dnsArg = ['--dns-server', dns.address];
  await serve(
    [
      '--listen',
      `127.0.0.1:${ports.aTransfer}`,
      ...tls,
      '--domain',
      'example.org',
      '--maildir',
      files.mailA,
      ...dnsArg,
      '--submission-listen',
      `127.0.0.1:${ports.aSubmission}`,
      '--users',
      files.users,
      '--domain-key',
      files.orgKey,
      '--selector',
      's1',
      '--queue',
      files.queue,
      '--peer-ca',
      cert(),
    ],
    2,
  );
  await serve(
    [
      '--listen',
      `127.0.0.1:${ports.b}`,
      ...tls,
      '--domain',
      'mx.example.net',
      '--maildir',
      files.mailB,
      ...dnsArg,
      '--require-csv',
      // Deferred senders may poll every second: the queue's STATUS comes quickly.
      '--min-poll',
      '1',
      '--max-poll',
      '2',
    ],
    1,
  );
  serverC = await serve(
    [
      '--listen',
      `127.0.0.1:${ports.c}`,
      '--cert',
      join(files.bobCerts, '127.0.0.1.crt'),
      '--key',
      join(files.bobCerts, '127.0.0.1.key'),
      '--domain',
      'bob-laptop.example.net',
      '--maildir',
      files.mailC,
      ...dnsArg,
      '--user-key',
      `bob@example.net=${files.bobKey}`,
      '--min-poll',
      '1',
      '--max-poll',
      '2',
    ],
    1,
  );
});

after(async () => {
  for (const s of servers) await stop(s);
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let carolCookie = '';

test('submit: the queue delivers through SRV, proof and CSV; each recipient gets its own answer; bob is redirected to his proven endpoint', async () => {
  const msg = join(dir, 'first.nmtp');
  writeFileSync(msg, aliceMessage('first'));
  const to = ['erin', 'dave', 'carol', 'bob'].flatMap((u) => ['--to', `${u}@example.net`]);
  const id = ok(nmtp(['submit', ...submitArgs(), ...to, '--file', msg])).trim();
  assert.match(id, /^[A-Za-z0-9_-]+$/);

  const status = await settledStatus(id);
  assert.deepEqual(Object.fromEntries(status), {
    'erin@example.net': 'accepted',
    'dave@example.net': 'rejected',
    'carol@example.net': 'deferred',
    'bob@example.net': 'accepted',
  });

  // erin at B, bob at C (his own endpoint), nothing for bob at B.
  await storedFor(files.mailB, 'erin@example.net');
  await storedFor(files.mailC, 'bob@example.net');
  const atB = accepted(files.mailB);
  assert.deepEqual(
    atB.map((x) => x.rcpt),
    ['erin@example.net'],
  );
  const atC = accepted(files.mailC);
  assert.deepEqual(
    atC.map((x) => x.rcpt),
    ['bob@example.net'],
  );

  // The stored message is the signed one: Date and Message-Id added, the example.org
  // signature verifies (key looked up in DNS) and lists bob.
  const stored = new Uint8Array(readFileSync(atC[0]!.file));
  const names = decodeMessage(stored).root.fields.map((f) => f.name.toLowerCase());
  assert.ok(names.includes('date') && names.includes('message-id'), names.join(','));
  const v = await verifyMessage(stored, {
    resolveTxt: dnsTxtResolver({ servers: [dns.address] }),
    now: Math.floor(Date.now() / 1000),
    recipient: 'bob@example.net',
  });
  assert.equal(v.signatures.length, 1);
  assert.equal(v.signatures[0]!.status, 'valid', JSON.stringify(v.signatures));
  // B recorded who sent it: proof and CSV both pass for example.org from 127.0.0.1.
  const side = readStored(atB[0]!.file);
  assert.deepEqual(
    { domain: side.client.domain, proof: side.client.proof, csv: side.client.csv },
    { domain: 'example.org', proof: 'pass', csv: 'pass' },
  );

  const held = readdirSync(join(files.mailB, 'held')).filter((f) => f.endsWith('.nmtp'));
  assert.equal(held.length, 1);
  carolCookie = held[0]!.replace(/\.nmtp$/, '');
});

test('a deferred recipient: approved with `nmtp mailbox approve`, then STATUS from the sending domain says accepted', () => {
  assert.ok(carolCookie !== '');
  const before = ok(nmtp(['status', carolCookie, '--at', 'example.net', ...transferClientArgs()]));
  assert.match(before, /^carol@example\.net 350 2\.0\.0 cookie=/m);
  ok(nmtp(['mailbox', 'approve', carolCookie, '--maildir', files.mailB]));
  const after = ok(nmtp(['status', carolCookie, '--at', 'example.net', ...transferClientArgs()]));
  assert.match(
    after,
    /^carol@example\.net 250 2\.0\.0 cookie=\S+ rcpt=carol@example\.net state=accepted id=/m,
  );
  assert.ok(accepted(files.mailB).some((x) => x.rcpt === 'carol@example.net'));
});

test('GIVEUP from the CLI ends the wait on both sides', async () => {
  const msg = join(dir, 'frank.nmtp');
  writeFileSync(msg, aliceMessage('for frank'));
  const id = ok(
    nmtp(['submit', ...submitArgs(), '--to', 'frank@example.net', '--file', msg]),
  ).trim();
  assert.equal((await settledStatus(id)).get('frank@example.net'), 'deferred');
  const held = readdirSync(join(files.mailB, 'held')).filter((f) => f.endsWith('.nmtp'));
  assert.equal(held.length, 1);
  const cookie = held[0]!.replace(/\.nmtp$/, '');
  const r = ok(nmtp(['giveup', cookie, '--at', 'example.net', ...transferClientArgs()]));
  assert.match(r, /state=given-up/);
  // "the receiver MAY discard what it holds for that recipient" (§60.10.6): this one does.
  assert.equal(readdirSync(join(files.mailB, 'held')).filter((f) => f.endsWith('.nmtp')).length, 0);
});

test('a redirect target defers: the queue polls that target only, proving the key again (a certificate nobody trusts); approved there, accepted, stored once', async () => {
  const policy = join(files.mailC, 'policy.json');
  writeFileSync(policy, JSON.stringify({ defer: ['bob@example.net'] }));
  const heldAtC = (): string[] =>
    readdirSync(join(files.mailC, 'held')).filter((f) => f.endsWith('.nmtp'));
  try {
    const atC = accepted(files.mailC).length;
    const bobAtB = accepted(files.mailB).filter((x) => x.rcpt === 'bob@example.net').length;
    const msg = join(dir, 'held-at-c.nmtp');
    writeFileSync(msg, aliceMessage('held at C'));
    const id = ok(
      nmtp(['submit', ...submitArgs(), '--to', 'bob@example.net', '--file', msg]),
    ).trim();
    assert.equal((await settledStatus(id)).get('bob@example.net'), 'deferred');
    assert.equal(heldAtC().length, 1);
    // Polls go by (every 1–2 s): each proves bob's key at C again. The cookie is C's, so
    // neither a STATUS to the domain ("unknown cookie") nor a second delivery happens.
    await sleep(4000);
    assert.equal((await settledStatus(id)).get('bob@example.net'), 'deferred');
    assert.equal(heldAtC().length, 1);
    const cookie = heldAtC()[0]!.replace(/\.nmtp$/, '');
    ok(nmtp(['mailbox', 'approve', cookie, '--maildir', files.mailC]));
    let state = '';
    for (let i = 0; i < 120 && state !== 'accepted'; i++) {
      await sleep(250);
      state = (await settledStatus(id)).get('bob@example.net') ?? '';
    }
    assert.equal(state, 'accepted');
    assert.equal(accepted(files.mailC).length, atC + 1);
    assert.equal(accepted(files.mailB).filter((x) => x.rcpt === 'bob@example.net').length, bobAtB);
  } finally {
    rmSync(policy, { force: true });
  }
});

test('the redirect target is down: the sender falls back to the domain with redirect=failed and the message is stored there', async () => {
  const atC = accepted(files.mailC).length;
  await stop(serverC);
  const msg = join(dir, 'second.nmtp');
  writeFileSync(msg, aliceMessage('second'));
  const id = ok(nmtp(['submit', ...submitArgs(), '--to', 'bob@example.net', '--file', msg])).trim();
  assert.equal((await settledStatus(id)).get('bob@example.net'), 'accepted');
  await storedFor(files.mailB, 'bob@example.net');
  assert.equal(accepted(files.mailC).length, atC); // nothing more reached C
});

test('CERTIFY a user key, then AUTH KEY with it; SIGN returns the message signed by the domain', () => {
  const certificate = ok(
    nmtp(['submission', 'certify', '--key', files.aliceKey, '--days', '7', ...submitArgs()]),
  ).trim();
  assert.match(certificate, /^v=1; a=ed25519; d=example\.org; s=s1; .*u=alice@example\.org;/);

  const withKey = [
    '--server',
    `127.0.0.1:${ports.aSubmission}`,
    '--user',
    'alice@example.org',
    '--user-key',
    files.aliceKey,
    '--ca',
    cert(),
  ];
  // SIGN has no RCPT list: the signature binds the message's To and Cc (§60.11.4).
  const unsigned = aliceMessage('to be signed', 'erin@example.net');
  const signed = nmtp(['submission', 'sign', ...withKey], unsigned);
  assert.equal(signed.status, 0, signed.stderr.toString());
  const out = new Uint8Array(signed.stdout);
  const sigs = decodeMessage(out).trace.filter((f) => f.name === 'Signature');
  assert.equal(sigs.length, 1);
  assert.match(sigs[0]!.value, /d=example\.org; s=s1;/);
  // AUTH KEY with the certified key worked (the SIGN above logged in with it); alice's
  // own key is not the domain's, so the Signature is still the domain's.

  // A wrong password is refused (and nothing is submitted).
  writeFileSync(join(dir, 'wrong'), 'not the password\n');
  const refused = nmtp(
    [
      'submit',
      '--server',
      `127.0.0.1:${ports.aSubmission}`,
      '--user',
      'alice@example.org',
      '--password-file',
      join(dir, 'wrong'),
      '--ca',
      cert(),
      '--to',
      'erin@example.net',
    ],
    unsigned,
  );
  assert.notEqual(refused.status, 0);
  assert.match(
    refused.stderr.toString() + refused.stdout.toString(),
    /NMTP_ERR_TRANSPORT_AUTH_FAILED/,
  );
});

test('a preview recipient: B asks for the headers view only, holds it; approval makes the queue send the full message on the cookie (STATUS → 352)', async () => {
  const msg = join(dir, 'grace.nmtp');
  const bytes = aliceMessage('for grace');
  writeFileSync(msg, bytes);
  const id = ok(
    nmtp(['submit', ...submitArgs(), '--to', 'grace@example.net', '--file', msg]),
  ).trim();
  assert.equal((await settledStatus(id)).get('grace@example.net'), 'deferred');
  // Held: the headers view only, which is shorter than the signed message.
  const heldFiles = readdirSync(join(files.mailB, 'held')).filter((f) => f.endsWith('.nmtp'));
  assert.equal(heldFiles.length, 1);
  const preview = readFileSync(join(files.mailB, 'held', heldFiles[0]!));
  assert.ok(preview.includes(Buffer.from('Subject: for grace')));
  assert.ok(!preview.includes(Buffer.from(bytes.subarray(bytes.length - 200, bytes.length - 100))));
  const cookie = heldFiles[0]!.replace(/\.nmtp$/, '');
  assert.match(ok(nmtp(['mailbox', 'approve', cookie, '--maildir', files.mailB])), /want-view/);

  // The queue's next STATUS gets 352 view=full and sends the message on the cookie.
  let state = '';
  for (let i = 0; i < 120 && state !== 'accepted'; i++) {
    await sleep(250);
    const line = ok(nmtp(['submission', 'status', id, ...submitArgs()])).trim();
    state = line.split(' ')[2] ?? '';
  }
  assert.equal(state, 'accepted');
  await storedFor(files.mailB, 'grace@example.net');
  const stored = accepted(files.mailB).filter((x) => x.rcpt === 'grace@example.net');
  assert.equal(stored.length, 1);
  const full = decodeMessage(new Uint8Array(readFileSync(stored[0]!.file)));
  assert.ok(full.trace.some((f) => f.name === 'Signature'));
  assert.equal(readdirSync(join(files.mailB, 'held')).filter((f) => f.endsWith('.nmtp')).length, 0);
});
