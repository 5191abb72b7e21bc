/**
 * The transfer host on a plaintext loopback listener (TLS is covered by the integration
 * tier): limits, timeouts, hostile input and cut-off data, with the mailbox decider and a
 * static TXT resolver (no DNS server needed here).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { proofInput } from '../../src/core/session/index.ts';
import { ed25519, toBase64url } from '../../src/core/sign/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { deliverJob, transferTo } from '../../src/client/transfer.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';

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
    assert.match((await this.line())!, /^250 2\.0\.0 domain=example\.org proof=pass csv=pass$/);
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
  const stored = readdirSync(join(dir, 'mail', 'new'));
  assert.equal(stored.filter((n) => n.endsWith('.nmtp')).length, 2);
  // Each delivery records the client identification beside the message.
  const meta = JSON.parse(
    readFileSync(
      join(
        dir,
        'mail',
        'new',
        stored.find((n) => n.endsWith('.json'))!,
      ),
      'utf8',
    ),
  ) as { client: unknown };
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
