/**
 * The reference submission backend: the user store (scrypt passwords, registered and
 * certified keys), SEND (From rule, Date and Message-Id added, domain signature bound to
 * the RCPT list, durable in the queue before the id is returned), SIGN, CERTIFY, STATUS,
 * the `users add` helper, and one session over the wire through the submission host.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NmtpError } from '../../src/core/errors/index.ts';
import { decodeMessage, encodeMessage, getField, type Field } from '../../src/core/frame/index.ts';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedToPem,
  verifyCertificate,
} from '../../src/core/keys/index.ts';
import { verifyMessage } from '../../src/core/message/index.ts';
import { parseSignatureField, toBase64url } from '../../src/core/sign/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { Queue } from '../../src/queue/index.ts';
import { listen, type Listening } from '../../src/server/listener.ts';
import { FROM_MISMATCH, ReferenceSubmissionBackend } from '../../src/server/submission-backend.ts';
import { runSubmissionSession } from '../../src/server/submission-host.ts';
import { UserStore, hashPassword, verifyPassword } from '../../src/store/users.ts';
import { USERS_ADD_COMMAND, startSubmission } from '../../src/cli/serve-submission.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-submission-'));
const domainKey = keyPairFromSeed(randomBytes(32));
const aliceKey = keyPairFromSeed(randomBytes(32));
const deviceKey = keyPairFromSeed(randomBytes(32));
const resolveTxt = staticTxtResolver(
  new Map([
    [
      domainKeyName('s1', 'example.org'),
      [printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: 'u' })],
    ],
  ]),
);
const NOW = 1_800_000_000;
const users = new UserStore(join(dir, 'users.json'));
let queue: Queue;
let backend: ReferenceSubmissionBackend;
let counter = 0;
// Deterministic "randomness": a counter in every octet, so ids and salts differ per call.
const random = (n: number): Uint8Array => new Uint8Array(n).fill(++counter);

before(async () => {
  await users.setPassword('alice@example.org', 'correct horse');
  await users.addKey('alice@example.org', aliceKey.publicKey);
  await users.setPassword('bob@example.org', 'correct horse');
  queue = await Queue.open({
    dir: join(dir, 'queue'),
    deliver: () => Promise.reject(new Error('not in this test')),
    now: () => NOW * 1000,
    timers: false,
  });
  backend = new ReferenceSubmissionBackend({
    users,
    queue,
    domain: 'example.org',
    selector: 's1',
    key: domainKey,
    now: () => NOW * 1000,
    random,
    resolveTxt,
  });
});
after(() => queue.close());

function message(fields: Field[], body = 'hello\n'): Uint8Array {
  return encodeMessage({ trace: [], root: { fields, body: new TextEncoder().encode(body) } });
}

/** Streams `bytes` into a sink of the backend in two chunks, as the host does. */
async function sink(bytes: Uint8Array) {
  const s = await backend.open();
  await s.write(bytes.subarray(0, 10));
  await s.write(bytes.subarray(10));
  return s;
}

const submit = async (bytes: Uint8Array, recipients: string[], user = 'alice@example.org') =>
  backend.submit({ type: 'submit', user, recipients, size: bytes.length }, await sink(bytes));

test('user store: scrypt with a per-user salt; right, wrong and unknown passwords', async () => {
  const file = JSON.parse(readFileSync(users.file, 'utf8')) as {
    users: Record<string, { password: string }>;
  };
  const a = file.users['alice@example.org']!.password;
  const b = file.users['bob@example.org']!.password;
  assert.match(a, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b, 'same password, different salts');
  assert.equal(await users.checkPassword('alice@example.org', 'correct horse'), true);
  assert.equal(await users.checkPassword('alice@example.org', 'correct horse '), false);
  assert.equal(await users.checkPassword('carol@example.org', 'correct horse'), false);
  assert.equal(await verifyPassword('x', 'scrypt$garbage'), false);
  const fixed = await hashPassword('pw', { N: 1024, r: 8, p: 1 }, new Uint8Array(16));
  assert.equal(await verifyPassword('pw', fixed), true);
  assert.equal(await verifyPassword('pW', fixed), false);
});

