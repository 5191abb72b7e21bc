/**
 * A second implementation of the transfer client, written from docs/protocol.md §60 and
 * the transport vectors' README alone (test/interop/nmtp_transfer.py, Python standard
 * library + Debian's python3-cryptography, on top of test/interop/nmtp_message.py), must
 * interoperate with the reference receiver: "second implementations written from the spec
 * alone" have to. `nmtp serve` runs as an operator starts it (README "Two NMTP endpoints"):
 * its own certificate, the sender's key record given with `--key-record`, a policy.json in
 * its maildir, on 127.0.0.1 and an ephemeral port. The Python client delivers, polls,
 * gives up and makes the errors of the state table (§60.10.1) over real TLS.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../support/eventually.ts';
import { startServe, type ServeProcess } from '../support/serve-process.ts';
import { NMTP_CLI, nmtpSync, signedMessage } from '../support/nmtp-cli.ts';

const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../interop/nmtp_transfer.py', import.meta.url));

interface Reply {
  line: string;
  code: number;
  enhanced: string;
  params: Record<string, string>;
  text: string | null;
}
interface Delivery {
  rcpt: Reply[];
  data: Reply | null;
  view: string | null;
  answers: Reply[];
}
interface RunResult {
  greeting: Reply;
  hello: Reply;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one shape per job op
  jobs: any[];
  quit?: Reply;
  closed_by_server?: boolean;
  error?: string;
}

let dir = '';
let serve: ServeProcess | undefined;
const running = new Set<ChildProcess>();
const maildir = (): string => join(dir, 'mail');

const nmtp = (args: readonly string[], input?: Buffer): Buffer => nmtpSync(dir, args, input);
const message = (rcpts: readonly string[], subject: string): Buffer =>
  signedMessage(dir, rcpts, subject);

/** One session of the Python client: JSON in, JSON out. */
function client(jobs: unknown[], extra: Record<string, unknown> = {}): RunResult {
  const cfg = {
    host: '127.0.0.1',
    port: serve!.port,
    ca: join(dir, 'tls', '127.0.0.1.crt'),
    domain: 'example.org',
    selector: 's1',
    key_pem: join(dir, 'org.key'),
    jobs,
    ...extra,
  };
  const out = execFileSync(PYTHON, [CLIENT, 'run'], { input: JSON.stringify(cfg) });
  const r = JSON.parse(out.toString('utf8')) as RunResult;
  assert.equal(r.error, undefined, `client session failed: ${JSON.stringify(r)}`);
  return r;
}
const deliver = (rcpts: string[], msg: Buffer, o: Record<string, unknown> = {}) => ({
  op: 'deliver',
  rcpts,
  message_b64: msg.toString('base64'),
  ...o,
});

/** The new/ file whose Received names `rcpt` (§60.8.4: each copy names its recipient only). */
function storedFor(rcpt: string): Buffer[] {
  const newDir = join(maildir(), 'new');
  return readdirSync(newDir)
    .map((f) => readFileSync(join(newDir, f)))
    .filter((b) => b.includes(Buffer.from(`\r\nReceived: for=${rcpt}; `)));
}

/** The one copy for `rcpt`: written into new/ moments after the answer (§60.15, journal). */
async function storedOne(rcpt: string): Promise<Buffer> {
  await eventually(() => storedFor(rcpt).length > 0, `a copy for ${rcpt} in new/`);
  const files = storedFor(rcpt);
  assert.equal(files.length, 1, `one copy for ${rcpt}`);
  return files[0]!;
}

/**
 * §60.8.4: "one Received field appended to the trace block — the octets of the message stay
 * exactly as sent otherwise". Returns the field's value after checking the rest is the sent
 * message octet for octet.
 */
