/**
 * The submission client host over real TLS on loopback, against the reference submission
 * host (runSubmissionSession) with an in-memory backend: password and key logins, messages
 * larger than one chunk from memory and from a file, SIGN and CERTIFY payloads, STATUS,
 * the payload limit, timeouts and local failures. Then the `nmtp submit` and
 * `nmtp submission …` commands, spawned as a person runs them, against the same server.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NmtpError } from '../../src/core/errors/index.ts';
import {
  issueCertificate,
  keyPairFromSeed,
  parseCertificate,
  publicKeyToPem,
  seedToPem,
} from '../../src/core/keys/index.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { listen, type Listening } from '../../src/server/listener.ts';
import { runSubmissionSession, type SubmissionBackend } from '../../src/server/submission-host.ts';
import type { MessageSink } from '../../src/server/transfer-host.ts';
import {
  SubmissionClient,
  resultError,
  withSubmission,
  type SubmissionOptions,
} from '../../src/client/submission.ts';

const dir = mkdtempSync(join(tmpdir(), 'nmtp-submission-'));
const cert = generateSelfSigned(join(dir, 'tls'), '127.0.0.1', 1);
const ca = readFileSync(cert.certFile);

class Buffered implements MessageSink {
  parts: Uint8Array[] = [];
  async write(b: Uint8Array): Promise<void> {
    this.parts.push(Uint8Array.from(b));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const aliceSeed = randomBytes(32);
const alice = keyPairFromSeed(aliceSeed);
const domainKey = keyPairFromSeed(randomBytes(32));
const submitted = new Map<string, { user: string; recipients: readonly string[]; bytes: Buffer }>();
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
    const id = `s-${submitted.size + 1}`;
    submitted.set(id, { user: a.user, recipients: a.recipients, bytes: (m as Buffered).bytes });
    return id;
  },
  async sign(_a, m) {
    return Buffer.concat([Buffer.from('signed:'), (m as Buffered).bytes]);
  },
  async certify(a) {
    const now = 1795000000;
    return issueCertificate(
      {
        domain: 'example.org',
        selector: 's2026',
        id: '0123456789abcdef0123456789abcdef',
        user: a.user,
        userKey: a.publicKey,
        notBefore: now,
        notAfter: now + (a.days ?? 30) * 86400,
      },
      domainKey,
    );
  },
  async status(a) {
    const s = submitted.get(a.id);
    if (s === undefined || s.user !== a.user) return undefined;
    return s.recipients.map((rcpt) => ({
      rcpt,
      state: rcpt.startsWith('carol@') ? ('deferred' as const) : ('pending' as const),
    }));
  },
};

let server: Listening;
/** The same service without TLS, on loopback (`--plaintext`, tests only, §60.2). */
let plainServer: Listening;
let silent: Server;
before(async () => {
  server = await listen({ host: '127.0.0.1', port: 0, ...cert }, (socket, ip) =>
    runSubmissionSession(socket, ip, { config: { serverName: 'submit.example.org' }, backend }),
  );
  plainServer = await listen({ host: '127.0.0.1', port: 0, plaintext: true }, (socket, ip) =>
    runSubmissionSession(socket, ip, { config: { serverName: 'submit.example.org' }, backend }),
  );
  // A server that accepts and never says anything (the client's greeting timeout).
  silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
});
after(async () => {
  await server.close();
  await plainServer.close();
  await new Promise((resolve) => silent.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const endpoint = (): { host: string; port: number } => ({ host: '127.0.0.1', port: server.port });
const tls: SubmissionOptions = { ca };
const password = { user: 'alice@example.org', password: 'correct horse' };

/** A framed-looking message of `n` octets with a recognisable pattern. */
function message(n: number): Uint8Array {
  const head = Buffer.from('NMTP/1\r\n\r\nSubject: big\r\n\r\n');
  const out = Buffer.alloc(n);
  head.copy(out);
  for (let i = head.length; i < n; i++) out[i] = 0x41 + (i % 26);
  return new Uint8Array(out);
}

test('PLAIN login over TLS; a 2.5 MiB message from memory in chunks; STATUS per recipient', async () => {
  const msg = message(2.5 * 1024 * 1024);
  const c = await SubmissionClient.connect(endpoint(), tls);
  const auth = await c.login(password);
  assert.equal(auth.ok, true);
  assert.equal(auth.user, 'alice@example.org');
  const sent = await c.send(['bob@example.net', 'Carol@EXAMPLE.net'], msg);
  assert.equal(sent.ok, true, JSON.stringify(sent));
  const stored = submitted.get(sent.id!)!;
  assert.ok(stored.bytes.equals(Buffer.from(msg)));
  // The recipients go as canonical wire addresses (the domain case-folded).
  assert.deepEqual(stored.recipients, ['bob@example.net', 'Carol@example.net']);
  const status = await c.status(sent.id!);
  assert.equal(status.ok, true);
  assert.deepEqual(status.recipients, [
    { rcpt: 'bob@example.net', state: 'pending' },
    { rcpt: 'Carol@example.net', state: 'pending' },
  ]);
  const unknown = await c.status('s-999');
  assert.equal(unknown.ok, false);
  assert.equal(resultError(unknown)?.code, 'NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN');
  await c.quit();
});

test('a message streamed from a file; several jobs without waiting keep their order', async () => {
  const path = join(dir, 'message.nmtp');
  const msg = message(3 * 1024 * 1024 + 17);
  writeFileSync(path, msg);
  const c = await SubmissionClient.connect(endpoint(), tls);
  // Queued at once: the file's size is read before its SEND, the jobs run in call order.
  const [auth, sent, noop, missing, again] = await Promise.all([
    c.login(password),
    c.send(['dave@example.net'], { path }),
    c.command({ verb: 'NOOP', args: [], params: {} }),
    c.send(['dave@example.net'], { path: join(dir, 'no-such-file') }),
    c.send(['erin@example.net'], new Uint8Array(0)),
  ]);
  assert.equal(auth.ok, true);
  assert.equal(sent.ok, true);
  assert.ok(submitted.get(sent.id!)!.bytes.equals(Buffer.from(msg)));
  assert.equal(noop.ok, true);
  // A file that cannot be read fails its own job; nothing of it reached the server.
  assert.equal(missing.ok, false);
  assert.equal((missing.failure as NmtpError).code, 'NMTP_ERR_TRANSPORT_LOCAL');
  assert.equal(again.ok, true);
  assert.equal(submitted.get(again.id!)!.bytes.length, 0);
  await c.quit();
});

test('KEY login; SIGN returns a payload of several chunks; CERTIFY returns a certificate', async () => {
  const msg = message(1024 * 1024 + 5);
  const signed = await withSubmission(
    endpoint(),
    { user: 'alice@example.org', key: alice },
    async (c) => {
      const s = await c.sign(msg);
      const cert = await c.certify(alice.publicKey, 7);
      return { s, cert };
    },
    tls,
  );
  assert.equal(signed.s.ok, true);
  assert.equal(signed.s.size, msg.length + 7);
  assert.ok(Buffer.from(signed.s.message!).equals(Buffer.concat([Buffer.from('signed:'), msg])));
  assert.equal(signed.cert.ok, true);
  const c = parseCertificate(signed.cert.certificate!);
  assert.equal(c.user, 'alice@example.org');
  assert.deepEqual(c.userKey, alice.publicKey);
  assert.equal(c.notAfter - c.notBefore, 7 * 86400);
});

test('a refused login is a result; withSubmission turns it into AUTH_FAILED', async () => {
  const c = await SubmissionClient.connect(endpoint(), tls);
  const wrong = await c.login({ user: 'alice@example.org', password: 'wrong' });
  assert.equal(wrong.ok, false);
  assert.equal(wrong.reply?.code, 535);
  // The session stays usable: the next login may succeed.
  assert.equal((await c.login(password)).ok, true);
  await c.quit();
  await assert.rejects(
    withSubmission(
      endpoint(),
      { user: 'alice@example.org', key: keyPairFromSeed(randomBytes(32)) },
      async () => 'never',
      tls,
    ),
    (e: NmtpError) => e.code === 'NMTP_ERR_TRANSPORT_AUTH_FAILED',
  );
});

test('a payload above maxPayload is refused before it is read; the session closes', async () => {
  const c = await SubmissionClient.connect(endpoint(), { ...tls, maxPayload: 1000 });
  assert.equal((await c.login(password)).ok, true);
  const [big, later] = await Promise.all([c.sign(message(2000)), c.status('s-1')]);
  assert.equal(big.ok, false);
  assert.equal((big.failure as NmtpError).code, 'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE');
  assert.equal(big.message, undefined);
  assert.equal(later.failure, big.failure);
  await c.ended;
  // After the close, a new job fails at once.
  assert.equal((await c.status('s-1')).failure, 'closed');
});

test('a server that never greets: the greeting timeout fails the queued jobs', async () => {
  const port = (silent.address() as { port: number }).port;
  const c = await SubmissionClient.connect(
    { host: '127.0.0.1', port },
    { plaintext: true, timeoutScale: 0.002 },
  );
  const r = await c.login(password);
  assert.equal(r.failure, 'timeout');
  assert.equal(resultError(r)?.code, 'NMTP_ERR_TRANSPORT_TIMEOUT');
  await c.ended;
});

test('a certificate the client does not trust: CONNECT_FAILED', async () => {
  await assert.rejects(
    SubmissionClient.connect(endpoint(), {}),
    (e: NmtpError) => e.code === 'NMTP_ERR_TRANSPORT_CONNECT_FAILED',
  );
});

// --- the commands ----------------------------------------------------------------------------

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const caFile = cert.certFile;
const passwordFile = join(dir, 'password');
writeFileSync(passwordFile, 'correct horse\n');
const keyFile = join(dir, 'alice.pem');
writeFileSync(keyFile, seedToPem(aliceSeed));
const pubFile = join(dir, 'alice.pub.pem');
writeFileSync(pubFile, publicKeyToPem(alice.publicKey));

interface Ran {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `nmtp …` asynchronously (the server runs in this process, so no spawnSync). */
function nmtp(args: string[], o: { input?: Uint8Array; env?: Record<string, string> } = {}) {
  return new Promise<Ran>((resolve, reject) => {
    const env = { ...process.env, ...o.env };
    if (o.env?.NMTP_PASSWORD === undefined) delete env.NMTP_PASSWORD;
    const p = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (status) =>
      resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
    );
    p.stdin.end(o.input ?? new Uint8Array(0));
  });
}

const at = (): string[] => ['--server', `127.0.0.1:${server.port}`, '--ca', caFile];
const asAlice = ['--user', 'alice@example.org'];

test('nmtp submit (--file, --password-file) prints the id; nmtp submission status lists recipients', async () => {
  const path = join(dir, 'cli-message.nmtp');
  const msg = message(1500 * 1024);
  writeFileSync(path, msg);
  const r = await nmtp([
    'submit',
    ...at(),
    ...asAlice,
    '--password-file',
    passwordFile,
    '--to',
    'bob@example.net',
    '--to',
    'carol@example.net',
    '--file',
    path,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const id = r.stdout.toString().trim();
  assert.match(id, /^s-\d+$/);
  assert.ok(submitted.get(id)!.bytes.equals(Buffer.from(msg)));
  const s = await nmtp(['submission', 'status', id, ...at(), ...asAlice, '--user-key', keyFile]);
  assert.equal(s.status, 0, s.stderr);
  assert.equal(
    s.stdout.toString(),
    `${id} bob@example.net pending\n${id} carol@example.net deferred\n`,
  );
  const unknown = await nmtp([
    'submission',
    'status',
    's-999',
    ...at(),
    ...asAlice,
    '--user-key',
    keyFile,
  ]);
  assert.equal(unknown.status, 65);
  assert.match(unknown.stderr, /NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN/);
});

test('nmtp submit from stdin with NMTP_PASSWORD; a refused recipient is reported and fails the exit status', async () => {
  const msg = Buffer.from('NMTP/1\r\n\r\nSubject: hi\r\n\r\nhello\r\n');
  const r = await nmtp(
    ['submit', ...at(), ...asAlice, '--to', 'erin@example.net', '--to', '@nobody'],
    { input: msg, env: { NMTP_PASSWORD: 'correct horse' } },
  );
  // The message still went to erin: the id is printed.
  const id = r.stdout.toString().trim();
  assert.ok(submitted.get(id)!.bytes.equals(msg));
  assert.deepEqual(submitted.get(id)!.recipients, ['erin@example.net']);
  assert.match(r.stderr, /@nobody refused: 501 5\.1\.3 .*NMTP_ERR_TRANSPORT_BAD_ARGUMENT/);
  assert.equal(r.status, 65);
});

test('nmtp submission sign (stdin → stdout) and certify (--key, --days)', async () => {
  const msg = Buffer.from('NMTP/1\r\n\r\nSubject: sign me\r\n\r\nhello\r\n');
  const signed = await nmtp(['submission', 'sign', ...at(), ...asAlice, '--user-key', keyFile], {
    input: msg,
  });
  assert.equal(signed.status, 0, signed.stderr);
  assert.ok(signed.stdout.equals(Buffer.concat([Buffer.from('signed:'), msg])));
  const cert = await nmtp([
    'submission',
    'certify',
    '--key',
    pubFile,
    '--days',
    '10',
    ...at(),
    ...asAlice,
    '--password-file',
    passwordFile,
  ]);
  assert.equal(cert.status, 0, cert.stderr);
  const c = parseCertificate(cert.stdout.toString().trim());
  assert.deepEqual(c.userKey, alice.publicKey);
  assert.equal(c.notAfter - c.notBefore, 10 * 86400);
});

test('nmtp submit --plaintext: a wrong password is AUTH_FAILED; no password source is a usage error', async () => {
  const wrong = join(dir, 'wrong-password');
  writeFileSync(wrong, 'nope\n');
  const plain = ['--server', `127.0.0.1:${plainServer.port}`, '--plaintext'];
  const r = await nmtp(
    ['submit', ...plain, ...asAlice, '--password-file', wrong, '--to', 'bob@example.net'],
    { input: Buffer.from('x') },
  );
  assert.equal(r.status, 65);
  assert.match(r.stderr, /^nmtp submit: NMTP_ERR_TRANSPORT_AUTH_FAILED: 535 5\.7\.8 /);
  const none = await nmtp(['submit', ...at(), ...asAlice, '--to', 'bob@example.net']);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /NMTP_PASSWORD/);
  // There is no way to give a password on the command line.
  const flag = await nmtp([
    'submit',
    ...at(),
    ...asAlice,
    '--password',
    'x',
    '--to',
    'b@example.net',
  ]);
  assert.equal(flag.status, 2);
});

test('every submission command has --help', async () => {
  for (const args of [
    ['submit'],
    ['submission', 'status'],
    ['submission', 'sign'],
    ['submission', 'certify'],
  ]) {
    const r = await nmtp([...args, '--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.toString(), new RegExp(`^usage: nmtp ${args.join(' ')} `));
    assert.match(r.stdout.toString(), /--password-file/);
  }
});