test('AUTH: PLAIN and KEY through the backend', async () => {
  const plain = (user: string, password: string) =>
    backend.authenticate({ type: 'authenticate', mechanism: 'PLAIN', user, password });
  const key = (user: string, publicKey: Uint8Array) =>
    backend.authenticate({
      type: 'authenticate',
      mechanism: 'KEY',
      user,
      publicKey,
      input: new Uint8Array(),
      signature: new Uint8Array(64),
    });
  assert.equal(await plain('alice@example.org', 'correct horse'), true);
  assert.equal(await plain('alice@example.org', 'wrong'), false);
  assert.equal(await key('alice@example.org', aliceKey.publicKey), true);
  assert.equal(await key('bob@example.org', aliceKey.publicKey), false, "not bob's key");
  assert.equal(await key('alice@example.org', deviceKey.publicKey), false, 'not registered');
});

test('SEND: Date and Message-Id added, signed for the RCPT list, durable before the id', async () => {
  const bytes = message([
    { name: 'From', value: 'Alice <alice@example.org>' },
    { name: 'To', value: '<bob@example.net>' },
    { name: 'Subject', value: 'hi' },
  ]);
  const id = await submit(bytes, ['bob@example.net', 'carol@example.com']);
  assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
  // When submit() resolved, the message was durable in its file and the state in the
  // queue's journal; the state file, written behind, names the owner and each recipient.
  // (A second queue may not open the directory while this one owns it.)
  const qdir = join(dir, 'queue');
  assert.ok(existsSync(join(qdir, 'msg', `${id}.nmtp`)));
  await queue.store.writeBehindNow();
  const onDisk = JSON.parse(readFileSync(join(qdir, 'state', `${id}.json`), 'utf8')) as {
    user: string;
    recipients: { rcpt: string; state: string }[];
  };
  assert.equal(onDisk.user, 'alice@example.org');
  assert.deepEqual(
    onDisk.recipients.map((r) => ({ rcpt: r.rcpt, state: r.state })),
    [
      { rcpt: 'bob@example.net', state: 'pending' },
      { rcpt: 'carol@example.com', state: 'pending' },
    ],
  );
  await assert.rejects(Queue.open({ dir: qdir, deliver: queue['o'].deliver, timers: false }), {
    code: 'NMTP_ERR_QUEUE_IN_USE',
  });
  assert.deepEqual(readdirSync(join(qdir, 'tmp')), [], 'the spool file is gone');

  const stored = new Uint8Array(readFileSync(join(qdir, 'msg', `${id}.nmtp`)));
  const m = decodeMessage(stored);
  assert.equal(getField(m.root.fields, 'Date'), '2027-01-15T08:00:00Z');
  assert.match(getField(m.root.fields, 'Message-Id') ?? '', /^<[A-Za-z0-9_-]{24}@example\.org>$/);
  assert.equal(getField(m.root.fields, 'Subject'), 'hi');
  assert.equal(m.trace.length, 1);
  const sig = parseSignatureField(m.trace[0]!.value);
  assert.equal(sig.domain, 'example.org');
  assert.equal(sig.selector, 's1');
  assert.equal(sig.signedAt, NOW);
  assert.equal(sig.expiresAt, NOW + 7 * 86400);
  for (const rcpt of ['bob@example.net', 'carol@example.com']) {
    const v = await verifyMessage(stored, { resolveTxt, now: NOW, recipient: rcpt });
    assert.equal(v.signatures[0]?.status, 'valid', rcpt);
  }
  // Bound to the RCPT list: a To recipient not in it is not covered, nor anyone else.
  const other = await verifyMessage(stored, {
    resolveTxt,
    now: NOW,
    recipient: 'dave@example.net',
  });
  assert.equal(other.signatures[0]?.status, 'not-for-recipient');
});

test('SEND keeps a Date and Message-Id the client wrote', async () => {
  const id = await submit(
    message([
      { name: 'From', value: '<alice@example.org>' },
      { name: 'Date', value: '2026-11-29T09:00:00+01:00' },
      { name: 'Message-Id', value: '<mine@example.org>' },
    ]),
    ['bob@example.net'],
  );
  const m = decodeMessage(readFileSync(join(dir, 'queue', 'msg', `${id}.nmtp`)));
  assert.equal(getField(m.root.fields, 'Date'), '2026-11-29T09:00:00+01:00');
  assert.equal(getField(m.root.fields, 'Message-Id'), '<mine@example.org>');
});

