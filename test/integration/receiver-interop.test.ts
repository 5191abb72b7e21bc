/**
 * The other side of transfer-interop.test.ts: a second implementation of a transfer
 * *receiver*, written from docs/protocol.md §60 alone (test/interop/nmtp_receiver.py, Python
 * standard library + Debian's python3-cryptography, on top of test/interop/nmtp_message.py),
 * must take mail from our client: "second implementations written from the spec alone" have
 * to interoperate. Our side is driven as a user would, with the CLI (`nmtp send`,
 * `nmtp status`, `--ca` for the receiver's certificate from `nmtp certs generate`); the
 * Python receiver gets the sender's key record as data, listens on 127.0.0.1 and an
 * ephemeral port, and logs every line it reads and sends, so the test can compare what our
 * CLI printed with what the receiver answered.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../support/eventually.ts';
import { nmtpSync, signedMessage } from '../support/nmtp-cli.ts';

const PYTHON = '/usr/bin/python3';
const RECEIVER = fileURLToPath(new URL('../interop/nmtp_receiver.py', import.meta.url));

interface Receiver {
  name: string;
  port: number;
  store: string;
  log: string;
  child: ChildProcess;
}

let dir = '';
const receivers: Receiver[] = [];
let plain: Receiver;
let eager: Receiver;

const nmtp = (args: readonly string[], input?: Buffer): string =>
  nmtpSync(dir, args, input).toString('utf8');
const message = (rcpts: readonly string[], subject: string): Buffer =>
  signedMessage(dir, rcpts, subject);

const sender = (r: Receiver): string[] => [
  ...['--key', 'org.key', '--domain', 'example.org', '--selector', 's1'],
  ...['--ca', join(dir, 'tls', '127.0.0.1.crt'), '--server', `127.0.0.1:${r.port}`],
];

/** `nmtp send` to receiver `r`: its output, one line per recipient. */
function send(r: Receiver, rcpts: readonly string[], msg: Buffer, name: string): string[] {
  const file = join(dir, `${name}.nmtp`);
  writeFileSync(file, msg);
  const to = rcpts.flatMap((a) => ['--to', a]);
  return nmtp(['send', ...to, '--file', file, ...sender(r)])
    .trimEnd()
    .split('\n');
}

const status = (r: Receiver, cookies: readonly string[]): string[] =>
  nmtp(['status', ...cookies, '--at', 'example.net', ...sender(r)])
    .trimEnd()
    .split('\n');

/** The lines the receiver logged ("C: …" read, "S: …" sent), from line `from` on. */
const logLines = (r: Receiver, from = 0): string[] =>
  readFileSync(r.log, 'utf8').trimEnd().split('\n').slice(from);
const logLength = (r: Receiver): number => {
  try {
    return logLines(r).length;
  } catch {
    return 0;
  }
};

/** Copies the receiver stored (accepted), keyed by file name. */
const storedFiles = (r: Receiver): string[] =>
  readdirSync(r.store).filter((f) => f.endsWith('.nmtp'));

async function startReceiver(name: string, extra: Record<string, unknown>): Promise<Receiver> {
  const [owner, value] = splitRecord(
    nmtp(
      ['dns-records', '--domain', 'example.org', '--selector', 's1', '--key', 'org.key'].concat([
        '--format',
        'key-record',
      ]),
    ).trim(),
  );
  const store = join(dir, name);
  mkdirSync(store);
  const cfg = {
    cert: join(dir, 'tls', '127.0.0.1.crt'),
    key: join(dir, 'tls', '127.0.0.1.key'),
    server_name: 'mx.example.net',
    store,
    log: join(dir, `${name}.log`),
    records: {
      [owner]: [value],
      // §60.8.2 as data: the receiver reports csv=pass for loopback.
      '_nmtpclient.example.org': ['v=NMTPCSV1; ip=127.0.0.1/32'],
    },
    decide: { 'carol@example.net': 'defer', 'dave@example.net': 'reject' },
    ...extra,
  };
  const cfgFile = join(dir, `${name}.json`);
  writeFileSync(cfgFile, JSON.stringify(cfg));
  const child = spawn(PYTHON, [RECEIVER, cfgFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const r: Receiver = { name, port: 0, store, log: cfg.log, child };
  receivers.push(r);
  await eventually(() => out.includes('\n'), `${name} receiver prints its port`);
  r.port = (JSON.parse(out.split('\n')[0]!) as { port: number }).port;
  return r;
}

function splitRecord(line: string): [string, string] {
  const i = line.indexOf('=');
  return [line.slice(0, i), line.slice(i + 1)];
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'receiver-interop-'));
  nmtp(['keys', 'generate', '--domain', 'example.org', '--selector', 's1', '--out', 'org.key']);
  nmtp(['certs', 'generate', '--out', 'tls', '--name', '127.0.0.1']);
  plain = await startReceiver('plain', {});
  eager = await startReceiver('eager', { eager: 65536 });
});

after(async () => {
  for (const r of receivers) {
    if (r.child.exitCode !== null || r.child.signalCode !== null) continue;
    const gone = new Promise((resolve) => r.child.once('exit', resolve));
    r.child.kill('SIGTERM');
    await gone;
  }
  rmSync(dir, { recursive: true, force: true });
});

let cookie = '';
let sent: Buffer;

