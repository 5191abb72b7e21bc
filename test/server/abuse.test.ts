/**
 * The bad-input list against the real server (serveMailbox) over real TLS on
 * loopback: connection floods, slowloris (lines, chunks, handshakes), TLS downgrade and
 * non-TLS clients, framing and session abuse. Each gets a coded reply (or, before TLS, a
 * closed connection), bounded cost, and the server keeps serving; every connection is
 * released afterwards (the listener's counts return to zero) and no temp file is left.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { encodeChunk } from '../../src/core/wire/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { proofInput } from '../../src/core/session/index.ts';
import { ed25519, toBase64url } from '../../src/core/sign/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { announce } from '../../src/client/source.ts';
import { deliverJob, transferTo } from '../../src/client/transfer.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { listen } from '../../src/server/listener.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-abuse-'));
const { certFile, keyFile } = generateSelfSigned(join(dir, 'certs'), '127.0.0.1');
const ca = readFileSync(certFile);
const key = keyPairFromSeed(randomBytes(32));
const otherKey = keyPairFromSeed(randomBytes(32));
const resolveTxt = staticTxtResolver(
  new Map([
    [
      domainKeyName('s1', 'example.org'),
      [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
    ],
    [
      domainKeyName('s1', 'example.com'),
      [printDomainKeyRecord({ publicKey: otherKey.publicKey, flags: '' })],
    ],
    ['_nmtpclient.example.org', ['v=NMTPCSV1; ip=127.0.0.0/8']],
    ['_nmtpclient.example.com', ['v=NMTPCSV1; ip=127.0.0.0/8']],
  ]),
);
const SERVER = 'mx.example.net';
const digest0 = toBase64url(new Uint8Array(32));
const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'Subject', value: 'x' }], body: new Uint8Array(100) },
});

/** Default limits (20 per address, 1000 in total, 10 s handshakes), normal timeouts. */
let main: Serving;
/** Every state timeout divided by 100 (the 60 s HELLO wait is 600 ms); 300 ms handshakes. */
let slow: Serving;
/** A small total limit: 30 sessions, any number per address. */
let capped: Serving;

const serve = (name: string, extra: Partial<Parameters<typeof serveMailbox>[0]>) =>
  serveMailbox({
    host: '127.0.0.1',
    port: 0,
    certFile,
    keyFile,
    serverName: SERVER,
    maildir: join(dir, name),
    resolveTxt,
    ...extra,
  });

before(async () => {
  main = await serve('main', {});
  // example.net's "held@" recipient is deferred: it gets a cookie (for the STATUS tests).
  writeFileSync(join(dir, 'main', 'policy.json'), JSON.stringify({ defer: ['held@example.net'] }));
  slow = await serve('slow', { timeoutScale: 0.01, handshakeTimeoutMs: 300 });
  capped = await serve('capped', { maxConnections: 30, maxPerIp: 1000 });
});

