/**
 * An approved preview is bound to the message that is delivered (issue 12; §60.10.4,
 * §60.10.6), end to end on the reference mailbox over a loopback socket: a preview that is
 * not the view of the announced message is never held; a DATA on the cookie that
 * announces another message, or a full message that does not reproduce the preview that
 * was approved, is refused and nothing is stored; the honest sequence is accepted, its copy
 * dated at the cookie's issue (§60.8.4).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { proofInput } from '../../src/core/session/index.ts';
import { ed25519, toBase64url } from '../../src/core/sign/index.ts';
import { announce, viewOf } from '../../src/client/source.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { readStored } from '../support/stored.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-preview-'));
const maildir = join(dir, 'mail');
const key = keyPairFromSeed(randomBytes(32));
let server: Serving;

before(async () => {
  mkdirSync(maildir, { recursive: true });
  writeFileSync(
    join(maildir, 'policy.json'),
    JSON.stringify({ preview: { 'grace@example.net': 'headers' } }),
  );
  server = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    plaintext: true,
    serverName: 'mx.example.net',
    maildir,
    resolveTxt: staticTxtResolver(
      new Map([
        [
          domainKeyName('s1', 'example.org'),
          [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
        ],
      ]),
    ),
  });
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

class Raw {
  private buf = '';
  private waiting: (() => void) | undefined;
  private closed = false;
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
  static async hello(): Promise<Raw> {
    const s = connect(server.port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    const r = new Raw(s);
    const challenge = /challenge=(\S+)/.exec((await r.line())!)![1]!;
    const proof = toBase64url(
      ed25519.sign(key, proofInput(challenge, 'mx.example.net', 'example.org')),
    );
    assert.match((await r.ask(`HELLO example.org sel=s1 proof=${proof}`))!, /^250 /);
    return r;
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
  async ask(command: string): Promise<string | undefined> {
    this.socket.write(`${command}\r\n`);
    return this.line();
  }
  async chunk(octets: Uint8Array): Promise<string | undefined> {
    this.socket.write(
      Buffer.concat([Buffer.from(`CHUNK ${octets.length} LAST\r\n`), octets, Buffer.from('\r\n')]),
    );
    return this.line();
  }
  close(): void {
    this.socket.destroy();
  }
}

const message = (subject: string): Uint8Array =>
  encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'Subject', value: subject }],
      body: new TextEncoder().encode('the body\n'),
    },
  });
const dataLine = (m: Uint8Array, cookie?: string): string => {
  const a = announce(m);
  return `DATA size=${a.size} digest=${a.digest}${cookie === undefined ? '' : ` cookie=${cookie}`}`;
};
const held = (): string[] => readdirSync(join(maildir, 'held')).filter((n) => n.endsWith('.nmtp'));
const stored = (): string[] => readdirSync(join(maildir, 'new')).filter((n) => n.endsWith('.nmtp'));

/** Holds `preview` as grace's headers view of `m`; returns the cookie. */
async function holdPreview(c: Raw, m: Uint8Array, preview: Uint8Array): Promise<string> {
  assert.match((await c.ask('RCPT grace@example.net'))!, /^250 /);
  assert.equal(await c.ask(dataLine(m)), '354 2.0.0 view=headers');
  const answer = (await c.chunk(preview))!;
  assert.match(answer, /^350 2\.0\.0 rcpt=grace@example\.net cookie=\S+ /);
  return /cookie=(\S+)/.exec(answer)![1]!;
}

test('a malformed headers view is refused with a code and never held', async () => {
  const c = await Raw.hello();
  const m = message('malformed');
  const before = held().length;
  assert.match((await c.ask('RCPT grace@example.net'))!, /^250 /);
  assert.equal(await c.ask(dataLine(m)), '354 2.0.0 view=headers');
  const h = viewOf(m, 'headers');
  // Without the empty line that ends the root header block.
  const answer = await c.chunk(h.subarray(0, h.length - 2));
  assert.match(answer!, /^554 5\.6\.0 view=headers err=NMTP_ERR_TRANSPORT_VIEW_INVALID # /);
  assert.equal(held().length, before);
  // The session goes on.
  assert.equal(await c.ask('NOOP'), '250 2.0.0');
  c.close();
});

test('an approved preview of one message cannot deliver another', async () => {
  const c = await Raw.hello();
  const real = message('pay invoice 1234 to account X');
  const shown = message('lunch on friday?');
  const cookie = await holdPreview(c, real, viewOf(shown, 'headers'));
  await server.mailbox.decideCookie(cookie, 'approve');
  assert.match((await c.ask(`STATUS ${cookie}`))!, /^352 2\.0\.0 .*view=full$/);
  const before = stored().length;

  // Another message announced on the cookie: refused at the DATA line.
  assert.equal(
    await c.ask(dataLine(shown, cookie)),
    `554 5.6.0 cookie=${cookie} err=NMTP_ERR_TRANSPORT_COOKIE_MISMATCH`,
  );
  // The announced message, whose headers are not the ones shown: refused after the data.
  assert.equal(await c.ask(dataLine(real, cookie)), '354 2.0.0 view=full');
  assert.match(
    (await c.chunk(real))!,
    new RegExp(`^554 5\\.6\\.0 cookie=${cookie} view=full err=NMTP_ERR_TRANSPORT_VIEW_INVALID # `),
  );
  await server.mailbox.settled();
  assert.equal(stored().length, before);
  // What the person approved still stands, and is still the only thing that can arrive.
  assert.match((await c.ask(`STATUS ${cookie}`))!, /^352 /);
  c.close();
});

test('the honest sequence is accepted; its copy is dated at the cookie issue (§60.8.4)', async () => {
  const c = await Raw.hello();
  const m = message('the real one');
  const cookie = await holdPreview(c, m, viewOf(m, 'headers'));
  // The cookie was issued an hour ago (a person took that long to approve).
  const issued = (await server.mailbox.cookies.get(cookie))!.issued - 3600;
  await server.mailbox.cookies.put({ ...(await server.mailbox.cookies.get(cookie))!, issued });
  await server.mailbox.decideCookie(cookie, 'approve');
  assert.match((await c.ask(`STATUS ${cookie}`))!, /^352 /);
  assert.equal(await c.ask(dataLine(m, cookie)), '354 2.0.0 view=full');
  const answer = (await c.chunk(m))!;
  assert.match(answer, new RegExp(`^250 2\\.0\\.0 cookie=${cookie} rcpt=grace@example\\.net id=`));
  await server.mailbox.settled();
  const id = /id=(\S+)/.exec(answer)![1]!;
  const copy = readStored(join(maildir, 'new', `${id}.nmtp`));
  assert.deepEqual(copy.sent, Buffer.from(m));
  assert.equal(copy.received.at, issued);
  c.close();
});
