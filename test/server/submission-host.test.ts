/**
 * The submission host on a plaintext loopback listener with an in-memory backend: AUTH
 * before anything, PLAIN and KEY logins (the host verifies the key signature), SEND with
 * streamed chunks, STATUS, SIGN returning chunks, a backend failure answered 451 and a
 * refusal on the message's merits answered with its own code (550 5.7.1 or 554 5.6.0).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { NmtpError } from '../../src/core/errors/index.ts';
import { keyPairFromSeed } from '../../src/core/keys/index.ts';
import { proofInput } from '../../src/core/session/index.ts';
import { ed25519, toBase64url } from '../../src/core/sign/index.ts';
import { listen, type Listening } from '../../src/server/listener.ts';
import type { MessageSink } from '../../src/server/transfer-host.ts';
import { runSubmissionSession, type SubmissionBackend } from '../../src/server/submission-host.ts';

class Buffered implements MessageSink {
  parts: Uint8Array[] = [];
  async write(b: Uint8Array): Promise<void> {
    this.parts.push(Uint8Array.from(b));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const alice = keyPairFromSeed(randomBytes(32));
const submitted = new Map<string, { user: string; recipients: readonly string[]; bytes: Buffer }>();
let failNext = false;
/** The next submit or sign throws this (a refusal on the message's merits, §60.11.3). */
let throwNext: unknown;
const backend: SubmissionBackend = {
  async authenticate(a) {
    if (a.user !== 'alice@example.org') return false;
    if (a.mechanism === 'PLAIN') return a.password === 'correct horse';
    return Buffer.from(a.publicKey).equals(Buffer.from(alice.publicKey));
  },
  async open() {
    return new Buffered();
  },
  async submit(a, m) {
    if (throwNext !== undefined) {
      const e = throwNext;
      throwNext = undefined;
      throw e;
    }
    if (failNext) {
      failNext = false;
      throw new Error('queue is full');
    }
    const id = `s-${submitted.size + 1}`;
    submitted.set(id, { user: a.user, recipients: a.recipients, bytes: (m as Buffered).bytes });
    return id;
  },
  async sign(_a, m) {
    if (throwNext !== undefined) {
      const e = throwNext;
      throwNext = undefined;
      throw e;
    }
    return Buffer.concat([Buffer.from('signed:'), (m as Buffered).bytes]);
  },
  async certify() {
    return 'v=1; certificate';
  },
  async status(a) {
    const s = submitted.get(a.id);
    if (s === undefined || s.user !== a.user) return undefined;
    return s.recipients.map((rcpt) => ({ rcpt, state: 'pending' as const }));
  },
};

let server: Listening;
before(async () => {
  server = await listen({ host: '127.0.0.1', port: 0, plaintext: true }, (socket, ip) =>
    runSubmissionSession(socket, ip, {
      config: { serverName: 'submit.example.org' },
      backend,
    }),
  );
});
after(() => server.close());

async function session(): Promise<{
  line: () => Promise<string>;
  send: (s: string) => void;
  socket: Socket;
  challenge: string;
}> {
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
  const greeting = await line();
  assert.match(
    greeting,
    /^220 2\.0\.0 version=NMTP\/1 service=submission server=submit\.example\.org/,
  );
  return {
    line,
    send: (s) => void socket.write(s),
    socket,
    challenge: /challenge=(\S+)/.exec(greeting)![1]!,
  };
}

const plain = (user: string, pw: string): string =>
  toBase64url(new TextEncoder().encode(`\0${user}\0${pw}`));
const msg = 'NMTP/1\r\n\r\nSubject: hi\r\nContent-Length: 6\r\n\r\nhello\n\r\n\r\n';