function receivedOf(stored: Buffer, sent: Buffer): string {
  const traceEnd = sent.indexOf('\r\n\r\n') + 2; // the version line has no empty line before it
  const head = stored.subarray(0, traceEnd);
  assert.deepEqual(head, sent.subarray(0, traceEnd), 'version line and trace block as sent');
  const fieldEnd = stored.indexOf('\r\n', traceEnd) + 2;
  assert.deepEqual(stored.subarray(fieldEnd), sent.subarray(traceEnd), 'the rest as sent');
  const field = stored.subarray(traceEnd, fieldEnd - 2).toString('utf8');
  assert.match(field, /^Received: /);
  return field.slice('Received: '.length);
}
const RECEIVED =
  /^for=([^ ;]+); at=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ); domain=example\.org; ip=127\.0\.0\.1; proof=pass; csv=pass$/;

/** policy.json (docs/mailbox-policy.md); read again when it changed, at the next decision. */
function writePolicy(preview: boolean): void {
  const policy = {
    defer: ['carol@example.net', 'dave@example.net'],
    // While a preview entry exists the receiver announces no eager data.
    ...(preview ? { preview: { 'grace@example.net': 'headers' } } : {}),
  };
  writeFileSync(join(maildir(), 'policy.json'), JSON.stringify(policy));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'transfer-interop-'));
  nmtp(['keys', 'generate', '--domain', 'example.org', '--selector', 's1', '--out', 'org.key']);
  nmtp(['certs', 'generate', '--out', 'tls', '--name', '127.0.0.1']);
  const key = nmtp(
    ['dns-records', '--domain', 'example.org', '--selector', 's1'].concat([
      '--key',
      'org.key',
      '--format',
      'key-record',
    ]),
  )
    .toString('utf8')
    .trim();
  execFileSync('mkdir', ['-p', maildir()]);
  writePolicy(false);
  serve = await startServe({
    command: [NMTP_CLI],
    cwd: dir,
    running,
    args: [
      ...['--listen', '127.0.0.1:0', '--domain', 'mx.example.net', '--maildir', maildir()],
      ...['--cert', join(dir, 'tls', '127.0.0.1.crt'), '--key', join(dir, 'tls', '127.0.0.1.key')],
      ...['--key-record', key],
      // The CSV record (§60.8.2) as a static record too, so csv= does not depend on DNS.
      ...['--key-record', '_nmtpclient.example.org=v=NMTPCSV1; ip=127.0.0.1/32'],
    ],
  });
});