test('SEND refuses a From that is not the authenticated user; nothing is queued', async () => {
  const before = readdirSync(join(dir, 'queue', 'state')).length;
  for (const fields of [
    [{ name: 'From', value: '<bob@example.org>' }],
    [{ name: 'From', value: '<alice@example.org>, <bob@example.org>' }],
    [
      { name: 'From', value: '<alice@example.org>' },
      { name: 'Sender', value: '<bob@example.org>' },
    ],
    [{ name: 'Subject', value: 'no From at all' }],
  ]) {
    await assert.rejects(
      submit(message(fields), ['bob@example.net']),
      (e: unknown) => e instanceof NmtpError && e.code === FROM_MISMATCH,
      JSON.stringify(fields),
    );
  }
  assert.equal(readdirSync(join(dir, 'queue', 'state')).length, before);
  assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
});

test('a malformed message is refused with its frame code; nothing is left behind', async () => {
  const bytes = message([{ name: 'From', value: '<alice@example.org>' }]);
  const bad = bytes.slice();
  bad[bad.length - 3] = 0x41; // the sentinel is no longer CRLF CRLF
  await assert.rejects(
    submit(bad, ['bob@example.net']),
    (e: unknown) => e instanceof NmtpError && e.code.startsWith('NMTP_ERR_FRAME_'),
  );
  await assert.rejects(
    submit(message([{ name: 'From', value: '<Alice@EXAMPLE.org>' }]), ['bob@example.net']),
    (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_NOT_CANONICAL',
  );
  assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
});

test('a large message is spooled and sealed in pieces, byte for byte', async () => {
  const body = randomBytes(5 * 1024 * 1024 + 7);
  const bytes = encodeMessage({
    trace: [],
    root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body },
  });
  const s = await backend.open();
  for (let i = 0; i < bytes.length; i += 1 << 20) await s.write(bytes.subarray(i, i + (1 << 20)));
  const id = await backend.submit(
    {
      type: 'submit',
      user: 'alice@example.org',
      recipients: ['bob@example.net'],
      size: bytes.length,
    },
    s,
  );
  const stored = new Uint8Array(readFileSync(join(dir, 'queue', 'msg', `${id}.nmtp`)));
  const m = decodeMessage(stored);
  assert.ok(Buffer.from(body).equals(Buffer.from((m.root as { body: Uint8Array }).body)));
  const v = await verifyMessage(stored, { resolveTxt, now: NOW, recipient: 'bob@example.net' });
  assert.equal(v.signatures[0]?.status, 'valid');
  assert.equal((await queue.get(id))?.size, stored.length);
});

test('no id when the queue could not store the submission', async () => {
  // The first state of a spooled submission is what the queue stores last (journaled).
  const real = queue.store.writeFirstState.bind(queue.store);
  queue.store.writeFirstState = () => Promise.reject(new Error('disk full'));
  try {
    await assert.rejects(
      submit(message([{ name: 'From', value: '<alice@example.org>' }]), ['bob@example.net']),
      /disk full/,
    );
  } finally {
    queue.store.writeFirstState = real;
  }
  // Neither the message nor a spool file is left behind (the earlier states written first).
  await queue.store.writeBehindNow();
  const states = readdirSync(join(dir, 'queue', 'state')).map((n) => n.replace('.json', ''));
  const msgs = readdirSync(join(dir, 'queue', 'msg')).map((n) => n.replace('.nmtp', ''));
  assert.ok(
    msgs.every((m) => states.includes(m)),
    'every message has its state',
  );
  assert.deepEqual(readdirSync(join(dir, 'queue', 'tmp')), []);
});

test('STATUS: only the submitting user sees an id', async () => {
  const id = await submit(message([{ name: 'From', value: '<alice@example.org>' }]), [
    'bob@example.net',
  ]);
  const st = (user: string, x = id) => backend.status({ type: 'submission-status', user, id: x });
  assert.deepEqual(await st('alice@example.org'), [{ rcpt: 'bob@example.net', state: 'pending' }]);
  assert.equal(await st('bob@example.org'), undefined);
  assert.equal(await st('alice@example.org', 'unknown-id'), undefined);
});

