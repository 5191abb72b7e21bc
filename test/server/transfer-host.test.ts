/**
 * The transfer host on a plaintext loopback listener: limits, timeouts, hostile input and
 * cut-off data, with the mailbox decider and a static TXT resolver (no DNS server needed
 * here). Then, on a real TLS listener, the server side of redirects (§60.10.8): PROVE bound
 * to the connection by the TLS exporter, the mailbox's redirect policy and its fallback,
 * and the reputation verdict recorded with every message (§60.8.3).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMessage, encodeMessage } from '../../src/core/frame/index.ts';
import {
  domainKeyName,
  fingerprint,
  keyPairFromSeed,
  printDomainKeyRecord,
} from '../../src/core/keys/index.ts';
import { PROVE_EXPORTER_LABEL, proofInput, proveInput } from '../../src/core/session/index.ts';
import { ed25519, fromBase64url, toBase64url } from '../../src/core/sign/index.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { Mailbox } from '../../src/server/mailbox.ts';
import type { Identification } from '../../src/server/transfer-host.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { deliverJob, transferTo } from '../../src/client/transfer.ts';
import { announce } from '../../src/client/source.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { readStored, type Stored } from '../support/stored.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-host-'));
const key = keyPairFromSeed(randomBytes(32));
const resolveTxt = staticTxtResolver(
  new Map([
    [
      domainKeyName('s1', 'example.org'),
      [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
    ],
    ['_nmtpclient.example.org', ['v=NMTPCSV1; ip=127.0.0.1']],
  ]),
);
let server: Serving;
let slow: Serving;

before(async () => {
  server = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    plaintext: true,
    maxPerIp: 3,
    serverName: 'mx.example.net',
    maildir: join(dir, 'mail'),
    resolveTxt,
  });
  // Every state timeout divided by 1000: the 60 s HELLO wait becomes 60 ms.
  slow = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    plaintext: true,
    serverName: 'mx.example.net',
    maildir: join(dir, 'mail2'),
    resolveTxt,
    timeoutScale: 0.001,
  });
});

after(async () => {
  await server.close();
  await slow.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A line-reading raw client. */
class Raw {
  private buf = '';
  private waiting: (() => void) | undefined;
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }
  static async open(port: number): Promise<Raw> {
    const s = connect(port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    return new Raw(s);
  }
  async line(): Promise<string | undefined> {
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        return l;
      }
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
  send(s: string | Uint8Array): void {
    this.socket.write(s);
  }
  async untilClosed(): Promise<void> {
    while ((await this.line()) !== undefined);
  }
  /** Reads the greeting and says HELLO with a valid proof. */
  async hello(): Promise<void> {
    const greeting = (await this.line())!;
    const challenge = /challenge=(\S+)/.exec(greeting)![1]!;
    const proof = toBase64url(
      ed25519.sign(key, proofInput(challenge, 'mx.example.net', 'example.org')),
    );
    this.send(`HELLO example.org sel=s1 proof=${proof}\r\n`);
    assert.match(
      (await this.line())!,
      /^250 2\.0\.0 domain=example\.org proof=pass csv=pass eager=65536$/,
    );
  }
}

/** The discard runs after the socket closed: poll briefly for it. */
async function tmpIsEmpty(): Promise<void> {
  for (let i = 0; i < 50 && readdirSync(join(dir, 'mail', 'tmp')).length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.deepEqual(readdirSync(join(dir, 'mail', 'tmp')), []);
}

const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'Subject', value: 'x' }], body: new Uint8Array(100) },
});

test('the client module delivers over the host loop; the greeting is well-formed', async () => {
  const r = await transferTo(
    { host: '127.0.0.1', port: server.port },
    { domain: 'example.org', selector: 's1', key },
    deliverJob(['a@example.net', 'b@example.net'], message),
    message,
    { plaintext: true },
  );
  assert.equal(r.failure, undefined);
  assert.deepEqual(
    r.recipients.map((x) => [x.rcpt, x.reply.code]),
    [
      ['a@example.net', 250],
      ['b@example.net', 250],
    ],
  );
  await server.mailbox.settled();
  const stored = readdirSync(join(dir, 'mail', 'new'));
  assert.equal(stored.filter((n) => n.endsWith('.nmtp')).length, 2);
  // Each copy records the client identification in its Received field.
  const meta = readStored(join(dir, 'mail', 'new', stored[0]!));
  assert.deepEqual(meta.client, {
    domain: 'example.org',
    ip: '127.0.0.1',
    proof: 'pass',
    csv: 'pass',
  });
});