test('nmtp send to the Python receiver: accepted, deferred and rejected as it answered, the exact octets stored', () => {
  const rcpts = ['bob@example.net', 'carol@example.net', 'dave@example.net'];
  sent = message(rcpts, 'three answers');
  const from = logLength(plain);
  const printed = send(plain, rcpts, sent, 'three');
  const log = logLines(plain, from);

  // HELLO passed, the proof verified by the Python side against the key record.
  const hello = log.find((l) => l.startsWith('S: 250 2.0.0 domain='));
  assert.equal(hello, 'S: 250 2.0.0 domain=example.org proof=pass csv=pass');
  // No eager= announced: the DATA waits for the 354 (§60.2) and carries no send=.
  const data = log.findIndex((l) => l.startsWith('C: DATA '));
  assert.doesNotMatch(log[data]!, / send=/);
  assert.equal(log[data + 1], 'S: 354 2.0.0 view=full');
  assert.match(log[data + 2]!, /^C: CHUNK \d+/);

  // The answers after the last chunk, one per recipient in RCPT order (§60.10.5).
  const lastChunk = log.findIndex((l) => /^C: CHUNK \d+ LAST$/.test(l));
  const answers = log.slice(lastChunk + 1, lastChunk + 4).map((l) => l.slice(3));
  assert.match(answers[0]!, /^250 2\.0\.0 rcpt=bob@example\.net id=[0-9a-f]+$/);
  assert.match(
    answers[1]!,
    /^350 2\.0\.0 rcpt=carol@example\.net cookie=\S+ min=60 max=3600 expires=\d+$/,
  );
  assert.equal(
    answers[2],
    '550 5.7.1 rcpt=dave@example.net err=NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED',
  );
  // Our CLI prints every recipient with the reply that decided it, as the receiver sent it.
  assert.deepEqual(
    printed,
    rcpts.map((a, i) => `${a} ${answers[i]}`),
  );

  // The accepted copy is the octets our client sent, exactly (no Received: it is a SHOULD).
  const id = /id=([0-9a-f]+)/.exec(answers[0]!)![1]!;
  assert.deepEqual(readFileSync(join(plain.store, `${id}.nmtp`)), sent);
  cookie = /cookie=(\S+)/.exec(answers[1]!)![1]!;
  assert.deepEqual(readFileSync(join(plain.store, 'held', `${cookie}.nmtp`)), sent);
  assert.ok(log.includes('C: QUIT') && log.at(-1) === 'S: 221 2.0.0', 'the client QUITs');
});

test('nmtp status <cookie>: the Python receiver STATUS answer, deferred then accepted; an unknown cookie', () => {
  assert.ok(cookie, 'the first test left a cookie');
  let from = logLength(plain);
  const pending = status(plain, [cookie]);
  const answered = logLines(plain, from).filter((l) => l.startsWith('S: 350 '));
  assert.equal(answered.length, 1);
  assert.match(
    answered[0]!,
    new RegExp(
      `^S: 350 2\\.0\\.0 cookie=${cookie} rcpt=carol@example\\.net min=60 max=3600 expires=\\d+$`,
    ),
  );
  assert.deepEqual(pending, [`carol@example.net ${answered[0]!.slice(3)}`]);

  // The receiver's person approves; the next STATUS is final, and the held copy is stored.
  mkdirSync(join(plain.store, 'decide'), { recursive: true });
  writeFileSync(join(plain.store, 'decide', cookie), 'accept');
  const before = new Set(storedFiles(plain));
  from = logLength(plain);
  const done = status(plain, [cookie, 'no-such-cookie']);
  const lines = logLines(plain, from).filter((l) => /^S: (250|550) .*cookie=/.test(l));
  assert.equal(lines.length, 2);
  assert.match(
    lines[0]!,
    new RegExp(
      `^S: 250 2\\.0\\.0 cookie=${cookie} rcpt=carol@example\\.net state=accepted id=[0-9a-f]+$`,
    ),
  );
  assert.equal(
    lines[1],
    'S: 550 5.5.4 cookie=no-such-cookie err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN',
  );
  assert.equal(done.length, 2);
  assert.equal(done[0], `carol@example.net ${lines[0]!.slice(3)}`);
  assert.match(done[1]!, /no-such-cookie/);
  assert.match(done[1]!, /550 5\.5\.4 cookie=no-such-cookie err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN/);
  const added = storedFiles(plain).filter((f) => !before.has(f));
  assert.deepEqual(added, [`${/id=([0-9a-f]+)/.exec(lines[0]!)![1]}.nmtp`]);
  assert.deepEqual(readFileSync(join(plain.store, added[0]!)), sent);
});

test('eager data: a receiver announcing eager= gets DATA … send=full, 354 view=full, the message stored', () => {
  const msg = message(['erin@example.net'], 'eager');
  const printed = send(eager, ['erin@example.net'], msg, 'eager');
  const log = logLines(eager);
  assert.ok(log.includes('S: 250 2.0.0 domain=example.org proof=pass csv=pass eager=65536'));
  const data = log.findIndex((l) => l.startsWith('C: DATA '));
  assert.match(log[data]!, / send=full$/);
  // "With send=full the 354 names view=full".
  assert.equal(log[data + 1], 'S: 354 2.0.0 view=full');
  const answer = log.find((l) => l.startsWith('S: 250 2.0.0 rcpt=erin@example.net id='))!;
  assert.ok(answer, 'accepted');
  assert.deepEqual(printed, [`erin@example.net ${answer.slice(3)}`]);
  const id = /id=([0-9a-f]+)/.exec(answer)![1]!;
  assert.deepEqual(readFileSync(join(eager.store, `${id}.nmtp`)), msg);
});