after(async () => {
  for (const c of running) {
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await gone;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('greeting and HELLO: the proof over the challenge and server name passes', () => {
  const r = client([{ op: 'raw', line: 'NOOP' }]);
  assert.equal(r.greeting.code, 220);
  assert.equal(r.greeting.params.version, 'NMTP/1');
  assert.equal(r.greeting.params.service, 'transfer');
  assert.equal(r.greeting.params.server, 'mx.example.net');
  assert.equal(r.hello.code, 250);
  assert.deepEqual(
    { domain: r.hello.params.domain, proof: r.hello.params.proof, csv: r.hello.params.csv },
    { domain: 'example.org', proof: 'pass', csv: 'pass' },
  );
  assert.equal(r.jobs[0][0].line, '250 2.0.0');
  assert.equal(r.quit?.line, '221 2.0.0');
});

for (const mode of [
  { name: 'pipelined', job: { mode: 'pipelined' } },
  { name: 'lock-step', job: { mode: 'lockstep' } },
  { name: 'eager (send=full)', job: { mode: 'pipelined', eager: true } },
]) {
  test(`a message signed for two recipients, ${mode.name}: both accepted, stored as sent plus Received`, async () => {
    const a = `a-${mode.job.mode}${'eager' in mode.job ? '-eager' : ''}@example.net`;
    const b = `b-${mode.job.mode}${'eager' in mode.job ? '-eager' : ''}@example.net`;
    const msg = message([a, b], `two recipients ${mode.name}`);
    const r = client([deliver([a, b], msg, { ...mode.job, chunk: 100 })]);
    if ('eager' in mode.job)
      assert.ok(Number(r.hello.params.eager) >= msg.length, 'server takes eager data');
    const d = r.jobs[0] as Delivery;
    assert.deepEqual(
      d.rcpt.map((x) => x.line),
      [`250 2.1.5 rcpt=${a}`, `250 2.1.5 rcpt=${b}`],
    );
    assert.equal(d.data?.line, '354 2.0.0 view=full');
    assert.deepEqual(
      d.answers.map((x) => [x.code, x.enhanced, x.params.rcpt]),
      [
        [250, '2.0.0', a],
        [250, '2.0.0', b],
      ],
    );
    for (const [i, rcpt] of [a, b].entries()) {
      const m = RECEIVED.exec(receivedOf(await storedOne(rcpt), msg));
      assert.ok(m, `Received of ${rcpt}`);
      assert.equal(m[1], rcpt, 'the copy names its own recipient only');
      assert.ok(d.answers[i]!.params.id, 'accepted with the receiver id');
    }
  });
}

test('signers= announced with an identity twice: the receiver compares them as a set (§60.4)', async () => {
  const msg = message(['erin@example.net'], 'signers twice');
  const r = client([
    deliver(['erin@example.net'], msg, { signers: ['example.org', 'example.org'] }),
  ]);
  const d = r.jobs[0] as Delivery;
  assert.equal(d.answers[0]?.code, 250);
  receivedOf(await storedOne('erin@example.net'), msg);
});

test('a deferred recipient: STATUS 350 until approved, then 250 accepted and stored', async () => {
  const msg = message(['bob@example.net', 'carol@example.net'], 'held for carol');
  const r = client([deliver(['bob@example.net', 'carol@example.net'], msg)]);
  const [bob, carol] = (r.jobs[0] as Delivery).answers;
  assert.equal(bob?.code, 250);
  assert.equal(carol?.code, 350);
  assert.equal(carol.enhanced, '2.0.0');
  const cookie = carol.params.cookie!;
  assert.match(cookie, /^[A-Za-z0-9_-]{1,128}$/);
  for (const p of ['min', 'max', 'expires']) assert.match(carol.params[p]!, /^(0|[1-9]\d*)$/);
  assert.equal(storedFor('carol@example.net').length, 0, 'held, not stored');

  const polled = client([{ op: 'status', cookies: [cookie] }]).jobs[0] as Reply[];
  assert.equal(polled[0]?.code, 350);
  assert.deepEqual([polled[0].params.cookie, polled[0].params.rcpt], [cookie, 'carol@example.net']);

  nmtp(['mailbox', 'approve', cookie, '--maildir', maildir()]);
  const done = client([{ op: 'status', cookies: [cookie, cookie] }]).jobs[0] as Reply[];
  for (const x of done) {
    assert.deepEqual(
      [x.code, x.enhanced, x.params.cookie, x.params.rcpt, x.params.state],
      [250, '2.0.0', cookie, 'carol@example.net', 'accepted'],
    );
    assert.ok(x.params.id);
  }
  const m = RECEIVED.exec(receivedOf(await storedOne('carol@example.net'), msg));
  assert.ok(m);
  // "at= of a message held under a cookie and accepted later is when it was received".
  const bobAt = RECEIVED.exec(receivedOf(await storedOne('bob@example.net'), msg))![2];
  assert.equal(m[2], bobAt);
});

test('a preview: headers view held, STATUS 352 view=full after approval, DATA on the cookie', async () => {
  writePolicy(true);
  const msg = message(['grace@example.net'], 'preview');
  const r = client([deliver(['grace@example.net'], msg)]);
  const d = r.jobs[0] as Delivery;
  assert.equal(d.data?.line, '354 2.0.0 view=headers');
  assert.equal(r.hello.params.eager, undefined, 'no eager data while a preview exists');
  const cookie = d.answers[0]!.params.cookie!;
  assert.equal(d.answers[0]!.code, 350);
  nmtp(['mailbox', 'approve', cookie, '--maildir', maildir()]);
  const again = client([
    { op: 'status', cookies: [cookie] },
    { op: 'data-cookie', cookie, message_b64: msg.toString('base64') },
    { op: 'status', cookies: [cookie] },
  ]);
  assert.equal(
    again.jobs[0][0].line,
    `352 2.0.0 cookie=${cookie} rcpt=grace@example.net view=full`,
  );
  assert.equal(again.jobs[1].data.line, '354 2.0.0 view=full');
  const ans = again.jobs[1].answers[0] as Reply;
  assert.deepEqual(
    [ans.code, ans.params.cookie, ans.params.rcpt],
    [250, cookie, 'grace@example.net'],
  );
  assert.equal(again.jobs[2][0].params.state, 'accepted');
  await storedOne('grace@example.net');
  writePolicy(false);
});

test('GIVEUP: 250 state=given-up, and STATUS says so afterwards', () => {
  const msg = message(['dave@example.net'], 'given up');
  const d = client([deliver(['dave@example.net'], msg)]).jobs[0] as Delivery;
  const cookie = d.answers[0]!.params.cookie!;
  const r = client([
    { op: 'giveup', cookies: [cookie] },
    { op: 'status', cookies: [cookie] },
  ]);
  const want = `250 2.0.0 cookie=${cookie} rcpt=dave@example.net state=given-up`;
  assert.equal(r.jobs[0][0].line, want);
  assert.equal(r.jobs[1][0].line, want);
});

test('state-table errors keep the session: DATA before RCPT, HELLO twice, unknown verb, unknown cookie, DATA on a cookie in a transaction', () => {
  const jobs = [
    { op: 'raw', line: 'DATA size=5 digest=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    {
      op: 'raw',
      line: 'HELLO example.org sel=s1 proof=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    },
    { op: 'raw', line: 'FROB' },
    { op: 'status', cookies: ['no-such-cookie'] },
    { op: 'raw', line: 'RCPT erin@example.net' },
    {
      op: 'raw',
      line: 'DATA size=5 digest=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA cookie=abc',
    },
    // §60.4: signers is a list of identities; an empty item is a bad argument.
    {
      op: 'raw',
      line: 'DATA size=5 digest=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA signers=example.org,',
    },
    { op: 'raw', line: 'RSET' },
  ];
  const lines0 = (i: number): string => (jobs[i] as { line: string }).line;
  const r = client(jobs);
  // The text after " # " is for people (§60.6): compared without it.
  const lines = r.jobs.map((j: Reply[]) => j[0]!.line.split(' # ')[0]);
  assert.deepEqual(lines, [
    '503 5.5.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS',
    '503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER',
    // a line error carries offset= (§60.6): octets from the start of the client's stream
    lines[2],
    '550 5.5.4 cookie=no-such-cookie err=NMTP_ERR_TRANSPORT_COOKIE_UNKNOWN',
    '250 2.1.5 rcpt=erin@example.net',
    '503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER',
    '501 5.5.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT',
    '250 2.0.0',
  ]);
  const unknown = r.jobs[2][0] as Reply;
  assert.deepEqual(
    [unknown.code, unknown.enhanced, unknown.params.err],
    [500, '5.5.1', 'NMTP_ERR_WIRE_UNKNOWN_COMMAND'],
  );
  // Octets before FROB: the HELLO (an 86-character proof) and the two lines after it.
  const before = ['HELLO example.org sel=s1 proof=' + 'x'.repeat(86), lines0(0), lines0(1)];
  assert.equal(
    unknown.params.offset,
    String(before.reduce((n, l) => n + Buffer.byteLength(l) + 2, 0)),
  );
  assert.equal(r.quit?.line, '221 2.0.0');
});

test('a wrong proof: 535 5.7.8 PROOF_INVALID and the server closes', () => {
  const r = client([], { proof: 'tamper' });
  assert.equal(r.hello.line, '535 5.7.8 domain=example.org err=NMTP_ERR_TRANSPORT_PROOF_INVALID');
  assert.equal(r.closed_by_server, true);
});