test('unknown and out-of-order commands get coded replies; the session survives', async () => {
  const c = await Raw.open(server.port);
  assert.match(
    (await c.line())!,
    /^220 2\.0\.0 version=NMTP\/1 service=transfer server=mx\.example\.net challenge=\S{22,}$/,
  );
  c.send('FROB\r\n');
  assert.match((await c.line())!, /^500 5\.5\.1 .*err=NMTP_ERR_WIRE_UNKNOWN_COMMAND/);
  c.send('RCPT a@example.net\r\n');
  assert.match((await c.line())!, /^503 5\.5\.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER/);
  c.send('QUIT\r\n');
  assert.match((await c.line())!, /^221 /);
  await c.untilClosed();
});

test('DATA before any recipient is refused', async () => {
  const c = await Raw.open(server.port);
  await c.hello();
  c.send(`DATA size=10 digest=${toBase64url(new Uint8Array(32))}\r\n`);
  assert.match((await c.line())!, /^503 5\.5\.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS/);
  c.socket.destroy();
});

test('a wrong proof is refused with 535 and the connection closed', async () => {
  const c = await Raw.open(server.port);
  await c.line();
  c.send(`HELLO example.org sel=s1 proof=${toBase64url(new Uint8Array(64))}\r\n`);
  assert.match(
    (await c.line())!,
    /^535 5\.7\.8 domain=example\.org err=NMTP_ERR_TRANSPORT_PROOF_INVALID/,
  );
  await c.untilClosed();
  assert.ok(c.closed);
});

test('a chunk that lies about its length is a framing error: one reply, then close', async () => {
  const c = await Raw.open(server.port);
  await c.hello();
  c.send('RCPT a@example.net\r\n');
  assert.match((await c.line())!, /^250 2\.1\.5/);
  c.send(`DATA size=${message.length} digest=${toBase64url(new Uint8Array(32))}\r\n`);
  assert.match((await c.line())!, /^354 2\.0\.0 view=full$/);
  c.send('CHUNK 3 LAST\r\nabcdef\r\n');
  assert.match((await c.line())!, /err=NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH/);
  await c.untilClosed();
  await tmpIsEmpty();
});

test('a client that stops mid-chunk leaves nothing behind', async () => {
  const c = await Raw.open(server.port);
  await c.hello();
  c.send('RCPT a@example.net\r\n');
  await c.line();
  c.send(`DATA size=${message.length} digest=${toBase64url(new Uint8Array(32))}\r\n`);
  await c.line();
  c.send(`CHUNK ${message.length} LAST\r\n`);
  c.send(message.subarray(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 50));
  c.socket.end();
  await c.untilClosed();
  await tmpIsEmpty();
});

test('a silent client times out with 421 4.4.2 (state table timeout)', async () => {
  const c = await Raw.open(slow.port);
  await c.line();
  assert.match((await c.line())!, /^421 4\.4\.2 err=NMTP_ERR_TRANSPORT_TIMEOUT$/);
  await c.untilClosed();
});

test('connections beyond the per-address limit get 421 and are closed', async () => {
  const open = await Promise.all([1, 2, 3].map(() => Raw.open(server.port)));
  for (const c of open) assert.match((await c.line())!, /^220 /);
  const extra = await Raw.open(server.port);
  assert.match((await extra.line())!, /^421 4\.7\.0 err=NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS$/);
  await extra.untilClosed();
  for (const c of open) c.socket.destroy();
});

// --- over TLS: PROVE, the redirect policy, reputation ----------------------------------------

/** The recipient's own key, held by the TLS endpoint below (a redirect target). */
const roamingKey = keyPairFromSeed(randomBytes(32));
const roamingFp = fingerprint(roamingKey.publicKey);
const tlsDir = join(dir, 'tls');
const cert = generateSelfSigned(tlsDir, '127.0.0.1', 1);
const reputationSeen: Identification[] = [];
let secure: Serving;