test('SIGN: completed and signed for the To and Cc mailboxes, nothing queued', async () => {
  const before = readdirSync(join(dir, 'queue', 'state')).length;
  const bytes = message([
    { name: 'From', value: '<alice@example.org>' },
    { name: 'To', value: '<bob@example.net>' },
    { name: 'Cc', value: 'Carol <carol@example.com>' },
  ]);
  const signed = await backend.sign(
    { type: 'sign', user: 'alice@example.org', size: bytes.length },
    await sink(bytes),
  );
  assert.equal(readdirSync(join(dir, 'queue', 'state')).length, before);
  const m = decodeMessage(signed);
  assert.ok(getField(m.root.fields, 'Date'));
  for (const rcpt of ['bob@example.net', 'carol@example.com']) {
    const v = await verifyMessage(signed, { resolveTxt, now: NOW, recipient: rcpt });
    assert.equal(v.signatures[0]?.status, 'valid');
  }
  await assert.rejects(
    (async () =>
      backend.sign(
        { type: 'sign', user: 'bob@example.org', size: bytes.length },
        await sink(bytes),
      ))(),
    (e: unknown) => e instanceof NmtpError && e.code === FROM_MISMATCH,
  );
});

test('CERTIFY: a certificate for the user key that verifies; AUTH KEY then accepts the key', async () => {
  const value = await backend.certify({
    type: 'certify',
    user: 'alice@example.org',
    publicKey: deviceKey.publicKey,
    days: 10,
  });
  const check = await verifyCertificate(value, { resolveTxt, now: NOW + 1 });
  assert.ok(check.ok, JSON.stringify(check));
  assert.equal(check.certificate.user, 'alice@example.org');
  assert.equal(check.certificate.notAfter, NOW + 10 * 86400);
  assert.deepEqual(check.certificate.userKey, deviceKey.publicKey);
  const key = (now: number) =>
    new ReferenceSubmissionBackend({
      users,
      queue,
      domain: 'example.org',
      selector: 's1',
      key: domainKey,
      now: () => now * 1000,
      resolveTxt,
    }).authenticate({
      type: 'authenticate',
      mechanism: 'KEY',
      user: 'alice@example.org',
      publicKey: deviceKey.publicKey,
      input: new Uint8Array(),
      signature: new Uint8Array(64),
    });
  assert.equal(await key(NOW + 86400), true);
  assert.equal(await key(NOW + 11 * 86400), false, 'after the certificate expired');
});

test('users add: hashed password from NMTP_PASSWORD, and a registered key', async () => {
  const file = join(dir, 'added.json');
  process.env['NMTP_PASSWORD'] = 'battery staple';
  try {
    const code = await USERS_ADD_COMMAND.run({
      users: file,
      user: 'Dave@EXAMPLE.org',
      key: toBase64url(aliceKey.publicKey),
    });
    assert.equal(code, 0);
  } finally {
    delete process.env['NMTP_PASSWORD'];
  }
  const store = new UserStore(file);
  assert.equal(await store.checkPassword('Dave@example.org', 'battery staple'), true);
  assert.doesNotMatch(readFileSync(file, 'utf8'), /battery/);
  assert.deepEqual(await store.findKey('Dave@example.org', aliceKey.publicKey, NOW), {
    kind: 'registered',
  });
});