after(async () => {
  await main.close();
  await slow.close();
  await capped.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A TLS client connecting from `localAddress` (any 127.x address is this machine). */
function tlsFrom(port: number, localAddress = '127.0.0.1', maxVersion?: 'TLSv1.2'): TLSSocket {
  const tcp = tcpConnect({ host: '127.0.0.1', port, localAddress });
  return tlsConnect({
    socket: tcp,
    host: '127.0.0.1',
    ca,
    ...(maxVersion === undefined ? {} : { maxVersion }),
  });
}

/** A line-reading client over any socket; records every octet it gets. */
class Peer {
  private buf = '';
  private waiting: (() => void) | undefined;
  received = 0;
  closed = false;
  error: (Error & { code?: string }) | undefined;
  constructor(readonly socket: Socket | TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.received += d.length;
      this.buf += d.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', (e) => {
      this.error ??= e;
    });
  }
  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }
  /** A TLS 1.3 client that trusts the test certificate; resolves once the handshake ends. */
  static async tls(port: number, localAddress = '127.0.0.1'): Promise<Peer> {
    const s = tlsFrom(port, localAddress);
    const p = new Peer(s);
    await new Promise<void>((resolve) => {
      s.once('secureConnect', () => resolve());
      s.once('close', () => resolve());
    });
    return p;
  }
  /** A plain TCP client (what a non-TLS or hostile client looks like). */
  static async tcp(port: number, localAddress = '127.0.0.1'): Promise<Peer> {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress });
    const p = new Peer(s);
    await new Promise<void>((resolve) => {
      s.once('connect', () => resolve());
      s.once('close', () => resolve());
    });
    return p;
  }
  /** Everything received so far, as latin1 text. */
  get text(): string {
    return this.buf;
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
    if (!this.socket.destroyed) this.socket.write(s);
  }
  async untilClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => (this.waiting = resolve));
  }
  /** The remaining lines, until the server closes. */
  async rest(): Promise<string[]> {
    const out: string[] = [];
    for (let l = await this.line(); l !== undefined; l = await this.line()) out.push(l);
    return out;
  }
  /** Reads the greeting; returns its challenge. */
  async greeting(): Promise<string> {
    const greeting = (await this.line())!;
    assert.match(greeting, /^220 2\.0\.0 version=NMTP\/1 service=transfer /);
    return /challenge=(\S+)/.exec(greeting)![1]!;
  }
  /** Says HELLO with a valid proof for `challenge`. */
  async identify(challenge: string, domain = 'example.org', k = key): Promise<void> {
    this.send(`HELLO ${domain} sel=s1 proof=${proofFor(challenge, domain, k)}\r\n`);
    assert.match((await this.line())!, /^250 2\.0\.0 domain=\S+ proof=pass csv=pass eager=65536$/);
  }
  /** Reads the greeting and says HELLO with a valid proof. */
  async hello(domain = 'example.org', k = key): Promise<void> {
    await this.identify(await this.greeting(), domain, k);
  }
  /** HELLO, one recipient, DATA: the server now waits for chunks. */
  async toData(): Promise<void> {
    await this.hello();
    this.send('RCPT a@example.net\r\n');
    assert.match((await this.line())!, /^250 2\.1\.5 /);
    this.send(`DATA size=${message.length} digest=${digest0}\r\n`);
    assert.match((await this.line())!, /^354 2\.0\.0 view=full$/);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

function proofFor(challenge: string, domain = 'example.org', k = key): string {
  return toBase64url(ed25519.sign(k, proofInput(challenge, SERVER, domain)));
}

/** The server released everything: no connection open, no session, no temp file. */
async function released(s: Serving, maildir?: string): Promise<void> {
  const idle = (): boolean => {
    const c = s.connections();
    return c.open === 0 && c.sessions === 0 && c.perIp.size === 0;
  };
  const tmpEmpty = (): boolean =>
    maildir === undefined || readdirSync(join(dir, maildir, 'tmp')).length === 0;
  // Closing is asynchronous on both sides (and the discard of a cut-off message follows
  // the close): poll until settled; the test's own timeout bounds the wait.
  while (!idle() || !tmpEmpty()) await sleep(20);
  assert.deepEqual(s.connections(), { open: 0, sessions: 0, perIp: new Map() });
}

/** A legitimate delivery through the client module: the server is still serving. */
async function legitimateDelivery(s: Serving): Promise<void> {
  const r = await transferTo(
    { host: '127.0.0.1', port: s.port },
    { domain: 'example.org', selector: 's1', key },
    deliverJob(['legit@example.net'], message),
    message,
    { ca },
  );
  assert.equal(r.failure, undefined);
  assert.deepEqual(
    r.recipients.map((x) => [x.rcpt, x.reply.code]),
    [['legit@example.net', 250]],
  );
}

/** Heap after a full collection (gc exposed at run time), and RSS. */
function memory(): { heap: number; rss: number } {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

// --- connection floods -------------------------------------------------------------------

test(
  '1,000 TLS connections from one address: 20 sessions, the rest 421 or closed at accept; others still served; all released',
  { timeout: 120_000 },
  async (t) => {
    const before = memory();
    // 127.0.0.2 is the flooding client; the legitimate one below connects from 127.0.0.1.
    const peers: Peer[] = [];
    for (let i = 0; i < 1000; i++) {
      peers.push(new Peer(tlsFrom(main.port, '127.0.0.2')));
    }
    // Each connection ends up with a greeting (a session), one 421 line (refused after the
    // handshake), or nothing at all (closed at accept, before any TLS work).
    const first = await Promise.all(peers.map((p) => p.line()));
    const greeted = first.filter((l) => l?.startsWith('220 ') === true).length;
    const refused = first.filter(
      (l) => l === '421 4.7.0 err=NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS',
    ).length;
    const dropped = first.filter((l) => l === undefined).length;
    assert.equal(greeted, 20);
    assert.ok(refused >= 1, `refused ${refused}`);
    assert.equal(greeted + refused + dropped, 1000, JSON.stringify(first.slice(0, 50)));
    const c = main.connections();
    assert.equal(c.sessions, 20);
    assert.ok((c.perIp.get('127.0.0.2') ?? 0) <= 40, `open ${c.perIp.get('127.0.0.2')}`);

    // A legitimate session completes while the flood's sessions are open.
    await legitimateDelivery(main);
    const during = memory();
    t.diagnostic(
      `growth with 1,000 connections (both ends in this process): heap ${mib(during.heap - before.heap)}, RSS ${mib(during.rss - before.rss)}`,
    );
    // Generous: the 1,000 client sockets live in this process too.
    assert.ok(during.heap - before.heap < 64 * MiB, `heap +${during.heap - before.heap}`);
    assert.ok(during.rss - before.rss < 256 * MiB, `rss +${during.rss - before.rss}`);

    for (const p of peers) p.destroy();
    await released(main, 'main');
  },
);

test(
  '1,000 TCP connections that never start TLS: at most twice the per-address limit held, the rest closed at accept',
  { timeout: 120_000 },
  async () => {
    const peers = await Promise.all(
      Array.from({ length: 1000 }, () => Peer.tcp(main.port, '127.0.0.3')),
    );
    // The server closes what it does not admit; what stays open is in the handshake.
    while (peers.filter((p) => !p.closed).length > 40) await sleep(20);
    const held = main.connections().perIp.get('127.0.0.3') ?? 0;
    assert.ok(held <= 40, `held ${held}`);
    assert.equal(main.connections().sessions, 0);
    for (const p of peers) assert.equal(p.received, 0);
    await legitimateDelivery(main);
    for (const p of peers) p.destroy();
    await released(main, 'main');
  },
);

test(
  'the total limit: 30 sessions, the rest refused with 421 or closed; released after',
  { timeout: 60_000 },
  async () => {
    const peers: Peer[] = [];
    for (let i = 0; i < 100; i++) {
      peers.push(new Peer(tlsConnect({ host: '127.0.0.1', port: capped.port, ca })));
    }
    const first = await Promise.all(peers.map((p) => p.line()));
    assert.equal(first.filter((l) => l?.startsWith('220 ') === true).length, 30);
    for (const l of first) {
      if (l === undefined || l.startsWith('220 ')) continue;
      assert.equal(l, '421 4.7.0 err=NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS');
    }
    // A refused connection is closed by the server once its line is written.
    for (const [i, p] of peers.entries()) if (!first[i]!.startsWith('220 ')) await p.untilClosed();
    assert.equal(capped.connections().sessions, 30);
    for (const p of peers) p.destroy();
    await released(capped);
  },
);

// --- slowloris -------------------------------------------------------------------------

/** Sends `bytes` one octet per `everyMs` until the peer closes; returns how many went out. */
async function trickle(p: Peer, bytes: Uint8Array | string, everyMs: number): Promise<number> {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  let sent = 0;
  for (; sent < b.length && !p.closed; sent++) {
    p.send(b.subarray(sent, sent + 1));
    await sleep(everyMs);
  }
  return sent;
}

test(
  'one octet per 100 ms of a never-ending line: 421 4.4.2 timeout in the 600 ms HELLO state',
  { timeout: 60_000 },
  async () => {
    const p = await Peer.tls(slow.port);
    await p.line();
    // 500 octets at 100 ms would last 50 s; the HELLO timeout is 600 ms.
    const line = 'HELLO ' + 'a'.repeat(494);
    const sending = trickle(p, line, 100);
    assert.deepEqual(await p.rest(), ['421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT']);
    assert.ok((await sending) < line.length);
    await released(slow, 'slow');
  },
);

test(
  'one octet per 100 ms of a chunk body: 421 4.4.2 timeout; the upload is discarded',
  { timeout: 60_000 },
  async () => {
    const p = await Peer.tls(slow.port);
    await p.toData();
    p.send(`CHUNK ${message.length} LAST\r\n`);
    // The data state's 120 s are 1.2 s here; the body would take far longer.
    const sending = trickle(p, message, 100);
    assert.deepEqual(await p.rest(), ['421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT']);
    assert.ok((await sending) < message.length);
    await released(slow, 'slow');
  },
);

test(
  'complete chunks that keep coming, each within the data timeout: no timeout, the message is accepted',
  { timeout: 60_000 },
  async () => {
    // "The timer restarts on every complete command, complete chunk or host answer" (§60.9):
    // the data state's 120 s are 1.2 s here; five chunks 400 ms apart take about 2 s in all,
    // longer than one timeout, but no gap between complete chunks is.
    const p = await Peer.tls(slow.port);
    await p.hello();
    p.send('RCPT a@example.net\r\n');
    assert.match((await p.line())!, /^250 2\.1\.5 /);
    // The real content digest: a full view is checked against it (§60.10.4).
    p.send(`DATA size=${message.length} digest=${announce(message).digest}\r\n`);
    assert.match((await p.line())!, /^354 2\.0\.0 view=full$/);
    const pieces = 5;
    const step = Math.ceil(message.length / pieces);
    for (let i = 0; i < pieces; i++) {
      await sleep(400);
      const piece = message.subarray(i * step, Math.min(message.length, (i + 1) * step));
      p.send(encodeChunk(piece, i === pieces - 1));
    }
    assert.match((await p.line())!, /^250 2\.0\.0 rcpt=a@example\.net id=\S+$/);
    p.send('QUIT\r\n');
    assert.match((await p.line())!, /^221 /);
    await p.untilClosed();
    await released(slow, 'slow');
  },
);

test(
  'a client that stops mid-chunk (and keeps the connection): 421 4.4.2; the upload is discarded',
  { timeout: 60_000 },
  async () => {
    const p = await Peer.tls(slow.port);
    await p.toData();
    p.send(`CHUNK ${message.length} LAST\r\n`);
    p.send(message.subarray(0, 10));
    assert.deepEqual(await p.rest(), ['421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT']);
    await released(slow, 'slow');
  },
);

test(
  'a client that closes mid-chunk: the upload is discarded, the connection released',
  { timeout: 60_000 },
  async () => {
    const p = await Peer.tls(main.port);
    await p.toData();
    p.send(`CHUNK ${message.length} LAST\r\n`);
    p.send(message.subarray(0, 10));
    p.socket.end();
    await p.untilClosed();
    await released(main, 'main');
  },
);

test('a TLS handshake that never starts is dropped at the handshake deadline', async () => {
  const p = await Peer.tcp(slow.port);
  await p.untilClosed();
  assert.equal(p.received, 0);
  await released(slow);
});

test(
  'a ClientHello trickled one octet per 50 ms is dropped at the handshake deadline',
  { timeout: 60_000 },
  async () => {
    const p = await Peer.tcp(slow.port);
    // A TLS handshake record header announcing 512 octets, then its body, slowly.
    p.send(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00));
    const sent = await trickle(p, new Uint8Array(512).fill(1), 50);
    assert.ok(sent < 512);
    assert.equal(p.text.includes('220'), false);
    await released(slow);
  },
);

/** A real TLS 1.3 ClientHello, as a client sends it first (captured on a plain server). */
async function captureClientHello(): Promise<Buffer> {
  const capture = createTcpServer();
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  const { port } = capture.address() as { port: number };
  const hello = new Promise<Buffer>((resolve) =>
    capture.once('connection', (s: Socket) =>
      s.once('data', (d: Buffer) => (resolve(d), s.destroy())),
    ),
  );
  const c = tlsConnect({ host: '127.0.0.1', port, ca });
  c.on('error', () => undefined);
  const bytes = await hello;
  c.destroy();
  await new Promise<void>((resolve) => capture.close(() => resolve()));
  return bytes;
}

test('a complete ClientHello, then silence: dropped at the handshake deadline', async () => {
  const hello = await captureClientHello();
  assert.equal(hello[0], 0x16); // a TLS handshake record
  const p = await Peer.tcp(slow.port);
  p.send(hello);
  await p.untilClosed();
  // The server answered the hello (its flight of the handshake), then gave up.
  assert.ok(p.received > 0);
  assert.equal(p.text.includes('220 '), false);
  await released(slow);
});

// --- TLS downgrade and non-TLS clients --------------------------------------------------

test('a client limited to TLS 1.2 is refused at the handshake', async () => {
  const s = tlsConnect({ host: '127.0.0.1', port: main.port, ca, maxVersion: 'TLSv1.2' });
  const p = new Peer(s);
  await p.untilClosed();
  assert.equal(p.error?.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  assert.equal(p.received, 0);
  await released(main);
});

const SSLV2_CLIENT_HELLO = (() => {
  // SSL 2.0 CLIENT-HELLO (two-octet record header with the high bit set): version 0x0002,
  // one cipher spec (SSL_CK_RC4_128_WITH_MD5), no session id, a 16-octet challenge.
  const body = [0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x10, 0x01, 0x00, 0x80];
  const challenge = Array.from({ length: 16 }, (_, i) => i);
  const msg = [...body, ...challenge];
  return Uint8Array.from([0x80 | (msg.length >> 8), msg.length & 0xff, ...msg]);
})();

for (const [name, input] of [
  ['SMTP EHLO', 'EHLO client.example\r\n'],
  ['SMTP STARTTLS', 'STARTTLS\r\n'],
  ['NMTP in plaintext', `HELLO example.org sel=s1 proof=${digest0}\r\nQUIT\r\n`],
  ['an SSLv2 ClientHello', SSLV2_CLIENT_HELLO],
  ['4 KiB of random octets', randomBytes(4096)],
] as const) {
  test(`${name} on the TLS port: no greeting, connection closed, server unharmed`, async () => {
    const p = await Peer.tcp(main.port);
    p.send(input);
    await p.untilClosed();
    // At most a TLS alert comes back; never an NMTP line.
    assert.equal(/\d{3} \d\.\d+\.\d+/.test(p.text), false, JSON.stringify(p.text));
    await legitimateDelivery(main);
    await released(main);
  });
}

test('no plaintext listener beyond loopback; no TLS listener without a certificate', async () => {
  for (const host of ['0.0.0.0', '::', '192.0.2.1', '::ffff:127.0.0.1', '']) {
    await assert.rejects(
      listen({ host, port: 0, plaintext: true }, async () => undefined),
      (e: Error & { code?: string }) => e.code === 'NMTP_ERR_TRANSPORT_LOCAL',
      host,
    );
  }
  await assert.rejects(
    listen({ host: '127.0.0.1', port: 0 }, async () => undefined),
    (e: Error & { code?: string }) => e.code === 'NMTP_ERR_TRANSPORT_LOCAL',
  );
});

// --- framing and session abuse over TLS ---------------------------------------------------

test('an overlong line: 500 LINE_TOO_LONG at offset 0, close; others still served', async () => {
  const p = await Peer.tls(main.port);
  await p.line();
  p.send('A'.repeat(3000));
  assert.deepEqual(await p.rest(), ['500 5.5.0 offset=0 err=NMTP_ERR_WIRE_LINE_TOO_LONG']);
  await legitimateDelivery(main);
  await released(main, 'main');
});

test('a chunk that lies about its length: framing error, close, upload discarded', async () => {
  const p = await Peer.tls(main.port);
  await p.toData();
  p.send('CHUNK 3 LAST\r\nabcdef\r\n');
  const rest = await p.rest();
  assert.equal(rest.length, 1);
  assert.match(rest[0]!, /^500 5\.5\.0 offset=\d+ err=NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH$/);
  await legitimateDelivery(main);
  await released(main, 'main');
});

test('a chunk declaring more than 1 MiB: refused at the header, close, upload discarded', async () => {
  const p = await Peer.tls(main.port);
  await p.toData();
  p.send('CHUNK 1048577 LAST\r\n');
  const rest = await p.rest();
  assert.equal(rest.length, 1);
  assert.match(rest[0]!, /^500 5\.5\.0 offset=\d+ err=NMTP_ERR_WIRE_CHUNK_TOO_LARGE$/);
  await released(main, 'main');
});

test('data before recipients, unknown and out-of-order commands: coded replies; the tenth refusal closes', async () => {
  const p = await Peer.tls(main.port);
  const challenge = await p.greeting();
  p.send('RCPT a@example.net\r\n');
  assert.equal(await p.line(), '503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER');
  await p.identify(challenge);
  p.send(`DATA size=10 digest=${digest0}\r\n`);
  assert.equal(await p.line(), '503 5.5.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS');
  p.send('FROB\r\n');
  assert.match((await p.line())!, /^500 5\.5\.1 offset=\d+ err=NMTP_ERR_WIRE_UNKNOWN_COMMAND$/);
  p.send('CHUNK 2\r\nxx\r\n');
  assert.match((await p.line())!, /^503 5\.5\.1 offset=\d+ err=NMTP_ERR_WIRE_UNEXPECTED_CHUNK$/);
  p.send('AUTH PLAIN eA\r\n');
  assert.equal(await p.line(), '502 5.5.1 err=NMTP_ERR_TRANSPORT_WRONG_SERVICE');
  // Five refused so far; five more close the session.
  for (let i = 0; i < 4; i++) {
    p.send('HELLO example.org sel=s1 proof=x\r\n');
    assert.match((await p.line())!, /^503 5\.5\.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER/);
  }
  p.send('NOPE\r\n');
  const rest = await p.rest();
  assert.equal(rest.length, 2);
  assert.match(rest[0]!, /err=NMTP_ERR_WIRE_UNKNOWN_COMMAND$/);
  assert.match(rest[1]!, /^421 4\.7\.0 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER/);
  await released(main, 'main');
});

test('a wrong-key proof and a replayed proof are refused with 535 and closed', async () => {
  const wrong = await Peer.tls(main.port);
  const challenge = /challenge=(\S+)/.exec((await wrong.line())!)![1]!;
  wrong.send(`HELLO example.org sel=s1 proof=${proofFor(challenge, 'example.org', otherKey)}\r\n`);
  assert.deepEqual(await wrong.rest(), [
    '535 5.7.8 domain=example.org err=NMTP_ERR_TRANSPORT_PROOF_INVALID',
  ]);
  // A valid proof, recorded on one connection, replayed on another (another challenge).
  const first = await Peer.tls(main.port);
  const recorded = proofFor(/challenge=(\S+)/.exec((await first.line())!)![1]!);
  const replay = await Peer.tls(main.port);
  await replay.line();
  replay.send(`HELLO example.org sel=s1 proof=${recorded}\r\n`);
  assert.deepEqual(await replay.rest(), [
    '535 5.7.8 domain=example.org err=NMTP_ERR_TRANSPORT_PROOF_INVALID',
  ]);
  first.destroy();
  await released(main);
});

test('STATUS for an unknown cookie and for another domain’s cookie: 550 COOKIE_UNKNOWN', async () => {
  // example.org gets a cookie for a deferred recipient.
  const r = await transferTo(
    { host: '127.0.0.1', port: main.port },
    { domain: 'example.org', selector: 's1', key },
    deliverJob(['held@example.net'], message),
    message,
    { ca },
  );
  const cookie = r.recipients[0]?.reply.params['cookie'];
  assert.ok(cookie !== undefined, JSON.stringify(r.recipients));
  const p = await Peer.tls(main.port);
  await p.hello('example.com', otherKey);
  p.send(`STATUS ${cookie}\r\n`);
  assert.equal(await p.line(), `550 5.5.4 cookie=${cookie} err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN`);
  p.send('STATUS never-issued\r\n');
  assert.equal(
    await p.line(),
    '550 5.5.4 cookie=never-issued err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN',
  );
  p.send('QUIT\r\n');
  assert.match((await p.line())!, /^221 /);
  await p.untilClosed();
  await released(main, 'main');
});

test(
  'a megabyte of pipelined junk lines in one write: ten replies, 421, close; bounded memory',
  { timeout: 60_000 },
  async (t) => {
    const before = memory();
    const p = await Peer.tls(main.port);
    await p.line();
    const junk = 'FROB\r\n'.repeat(200_000);
    p.send(junk);
    const rest = await p.rest();
    assert.equal(rest.length, 11);
    assert.match(rest[10]!, /^421 4\.7\.0 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER/);
    const after = memory();
    t.diagnostic(`heap growth: ${mib(after.heap - before.heap)}`);
    assert.ok(after.heap - before.heap < 16 * MiB, `heap +${after.heap - before.heap}`);
    await released(main);
  },
);

test(
  'a client that keeps writing after the 421 and never reads nor closes is still released',
  { timeout: 60_000 },
  async () => {
    // Not reading, this client never sees the server's end, so it never closes its side.
    const s = tlsFrom(slow.port);
    s.pause();
    s.on('error', () => undefined);
    await new Promise((resolve) => s.once('secureConnect', resolve));
    s.write('FROB\r\n'.repeat(10));
    let stop = false;
    const writing = (async () => {
      while (!stop && !s.destroyed) {
        s.write(randomBytes(16 * 1024));
        await sleep(5);
      }
    })();
    // Ten refused commands close the session; the linger (5 s, here 50 ms) ends the rest.
    await released(slow);
    stop = true;
    await writing;
    s.destroy();
  },
);