test('AUTH first; PLAIN; SEND in chunks; STATUS; a backend failure is 451 and not fatal', async () => {
  const s = await session();
  s.send('RCPT bob@example.net\r\n');
  assert.match(await s.line(), /^530 5\.7\.0 err=NMTP_ERR_TRANSPORT_AUTH_REQUIRED$/);
  s.send(`AUTH PLAIN ${plain('alice@example.org', 'wrong')}\r\n`);
  assert.match(await s.line(), /^535 5\.7\.8 err=NMTP_ERR_TRANSPORT_AUTH_FAILED$/);
  s.send(`AUTH PLAIN ${plain('alice@example.org', 'correct horse')}\r\n`);
  assert.equal(await s.line(), '235 2.7.0 user=alice@example.org');
  s.send('RCPT bob@example.net\r\n');
  assert.match(await s.line(), /^250 2\.1\.5 rcpt=bob@example\.net$/);
  s.send(`SEND size=${msg.length}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  s.send(
    `CHUNK 10\r\n${msg.slice(0, 10)}\r\nCHUNK ${msg.length - 10} LAST\r\n${msg.slice(10)}\r\n`,
  );
  assert.equal(await s.line(), '250 2.0.0 id=s-1');
  assert.equal(submitted.get('s-1')?.bytes.toString('latin1'), msg);
  s.send('STATUS s-1\r\n');
  assert.equal(await s.line(), '250 2.0.0 id=s-1 count=1');
  assert.equal(await s.line(), '250 2.0.0 rcpt=bob@example.net state=pending');
  failNext = true;
  s.send('RCPT bob@example.net\r\n');
  await s.line();
  s.send(`SEND size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  assert.match(await s.line(), /^451 4\.3\.0 .*NMTP_ERR_TRANSPORT_LOCAL/);
  s.send('NOOP\r\n');
  assert.match(await s.line(), /^250 /);
  s.socket.destroy();
});

test('KEY login: the host verifies the signature over the challenge; SIGN returns chunks', async () => {
  const s = await session();
  const stranger = keyPairFromSeed(randomBytes(32));
  const input = proofInput(s.challenge, 'submit.example.org', 'alice@example.org');
  // Alice's public key, but a signature by another key: refused before the backend.
  const forged = toBase64url(ed25519.sign(stranger, input));
  s.send(`AUTH KEY alice@example.org ${toBase64url(alice.publicKey)} ${forged}\r\n`);
  assert.match(await s.line(), /^535 /);
  const good = toBase64url(ed25519.sign(alice, input));
  s.send(`AUTH KEY alice@example.org ${toBase64url(alice.publicKey)} ${good}\r\n`);
  assert.equal(await s.line(), '235 2.7.0 user=alice@example.org');
  s.send(`SIGN size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  const signed = `signed:${msg}`;
  assert.equal(await s.line(), `250 2.0.0 size=${signed.length}`);
  assert.equal(await s.line(), `CHUNK ${signed.length} LAST`);
  s.send('QUIT\r\n');
  s.socket.destroy();
});

test('a permanent refusal from the backend: 550 5.7.1 for a From mismatch, 554 5.6.0 otherwise; recipients dropped', async () => {
  const s = await session();
  s.send(`AUTH PLAIN ${plain('alice@example.org', 'correct horse')}\r\n`);
  assert.equal(await s.line(), '235 2.7.0 user=alice@example.org');
  const sendOne = async (): Promise<string> => {
    s.send(`SEND size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
    assert.equal(await s.line(), '354 2.0.0 view=full');
    return s.line();
  };
  s.send('RCPT bob@example.net\r\n');
  assert.match(await s.line(), /^250 2\.1\.5 /);
  throwNext = new NmtpError('NMTP_ERR_TRANSPORT_FROM_MISMATCH', 'From is not alice');
  assert.equal(await sendOne(), '550 5.7.1 err=NMTP_ERR_TRANSPORT_FROM_MISMATCH');
  // "A refused message ends the transaction": the recipients are gone (§60.11.3).
  s.send(`SEND size=${msg.length}\r\n`);
  assert.equal(await s.line(), '503 5.5.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS');
  s.send('RCPT bob@example.net\r\n');
  assert.match(await s.line(), /^250 2\.1\.5 /);
  throwNext = new NmtpError('NMTP_ERR_FRAME_TRUNCATED', 'the message ended early');
  assert.equal(await sendOne(), '554 5.6.0 err=NMTP_ERR_FRAME_TRUNCATED');
  // SIGN is refused the same way.
  throwNext = new NmtpError('NMTP_ERR_TRANSPORT_FROM_MISMATCH', 'From is not alice');
  s.send(`SIGN size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  assert.equal(await s.line(), '550 5.7.1 err=NMTP_ERR_TRANSPORT_FROM_MISMATCH');
  s.send('NOOP\r\n');
  assert.equal(await s.line(), '250 2.0.0');
  s.socket.destroy();
});

test('after 451 (host failure) or 552 (too large) on SEND the recipients are kept', async () => {
  const s = await session();
  s.send(`AUTH PLAIN ${plain('alice@example.org', 'correct horse')}\r\n`);
  assert.equal(await s.line(), '235 2.7.0 user=alice@example.org');
  s.send('RCPT carol@example.net\r\n');
  assert.match(await s.line(), /^250 2\.1\.5 /);
  s.send('SEND size=999999999999\r\n');
  assert.match(await s.line(), /^552 5\.3\.4 .*err=NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE$/);
  // A temporary failure is not the message's fault: the same transaction may be retried.
  failNext = true;
  s.send(`SEND size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  assert.match(await s.line(), /^451 4\.3\.0 .*NMTP_ERR_TRANSPORT_LOCAL/);
  s.send(`SEND size=${msg.length}\r\nCHUNK ${msg.length} LAST\r\n${msg}\r\n`);
  assert.equal(await s.line(), '354 2.0.0 view=full');
  const id = /^250 2\.0\.0 id=(\S+)$/.exec(await s.line())?.[1];
  assert.deepEqual(submitted.get(id!)?.recipients, ['carol@example.net']);
  s.socket.destroy();
});