before(async () => {
  const maildir = join(dir, 'mail-tls');
  secure = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    ...cert,
    serverName: 'mx.example.net',
    maildir,
    resolveTxt,
    // Not canonical as given: serveMailbox canonicalises (the domain is case-folded).
    userKeys: new Map([['roaming@EXAMPLE.net', roamingKey]]),
    reputation: (r) => {
      reputationSeen.push(r);
      return { verdict: 'good', note: `known sender ${r.domain}` };
    },
  });
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({
      defer: ['carol@example.net'],
      redirect: { 'roaming@example.net': `roaming-laptop.example.net:4025 ${roamingFp}` },
    }),
  );
});

after(async () => {
  await secure.close();
});

/** A raw client over TLS; `binding` is this side's exporter value (§60.10.8). */
async function openTls(): Promise<{ c: Raw; binding: string; challenge: string }> {
  const s: TLSSocket = tlsConnect({
    host: '127.0.0.1',
    port: secure.port,
    ca: readFileSync(cert.certFile),
  });
  await new Promise((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  const exporter = s.exportKeyingMaterial(32, PROVE_EXPORTER_LABEL, Buffer.alloc(0));
  // "empty context (RFC 8446 §7.5)": in TLS 1.3 no context and an empty one are the same.
  const noContext = (
    s.exportKeyingMaterial as unknown as (n: number, label: string) => Buffer
  ).call(s, 32, PROVE_EXPORTER_LABEL);
  assert.deepEqual(noContext, exporter);
  assert.equal(s.getProtocol(), 'TLSv1.3');
  const c = new Raw(s);
  const greeting = (await c.line())!;
  const challenge = /challenge=(\S+)/.exec(greeting)![1]!;
  const proof = toBase64url(
    ed25519.sign(key, proofInput(challenge, 'mx.example.net', 'example.org')),
  );
  c.send(`HELLO example.org sel=s1 proof=${proof}\r\n`);
  assert.match(
    (await c.line())!,
    /^250 2\.0\.0 domain=example\.org proof=pass csv=pass eager=65536$/,
  );
  return { c, binding: toBase64url(exporter), challenge };
}

const nonce = (): string => toBase64url(randomBytes(24));

function parseProve(line: string): { key: Uint8Array; proof: Uint8Array } {
  const m = /^250 2\.7\.0 rcpt=roaming@example\.net key=(\S+) proof=(\S+)$/.exec(line);
  assert.ok(m, line);
  return { key: fromBase64url(m[1]!, 32)!, proof: fromBase64url(m[2]!, 64)! };
}

test('PROVE over TLS: the proof verifies over the input the client computes with its own exporter', async () => {
  const { c, binding, challenge } = await openTls();
  const n = nonce();
  c.send(`PROVE roaming@example.net nonce=${n}\r\n`);
  const { key: k, proof } = parseProve((await c.line())!);
  // The sender's checks (§60.10.8 step 2): the fingerprint of key= is the 351's key=, and
  // the proof verifies under key= over the input it computes itself.
  assert.equal(fingerprint(k), roamingFp);
  const input = proveInput(n, challenge, 'mx.example.net', binding, 'roaming@example.net');
  assert.ok(ed25519.verify(k, input, proof));
  // A recipient whose key this endpoint does not hold.
  c.send(`PROVE alice@example.net nonce=${nonce()}\r\n`);
  assert.equal(
    await c.line(),
    '550 5.7.1 rcpt=alice@example.net err=NMTP_ERR_TRANSPORT_PROVE_NO_KEY',
  );
  c.send('QUIT\r\n');
  assert.match((await c.line())!, /^221 /);
  await c.untilClosed();
});

test('a proof is bound to its connection: it does not verify with another connection’s exporter', async () => {
  const a = await openTls();
  const b = await openTls();
  assert.notEqual(a.binding, b.binding, 'each TLS connection has its own exporter value');
  const n = nonce();
  a.c.send(`PROVE roaming@example.net nonce=${n}\r\n`);
  const { key: k, proof } = parseProve((await a.c.line())!);
  const rcpt = 'roaming@example.net';
  assert.ok(
    ed25519.verify(k, proveInput(n, a.challenge, 'mx.example.net', a.binding, rcpt), proof),
  );
  // The relay of §60.10.8: B's sender checks A's answer against B's connection.
  assert.ok(
    !ed25519.verify(k, proveInput(n, b.challenge, 'mx.example.net', b.binding, rcpt), proof),
  );
  // Even with A's challenge, B's exporter alone breaks it; and the plaintext binding too.
  assert.ok(
    !ed25519.verify(k, proveInput(n, a.challenge, 'mx.example.net', b.binding, rcpt), proof),
  );
  assert.ok(!ed25519.verify(k, proveInput(n, a.challenge, 'mx.example.net', '', rcpt), proof));
  a.c.socket.destroy();
  b.c.socket.destroy();
});

/** DATA with the test message in one chunk; returns the answer line. */
async function sendData(c: Raw): Promise<string> {
  const digest = toBase64url(decodeMessage(message).contentDigest);
  c.send(`DATA size=${message.length} digest=${digest}\r\n`);
  assert.equal(await c.line(), '354 2.0.0 view=full');
  c.send(`CHUNK ${message.length} LAST\r\n`);
  c.send(message);
  c.send('\r\n');
  return (await c.line())!;
}

/** A copy's Received record, once every answer the server gave has its copy in new/. */
async function recordOf(id: string): Promise<{ rcpt: string; client: Stored['client'] }> {
  await secure.mailbox.settled();
  const s = readStored(join(dir, 'mail-tls', 'new', `${id}.nmtp`));
  return { rcpt: s.received.rcpt, client: s.client };
}

test('mailbox policy redirect: 351 with the fingerprint; after redirect=failed the message is stored, with the verdict', async () => {
  const before = reputationSeen.length;
  const { c } = await openTls();
  // The hook saw both results once, before HELLO was answered.
  assert.deepEqual(reputationSeen.slice(before), [
    { domain: 'example.org', ip: '127.0.0.1', proof: 'pass', csv: 'pass' },
  ]);
  c.send('RCPT roaming@example.net\r\n');
  assert.equal(
    await c.line(),
    `351 2.1.5 rcpt=roaming@example.net redirect=roaming-laptop.example.net:4025 key=${roamingFp}`,
  );
  // The redirect failed at the target; the normal path takes the recipient.
  c.send('RCPT roaming@example.net redirect=failed\r\n');
  assert.equal(await c.line(), '250 2.1.5 rcpt=roaming@example.net');
  const answer = await sendData(c);
  const id = /^250 2\.0\.0 rcpt=roaming@example\.net id=(\S+)$/.exec(answer)?.[1];
  assert.ok(id, answer);
  const record = await recordOf(id);
  assert.deepEqual(record, {
    ...record,
    rcpt: 'roaming@example.net',
    client: {
      domain: 'example.org',
      ip: '127.0.0.1',
      proof: 'pass',
      csv: 'pass',
      reputation: { verdict: 'good', note: 'known sender example.org' },
    },
  });
  c.socket.destroy();
});

test('a held message keeps the verdict in its cookie; approving it writes it into the copy’s Received field', async () => {
  const { c } = await openTls();
  c.send('RCPT carol@example.net\r\n');
  assert.equal(await c.line(), '250 2.1.5 rcpt=carol@example.net');
  const answer = await sendData(c);
  const cookie = /^350 2\.0\.0 rcpt=carol@example\.net cookie=(\S+) /.exec(answer)?.[1];
  assert.ok(cookie, answer);
  c.socket.destroy();
  const stored = await secure.mailbox.cookies.get(cookie);
  assert.deepEqual((stored?.client as Identification | undefined)?.reputation, {
    verdict: 'good',
    note: 'known sender example.org',
  });
  const approved = await secure.mailbox.decideCookie(cookie, 'approve');
  assert.equal((await recordOf(approved.id!)).client.reputation?.verdict, 'good');
});

test('mailbox redirect policy: reject wins, others accept, a malformed entry is a local failure', async () => {
  const maildir = join(dir, 'mail-policy');
  const mailbox = await Mailbox.open({ maildir });
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({
      reject: ['gone@example.net'],
      redirect: {
        'gone@example.net': `h.example:1 ${roamingFp}`,
        'v6@example.net': `[2001:db8::1]:4025 ${roamingFp}`,
        'bad@example.net': 'h.example SHA256:x',
      },
    }),
  );
  assert.equal((await mailbox.decideRecipient({ rcpt: 'gone@example.net' })).kind, 'reject');
  assert.deepEqual(await mailbox.decideRecipient({ rcpt: 'v6@example.net' }), {
    kind: 'redirect',
    host: '2001:db8::1',
    port: 4025,
    fingerprint: roamingFp,
  });
  assert.deepEqual(
    await mailbox.decideRecipient({ rcpt: 'v6@example.net', redirectFailed: true }),
    { kind: 'accept' },
  );
  assert.deepEqual(await mailbox.decideRecipient({ rcpt: 'other@example.net' }), {
    kind: 'accept',
  });
  await assert.rejects(async () => mailbox.decideRecipient({ rcpt: 'bad@example.net' }), {
    code: 'NMTP_ERR_TRANSPORT_LOCAL',
  });
});

test('mailbox policy.json: every edit is seen by the next decision (cached between edits)', async () => {
  const maildir = join(dir, 'mail-policy-edits');
  const mailbox = await Mailbox.open({ maildir });
  const policy = join(maildir, 'policy.json');
  const decide = async (rcpt: string): Promise<string> =>
    (await mailbox.decideRecipient({ rcpt })).kind;
  assert.equal(await decide('a@example.net'), 'accept');
  // The file appears after a decision made without it.
  writeFileSync(policy, JSON.stringify({ reject: ['a@example.net'] }));
  assert.equal(await decide('a@example.net'), 'reject');
  assert.equal(await decide('b@example.net'), 'accept');
  // Rewritten at once with the same size: possibly the same mtime, still seen.
  writeFileSync(policy, JSON.stringify({ reject: ['b@example.net'] }));
  assert.equal(await decide('a@example.net'), 'accept');
  assert.equal(await decide('b@example.net'), 'reject');
  rmSync(policy);
  assert.equal(await decide('b@example.net'), 'accept');
  writeFileSync(policy, '{');
  await assert.rejects(async () => mailbox.decideRecipient({ rcpt: 'b@example.net' }), {
    code: 'NMTP_ERR_TRANSPORT_LOCAL',
  });
});

test('mailbox: concurrent messages to several recipients are each stored with their record; tmp/ is left empty', async () => {
  const maildir = join(dir, 'mail-concurrent');
  const mailbox = await Mailbox.open({ maildir });
  const client: Identification = {
    domain: 'example.org',
    ip: '127.0.0.1',
    proof: 'pass',
    csv: 'none',
  };
  const { digest } = announce(message);
  const one = async (i: number): Promise<string[]> => {
    const rcpts = [`r${i}a@example.net`, `r${i}b@example.net`];
    const { sink } = await mailbox.chooseView({ domain: 'example.org', recipients: rcpts });
    await sink!.write(message);
    const answers = await mailbox.decideMessage(
      { domain: 'example.org', recipients: rcpts, view: 'full', digest },
      sink,
      client,
    );
    assert.deepEqual(
      answers.map((x) => [x.kind, x.rcpt]),
      rcpts.map((r) => ['accepted', r]),
    );
    return answers.map((x) => (x.kind === 'accepted' ? x.id : ''));
  };
  const ids = (await Promise.all(Array.from({ length: 20 }, (_, i) => one(i)))).flat();
  assert.equal(new Set(ids).size, 40);
  const stored = readdirSync(join(maildir, 'new')).sort();
  assert.deepEqual(stored, ids.map((id) => `${id}.nmtp`).sort());
  for (const id of ids) {
    const copy = readStored(join(maildir, 'new', `${id}.nmtp`));
    assert.deepEqual(copy.sent, Buffer.from(message));
    assert.match(copy.received.rcpt, /^r\d+[ab]@example\.net$/);
  }
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
  // A digest mismatch stores nothing and leaves nothing behind either.
  const { sink } = await mailbox.chooseView({
    domain: 'example.org',
    recipients: ['x@example.net'],
  });
  await sink!.write(message);
  const bad = await mailbox.decideMessage(
    {
      domain: 'example.org',
      recipients: ['x@example.net'],
      view: 'full',
      digest: 'A'.repeat(43),
    },
    sink,
    client,
  );
  assert.equal(bad[0]?.kind, 'rejected');
  assert.equal(readdirSync(join(maildir, 'new')).length, 40); // one copy per recipient
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
});

test('serveMailbox refuses a user key for a malformed address', async () => {
  await assert.rejects(
    serveMailbox({
      host: '127.0.0.1',
      port: 0,
      plaintext: true,
      serverName: 'mx.example.net',
      maildir: join(dir, 'mail-bad'),
      resolveTxt,
      userKeys: new Map([['not-an-address', roamingKey]]),
    }),
    { code: 'NMTP_ERR_ADDR_MISSING_AT' },
  );
});

test('mailbox (journal): one message to several deferred recipients is held once, linked per cookie; approving one leaves the others whole', async () => {
  const maildir = join(dir, 'mail-held-links');
  mkdirSync(maildir, { recursive: true });
  const rcpts = ['h1@example.net', 'h2@example.net', 'h3@example.net'];
  writeFileSync(join(maildir, 'policy.json'), JSON.stringify({ defer: rcpts }));
  const mailbox = await Mailbox.open({ maildir, journal: true });
  try {
    const client: Identification = {
      domain: 'example.org',
      ip: '127.0.0.1',
      proof: 'pass',
      csv: 'none',
    };
    const { digest } = announce(message);
    const { sink } = await mailbox.chooseView({ domain: 'example.org', recipients: rcpts });
    await sink!.write(message);
    const answers = await mailbox.decideMessage(
      { domain: 'example.org', recipients: rcpts, view: 'full', digest },
      sink,
      client,
    );
    const cookies = answers.map((x) => (x.kind === 'deferred' ? x.cookie : ''));
    assert.equal(new Set(cookies.filter((c) => c !== '')).size, 3);
    const held = cookies.map((c) => join(maildir, 'held', `${c}.nmtp`));
    const inodes = new Set(held.map((p) => statSync(p).ino));
    assert.equal(inodes.size, 1, 'one file, three names');
    for (const p of held) assert.deepEqual(readFileSync(p), Buffer.from(message));
    const approved = await mailbox.decideCookie(cookies[0]!, 'approve');
    assert.equal(approved.state, 'accepted');
    // The approved copy: the held message with the recipient's Received field, dated when
    // the message arrived.
    const copy = readStored(join(maildir, 'new', `${approved.id!}.nmtp`));
    assert.deepEqual(copy.sent, Buffer.from(message));
    assert.equal(copy.received.rcpt, 'h1@example.net');
    assert.equal(copy.received.at, approved.issued);
    for (const p of held.slice(1)) assert.deepEqual(readFileSync(p), Buffer.from(message));
  } finally {
    await mailbox.close();
  }
});

test('mailbox: a message whose trace block cannot take a Received field is refused 5.4.6 for every recipient, and nothing is stored', async () => {
  const maildir = join(dir, 'mail-trace-full');
  mkdirSync(maildir, { recursive: true });
  // 256 trace fields: the most a trace block may hold (§10.8), so no room for one more.
  const full = encodeMessage({
    trace: Array.from({ length: 256 }, (_, i) => ({ name: 'Trace', value: `hop ${i}` })),
    root: { fields: [{ name: 'Subject', value: 'loop' }], body: Buffer.from('hi') },
  });
  for (const journal of [true, false]) {
    const mailbox = await Mailbox.open({ maildir, journal });
    try {
      const rcpts = ['t1@example.net', 't2@example.net'];
      const { sink } = await mailbox.chooseView({ domain: 'example.org', recipients: rcpts });
      await sink!.write(full);
      const answers = await mailbox.decideMessage(
        { domain: 'example.org', recipients: rcpts, view: 'full', digest: announce(full).digest },
        sink,
        { domain: 'example.org', ip: '127.0.0.1', proof: 'pass', csv: 'pass' },
      );
      assert.deepEqual(
        answers,
        rcpts.map((rcpt) => ({
          kind: 'rejected',
          rcpt,
          enhanced: '5.4.6',
          text: 'NMTP_ERR_FRAME_TOO_MANY_FIELDS',
        })),
      );
      await mailbox.settled();
      assert.deepEqual(readdirSync(join(maildir, 'new')), []);
      assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
    } finally {
      await mailbox.close();
    }
  }
});

test('mailbox without a journal: each recipient gets its own copy, written from the received file', async () => {
  const maildir = join(dir, 'mail-no-journal');
  mkdirSync(maildir, { recursive: true });
  const mailbox = await Mailbox.open({ maildir });
  const rcpts = ['n1@example.net', 'n2@example.net'];
  const { sink } = await mailbox.chooseView({ domain: 'example.org', recipients: rcpts });
  // In pieces, as chunks arrive.
  for (let i = 0; i < message.length; i += 100) await sink!.write(message.subarray(i, i + 100));
  const answers = await mailbox.decideMessage(
    { domain: 'example.org', recipients: rcpts, view: 'full', digest: announce(message).digest },
    sink,
    { domain: 'example.org', ip: '127.0.0.1', proof: 'pass', csv: 'none' },
  );
  assert.deepEqual(
    answers.map((a) => a.kind),
    ['accepted', 'accepted'],
  );
  for (const a of answers) {
    const copy = readStored(join(maildir, 'new', `${a.kind === 'accepted' ? a.id : ''}.nmtp`));
    assert.deepEqual(copy.sent, Buffer.from(message));
    assert.equal(copy.received.rcpt, a.rcpt);
    assert.equal(copy.received.csv, 'none');
  }
  assert.deepEqual(readdirSync(join(maildir, 'tmp')), []);
});

test('mailbox: a message that goes to a file carries its first recipient’s field from the start; the other copies and the held one are written from it', async () => {
  const maildir = join(dir, 'mail-streamed');
  mkdirSync(maildir, { recursive: true });
  const client: Identification = {
    domain: 'example.org',
    ip: '127.0.0.1',
    proof: 'pass',
    csv: 'pass',
    reputation: { verdict: 'good', note: 'known; trusted' },
  };
  // Over the inline limit (a file even with the journal), with a trace block of its own.
  const big = encodeMessage({
    trace: [{ name: 'Trace', value: 'by relay.example.org' }],
    root: { fields: [{ name: 'Subject', value: 'big' }], body: randomBytes(300 * 1024) },
  });
  const cases: { journal: boolean; rcpts: string[]; defer: string[] }[] = [
    { journal: true, rcpts: ['s1@example.net'], defer: [] },
    { journal: false, rcpts: ['s1@example.net', 's2@example.net'], defer: [] },
    // The first recipient is held: the file's field is not anyone's copy.
    { journal: false, rcpts: ['s3@example.net', 's4@example.net'], defer: ['s3@example.net'] },
    { journal: true, rcpts: ['s5@example.net', 's6@example.net'], defer: ['s6@example.net'] },
  ];
  for (const c of cases) {
    writeFileSync(join(maildir, 'policy.json'), JSON.stringify({ defer: c.defer }));
    const mailbox = await Mailbox.open({ maildir, journal: c.journal });
    try {
      const { sink } = await mailbox.chooseView(
        { domain: 'example.org', recipients: c.rcpts },
        client,
      );
      // Small pieces first: the end of the trace block comes in a later one.
      for (let i = 0; i < 64; i += 7) await sink!.write(big.subarray(i, Math.min(i + 7, 64)));
      for (let i = 64; i < big.length; i += 100_000) {
        await sink!.write(big.subarray(i, i + 100_000));
      }
      // The field went into the file as it was written.
      assert.equal((sink as unknown as { streamed?: { at: number } }).streamed?.at, 37);
      const answers = await mailbox.decideMessage(
        { domain: 'example.org', recipients: c.rcpts, view: 'full', digest: announce(big).digest },
        sink,
        client,
      );
      await mailbox.settled();
      for (const a of answers) {
        if (a.kind === 'accepted') {
          const copy = readStored(join(maildir, 'new', `${a.id}.nmtp`));
          assert.ok(copy.sent.equals(Buffer.from(big)), `${a.rcpt}: the message as sent`);
          assert.equal(copy.received.rcpt, a.rcpt);
          assert.equal(copy.received.note, 'known; trusted');
          // One Received field: its own (the file's field for another recipient is gone).
          const names = decodeMessage(readFileSync(join(maildir, 'new', `${a.id}.nmtp`))).trace;
          assert.deepEqual(
            names.map((f) => f.name),
            ['Trace', 'Received'],
          );
        } else {
          assert.equal(a.kind, 'deferred', JSON.stringify(a));
          if (a.kind !== 'deferred') continue;
          // Held as sent.
          assert.ok(
            readFileSync(join(maildir, 'held', `${a.cookie}.nmtp`)).equals(Buffer.from(big)),
          );
          assert.ok(c.defer.includes(a.rcpt));
        }
      }
      assert.equal(
        answers.filter((a) => a.kind === 'accepted').length,
        c.rcpts.length - c.defer.length,
      );
      assert.deepEqual(readdirSync(join(maildir, 'tmp')), [], JSON.stringify(c));
    } finally {
      await mailbox.close();
    }
  }
});