test('over the wire: AUTH PLAIN, RCPT, SEND, STATUS; a foreign From is refused', async () => {
  const server: Listening = await listen({ host: '127.0.0.1', port: 0, plaintext: true }, (s, ip) =>
    runSubmissionSession(s, ip, { config: { serverName: 'submit.example.org' }, backend }),
  );
  const socket = connect(server.port, '127.0.0.1');
  let buf = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    wake?.();
  });
  const line = async (): Promise<string> => {
    for (;;) {
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 2);
        return l;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const send = async (bytes: Uint8Array): Promise<string> => {
    socket.write(`RCPT bob@example.net\r\n`);
    assert.equal(await line(), '250 2.1.5 rcpt=bob@example.net');
    socket.write(`SEND size=${bytes.length}\r\n`);
    assert.equal(await line(), '354 2.0.0 view=full');
    socket.write(`CHUNK ${bytes.length} LAST\r\n`);
    socket.write(bytes);
    socket.write('\r\n');
    return line();
  };
  try {
    assert.match(await line(), /^220 /);
    const cred = toBase64url(new TextEncoder().encode('\0alice@example.org\0correct horse'));
    socket.write(`AUTH PLAIN ${cred}\r\n`);
    assert.equal(await line(), '235 2.7.0 user=alice@example.org');
    const ok = await send(message([{ name: 'From', value: '<alice@example.org>' }]));
    const id = /^250 2\.0\.0 id=([A-Za-z0-9_-]+)$/.exec(ok)?.[1];
    assert.ok(id, ok);
    socket.write(`STATUS ${id}\r\n`);
    assert.equal(await line(), `250 2.0.0 id=${id} count=1`);
    assert.equal(await line(), '250 2.0.0 rcpt=bob@example.net state=pending');
    // Refused, no id, and the session goes on.
    const refused = await send(message([{ name: 'From', value: '<bob@example.org>' }]));
    assert.equal(refused, '550 5.7.1 err=NMTP_ERR_TRANSPORT_FROM_MISMATCH');
    // SIGN binds To and Cc (§60.11.4): a message with neither is refused, not a 451.
    const unbound = message([{ name: 'From', value: '<alice@example.org>' }]);
    socket.write(`SIGN size=${unbound.length}\r\nCHUNK ${unbound.length} LAST\r\n`);
    socket.write(unbound);
    socket.write('\r\n');
    assert.equal(await line(), '354 2.0.0 view=full');
    assert.equal(await line(), '554 5.6.0 err=NMTP_ERR_INVALID_ARGUMENT');
    socket.write('NOOP\r\n');
    assert.equal(await line(), '250 2.0.0');
  } finally {
    socket.destroy();
    await server.close();
  }
});

test('startSubmission: the serve flags start the listener and the queue together', async () => {
  const keyFile = join(dir, 'domain.pem');
  writeFileSync(keyFile, seedToPem(domainKey.seed));
  const requests: string[][] = [];
  let deliverCalled: () => void = () => undefined;
  const called = new Promise<void>((resolve) => (deliverCalled = resolve));
  const service = await startSubmission(
    {
      'submission-listen': '127.0.0.1:0',
      users: users.file,
      'domain-key': keyFile,
      selector: 's1',
      'mail-domain': 'example.org',
      queue: join(dir, 'cli-queue'),
    },
    {
      serverName: 'submit.example.org',
      plaintext: true,
      deliver: async (r) => {
        const rcpts = r.job.kind === 'deliver' ? r.job.recipients : [];
        requests.push([...rcpts]);
        deliverCalled();
        return { recipients: rcpts.map((rcpt) => ({ rcpt, reply: okReply(rcpt) })) };
      },
    },
  );
  assert.ok(service);
  try {
    const socket = connect(service.port, '127.0.0.1');
    const lines = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n235 ')) resolve(text);
      });
      const cred = toBase64url(new TextEncoder().encode('\0alice@example.org\0correct horse'));
      socket.write(`AUTH PLAIN ${cred}\r\n`);
    });
    socket.destroy();
    assert.match(
      lines,
      /^220 2\.0\.0 version=NMTP\/1 service=submission server=submit\.example\.org /,
    );
    // The queue runs in the same process, with its own timer: a submission is delivered.
    const sink = await service.backend.open();
    const bytes = message([{ name: 'From', value: '<alice@example.org>' }]);
    await sink.write(bytes);
    const id = await service.backend.submit(
      {
        type: 'submit',
        user: 'alice@example.org',
        recipients: ['bob@example.net'],
        size: bytes.length,
      },
      sink,
    );
    // Delivered by the queue's own timer; close() waits for the work in progress.
    await called;
    await service.close();
    assert.deepEqual(requests, [['bob@example.net']]);
    assert.deepEqual(service.queue.status(id, 'alice@example.org'), [
      { rcpt: 'bob@example.net', state: 'accepted' },
    ]);
  } finally {
    await service.close();
  }
  assert.equal(await startSubmission({}, { serverName: 'x' }), undefined, 'off without the flag');
});

const okReply = (rcpt: string) => ({
  code: 250,
  enhanced: '2.0.0',
  params: { rcpt, id: 'r' },
  text: '',
});
