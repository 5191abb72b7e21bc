/**
 * The transfer client reducer against the transfer server reducer, in memory: for the
 * transcripts that are one client job, the client must produce exactly the transcript's
 * client octets (and the server its server octets) — two independent machines agreeing on
 * the wire. Also: the client's reactions to failures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { signMessage } from '../../../src/core/message/index.ts';
import { decodeMessage } from '../../../src/core/frame/index.ts';
import { ed25519, toBase64url } from '../../../src/core/sign/index.ts';
import { fingerprint } from '../../../src/core/keys/index.ts';
import {
  WireDecoder,
  NEED_MORE,
  END,
  encodeCommand,
  encodeChunks,
} from '../../../src/core/wire/index.ts';
import {
  initialTransferClient,
  proveInput,
  transferClient,
  type ClientJob,
  type TransferClientAction,
  type TransferClientEvent,
  type TransferClientState,
  type View,
} from '../../../src/core/session/index.ts';
import { concat, lineBytes, loadTranscripts, ServerRun } from './transcript.ts';
import { KEYS } from './world.ts';

const enc = new TextEncoder();
const seq = (from: number, n: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => from + i);
const MESSAGE = signMessage(
  enc.encode(
    'NMTP/1\r\n\r\nFrom: <bob@example.org>\r\nTo: <alice@example.net>\r\nSubject: hi\r\nContent-Length: 6\r\n\r\nhello\n\r\n\r\n',
  ),
  {
    key: KEYS['example.org'],
    domain: 'example.org',
    selector: 's2026',
    recipients: ['alice@example.net', 'carol@example.net', 'dave@example.net', 'erin@example.net'],
    signedAt: 1795000000,
    expiresAt: 1795604800,
    salt: seq(0x10, 16),
  },
);
const DIGEST = toBase64url(decodeMessage(MESSAGE).contentDigest);

/** The views of §60.10.4, cut from the message by their definitions. */
function view(v: View): Uint8Array {
  const blank = (from: number): number => Buffer.from(MESSAGE).indexOf('\r\n\r\n', from) + 4;
  const traceEnd = blank(0);
  switch (v) {
    case 'full':
    case 'text': // the root part is the text/plain leaf: the text view is the whole message
      return MESSAGE;
    case 'signers':
      return MESSAGE.subarray(0, traceEnd);
    case 'headers':
      return MESSAGE.subarray(0, blank(traceEnd));
    case 'digest':
      return new Uint8Array(0);
  }
}

interface Run {
  client: Uint8Array;
  server: Uint8Array;
  results: Extract<TransferClientAction, { type: 'result' }>[];
  /** Client→server flights: each batch of octets the client sent before it next waited. */
  flights: number;
}

interface ConverseOptions {
  signer?: typeof KEYS.stranger;
  pipelining?: boolean;
  /** The client's eagerMax (§60.10.4); the default is the reducer's. */
  eagerMax?: number;
  /** More jobs for the same session, given one by one whenever it is idle. */
  more?: ClientJob[];
}

/**
 * The client reducer against the server reducer, as over a network: whatever the client
 * sends while handling one batch of server octets travels as one flight, and the server
 * answers the whole flight at once (a pipelined server reads ahead).
 */
function converse(
  directives: Record<string, string[]>,
  job: ClientJob,
  o: ConverseOptions = {},
): Run {
  const server = new ServerRun(directives);
  const dec = new WireDecoder('client');
  const more = [...(o.more ?? [])];
  let state: TransferClientState = initialTransferClient({
    domain: 'example.org',
    selector: 's2026',
    job,
    ...(o.more === undefined ? {} : { keepOpen: true }),
    ...(o.pipelining === undefined ? {} : { pipelining: o.pipelining }),
    ...(o.eagerMax === undefined ? {} : { eagerMax: o.eagerMax }),
  });
  const clientOut: Uint8Array[] = [];
  const serverOut: Uint8Array[] = [];
  const results: Run['results'] = [];
  const inbox: Uint8Array[] = [server.takeGreeting()];
  let flight: Uint8Array[] = [];
  let flights = 0;
  const events: TransferClientEvent[] = [];
  const run = (): void => {
    for (let e = events.shift(); e !== undefined; e = events.shift()) {
      const step = transferClient(state, e);
      state = step.state;
      for (const a of step.actions) {
        if (a.type === 'command') flight.push(encodeCommand(a.command));
        else if (a.type === 'sign-proof') {
          const signature = toBase64url(ed25519.sign(o.signer ?? KEYS['example.org'], a.input));
          events.push({ type: 'proof-signed', signature });
        } else if (a.type === 'send-view') {
          flight.push(...encodeChunks(view(a.view)));
          events.push({ type: 'view-sent' });
        } else if (a.type === 'verify-prove') {
          events.push({ type: 'prove-verified', ok: ed25519.verify(a.key, a.input, a.proof) });
        } else if (a.type === 'result') results.push(a);
        else if (a.type === 'ready') {
          const next = more.shift();
          events.push(next === undefined ? { type: 'finish' } : { type: 'job', job: next });
        }
      }
    }
  };
  while (inbox.length > 0) {
    const b = inbox.shift()!;
    serverOut.push(b);
    dec.push(b);
    for (;;) {
      const it = dec.next();
      if (it === NEED_MORE || it === END) break;
      events.push({ type: 'wire', item: it });
      run();
    }
    if (flight.length > 0) {
      const bytes = concat(flight);
      flight = [];
      flights++;
      clientOut.push(bytes);
      const answer = server.feed(bytes);
      if (answer.length > 0) inbox.push(answer);
    }
  }
  return { client: concat(clientOut), server: concat(serverOut), results, flights };
}

const deliver = (recipients: string[]): ClientJob => ({
  kind: 'deliver',
  recipients,
  size: MESSAGE.length,
  digest: DIGEST,
  signers: ['example.org'],
});

const CASES: [string, ClientJob][] = [
  ['transfer-redirect.txt', deliver(['roaming@example.net', 'alice@example.net'])],
  ['transfer-view-headers.txt', deliver(['alice@example.net'])],
  ['transfer-view-signers.txt', deliver(['alice@example.net'])],
  ['transfer-view-digest.txt', deliver(['alice@example.net'])],
  ['transfer-view-text.txt', deliver(['alice@example.net'])],
  ['transfer-status-window.txt', { kind: 'status', cookie: 'ck-old' }],
];

const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

for (const [name, job] of CASES) {
  test(`client reducer reproduces the client side of ${name}, lock-step and pipelined`, () => {
    const t = loadTranscripts().find((x) => x.name === name)!;
    const client = dec(concat(t.lines.filter((l) => l.who === 'C').map(lineBytes)));
    const server = dec(concat(t.lines.filter((l) => l.who === 'S').map(lineBytes)));
    const d = t.directives as Record<string, string[]>;
    // These transcripts show DATA answered with the view the receiver wants: a client that
    // sends no eager data (send=full, §60.10.4, which only ever gets the full view).
    const lockStep = converse(d, job, { pipelining: false });
    const piped = converse(d, job, { eagerMax: 0 });
    for (const run of [lockStep, piped]) {
      assert.equal(dec(run.client), client);
      assert.equal(dec(run.server), server);
      assert.equal(run.results.length, 1);
    }
    assert.deepEqual(piped.results, lockStep.results);
    // Pipelining sends the same octets in fewer flights whenever there is a RCPT to batch.
    if (job.kind === 'deliver') assert.ok(piped.flights < lockStep.flights);
    else assert.equal(piped.flights, lockStep.flights);
  });
}

test('client reducer reproduces the client side of transfer-eager.txt: the transaction in one flight', () => {
  const t = loadTranscripts().find((x) => x.name === 'transfer-eager.txt')!;
  const run = converse(
    t.directives as Record<string, string[]>,
    deliver(['alice@example.net', 'carol@example.net']),
  );
  assert.equal(dec(run.client), dec(concat(t.lines.filter((l) => l.who === 'C').map(lineBytes))));
  assert.equal(dec(run.server), dec(concat(t.lines.filter((l) => l.who === 'S').map(lineBytes))));
  // HELLO; then RCPT, RCPT, DATA send=full and the chunk; then QUIT.
  assert.equal(run.flights, 3);
});

// "A client MAY send all RCPT commands of a transaction and the DATA after them without
// waiting" (§60.2) — and a server processes them strictly in order, so the client octets
// of every transfer transcript, sent in a single write, get exactly the transcript's answers.
for (const t of loadTranscripts().filter((x) => x.name.startsWith('transfer-'))) {
  test(`all client octets of ${t.name} in one write: the same server octets`, () => {
    const server = new ServerRun(t.directives as Record<string, string[]>);
    const out = [server.takeGreeting()];
    out.push(server.feed(concat(t.lines.filter((l) => l.who === 'C').map(lineBytes))));
    const expected = dec(concat(t.lines.filter((l) => l.who === 'S').map(lineBytes)));
    assert.equal(dec(concat(out)), expected);
  });
}

test('client: per-recipient results of a mixed delivery', () => {
  const run = converse(
    { challenge: ['oKGio6SlpqeoqaqrrK2urw'] },
    deliver([
      'alice@example.net',
      'nobody@example.net',
      'busy@example.net',
      'carol@example.net',
      'dave@example.net',
    ]),
  );
  const got = run.results[0]!.recipients.map((r) => `${r.rcpt} ${r.reply.code}`);
  assert.deepEqual(got, [
    'nobody@example.net 550',
    'busy@example.net 450',
    'alice@example.net 250',
    'carol@example.net 350',
    'dave@example.net 550',
  ]);
  assert.equal(run.results[0]!.failure, undefined);
});

test('client: a refused proof is reported as the session failure', () => {
  const run = converse({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] }, deliver(['alice@example.net']), {
    signer: KEYS.stranger,
  });
  const failure = run.results[0]!.failure as { code: number; params: Record<string, string> };
  assert.equal(failure.code, 535);
  assert.equal(failure.params.err, 'NMTP_ERR_TRANSPORT_PROOF_INVALID');
});

test('client (lock-step): nobody accepted → no DATA, just QUIT', () => {
  const run = converse({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] }, deliver(['nobody@example.net']), {
    pipelining: false,
  });
  assert.ok(!dec(run.client).includes('DATA'));
  assert.match(dec(run.client), /QUIT\r\n$/);
});

test('client: a greeting of another version or service is refused at once', () => {
  let s = initialTransferClient({
    domain: 'example.org',
    selector: 's2026',
    job: { kind: 'status', cookie: 'c' },
  });
  const step = transferClient(s, {
    type: 'wire',
    item: {
      kind: 'reply',
      offset: 0,
      reply: {
        code: 220,
        enhanced: '2.0.0',
        params: { version: 'NMTP/2', service: 'transfer' },
        text: '',
      },
    },
  });
  s = step.state;
  assert.equal(s.phase, 'closed');
  assert.ok(step.actions.some((a) => a.type === 'close'));
});

test('client (pipelined, no eager data): all RCPTs fail → the pipelined DATA is refused, no chunk is sent', () => {
  const run = converse(
    { challenge: ['oKGio6SlpqeoqaqrrK2urw'] },
    deliver(['nobody@example.net', 'busy@example.net']),
    { eagerMax: 0 },
  );
  const text = dec(run.client);
  assert.match(text, /RCPT nobody@example\.net\r\nRCPT busy@example\.net\r\nDATA size=/);
  assert.ok(!text.includes('CHUNK'));
  assert.match(
    dec(run.server),
    /503 5\.5\.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS\r\n221 2\.0\.0\r\n$/,
  );
  assert.deepEqual(
    run.results[0]!.recipients.map((r) => `${r.rcpt} ${r.reply.code}`),
    ['nobody@example.net 550', 'busy@example.net 450'],
  );
  assert.equal(run.results[0]!.failure, undefined);
});

test('client (eager data): all RCPTs fail → the DATA is refused and its chunk dropped without a reply', () => {
  const run = converse(
    { challenge: ['oKGio6SlpqeoqaqrrK2urw'], eager: ['65536'] },
    deliver(['nobody@example.net', 'busy@example.net']),
  );
  const text = dec(run.client);
  assert.match(
    text,
    /RCPT busy@example\.net\r\nDATA size=\d+ digest=\S+ signers=example\.org send=full\r\nCHUNK \d+ LAST\r\n/,
  );
  // Exactly one reply per command: the chunk got none (the server read and dropped it).
  assert.match(
    dec(run.server),
    /450 [^\r]*\r\n503 5\.5\.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS\r\n221 2\.0\.0\r\n$/,
  );
  assert.deepEqual(
    run.results[0]!.recipients.map((r) => `${r.rcpt} ${r.reply.code}`),
    ['nobody@example.net 550', 'busy@example.net 450'],
  );
  assert.equal(run.results[0]!.failure, undefined);
});

test('client (eager data): RCPTs, DATA send=full and the chunks in one flight; one fewer flight than without', () => {
  const d = { challenge: ['oKGio6SlpqeoqaqrrK2urw'], eager: ['65536'] };
  const job = deliver(['alice@example.net', 'dave@example.net']);
  const eager = converse(d, job);
  const plain = converse(d, job, { eagerMax: 0 });
  assert.equal(eager.flights, plain.flights - 1);
  assert.deepEqual(eager.results, plain.results);
  assert.deepEqual(
    eager.results[0]!.recipients.map((r) => `${r.rcpt} ${r.reply.code}`),
    ['alice@example.net 250', 'dave@example.net 550'],
  );
  assert.match(dec(eager.server), /354 2\.0\.0 view=full\r\n/);
  // Larger than eagerMax: the DATA waits for its 354, as without.
  const big = converse(d, job, { eagerMax: MESSAGE.length - 1 });
  assert.equal(big.flights, plain.flights);
  assert.ok(!dec(big.client).includes('send=full'));
  // A server that announces less than the message, or nothing, gets no eager data.
  for (const server of [
    { ...d, eager: [String(MESSAGE.length - 1)] },
    { challenge: d.challenge },
  ]) {
    const run = converse(server, job);
    assert.equal(run.flights, plain.flights);
    assert.ok(!dec(run.client).includes('send=full'));
    assert.deepEqual(run.results, plain.results);
  }
});

test('server: send=full to a server that announced no eager data is 501 and the session closes', () => {
  const run = new ServerRun({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] });
  run.takeGreeting();
  const t = loadTranscripts().find((x) => x.name === 'transfer-eager.txt')!;
  const hello = t.lines.find((l) => l.who === 'C' && l.text.startsWith('HELLO'))!;
  assert.match(
    dec(run.feed(lineBytes(hello))),
    /^250 2\.0\.0 domain=example\.org proof=pass csv=pass\r\n$/,
  );
  run.feed(enc.encode('RCPT alice@example.net\r\n'));
  const out = dec(
    run.feed(enc.encode(`DATA size=${MESSAGE.length} digest=${DIGEST} send=full\r\n`)),
  );
  assert.match(
    out,
    /^501 5\.5\.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # send=full only up to 0 octets\r\n$/,
  );
  assert.equal(run.closed, true);
});

test('client (pipelined): a 351 among pipelined RCPTs is reported as the redirect it is', () => {
  const run = converse(
    { challenge: ['oKGio6SlpqeoqaqrrK2urw'] },
    deliver(['roaming@example.net', 'alice@example.net']),
  );
  const [redirected, alice] = run.results[0]!.recipients;
  assert.equal(redirected!.reply.code, 351);
  assert.equal(redirected!.reply.params.redirect, 'roaming-laptop.example.net:4025');
  assert.equal(redirected!.reply.params.key, fingerprint(KEYS.alice.publicKey));
  assert.equal(alice!.reply.code, 250);
});

test('client: several jobs on one session — one HELLO, one QUIT, one result per job', () => {
  const run = converse(
    {
      challenge: ['oKGio6SlpqeoqaqrrK2urw'],
      cookie: ['ck-old example.org carol@example.net deferred'],
    },
    deliver(['alice@example.net']),
    {
      more: [
        deliver(['dave@example.net', 'nobody@example.net']),
        { kind: 'status', cookie: 'ck-old' },
        deliver(['erin@example.net']),
      ],
    },
  );
  const text = dec(run.client);
  assert.equal(text.match(/HELLO /g)?.length, 1);
  assert.equal(text.match(/QUIT/g)?.length, 1);
  assert.equal(text.match(/DATA /g)?.length, 3);
  assert.deepEqual(
    run.results.map((r) => r.recipients.map((x) => `${x.rcpt} ${x.reply.code}`)),
    [
      ['alice@example.net 250'],
      ['nobody@example.net 550', 'dave@example.net 550'],
      ['carol@example.net 350'],
      ['erin@example.net 250'],
    ],
  );
  assert.ok(run.results.every((r) => r.failure === undefined));
});

test('client: several STATUS/GIVEUP pipelined in one job, answers matched in order', () => {
  const directives = {
    challenge: ['oKGio6SlpqeoqaqrrK2urw'],
    cookie: [
      'ck-old example.org carol@example.net deferred',
      'ck-two example.org dave@example.net deferred',
    ],
  };
  const job: ClientJob = {
    kind: 'cookies',
    ops: [
      { op: 'status', cookie: 'ck-old' },
      { op: 'status', cookie: 'ck-none' },
      { op: 'giveup', cookie: 'ck-two' },
    ],
  };
  const piped = converse(directives, job);
  const lockStep = converse(directives, job, { pipelining: false });
  assert.equal(dec(piped.client), dec(lockStep.client));
  assert.ok(piped.flights < lockStep.flights);
  assert.deepEqual(piped.results, lockStep.results);
  assert.deepEqual(
    piped.results[0]!.recipients.map((r) => [r.cookie, r.rcpt, r.reply.code]),
    [
      ['ck-old', 'carol@example.net', 350],
      ['ck-none', 'ck-none', 550],
      ['ck-two', 'dave@example.net', 250],
    ],
  );
});

// --- scripted server: replies fed by hand ----------------------------------------------------

const GREETING =
  '220 2.0.0 version=NMTP/1 service=transfer server=roaming-laptop.example.net challenge=oKGio6SlpqeoqaqrrK2urw';

/** Drives the client reducer by hand: `reply` feeds one server line, `host` answers actions. */
class Scripted {
  state: TransferClientState;
  readonly sent: string[] = [];
  readonly actions: TransferClientAction[] = [];
  constructor(config: Partial<Parameters<typeof initialTransferClient>[0]>) {
    this.state = initialTransferClient({ domain: 'example.org', selector: 's2026', ...config });
  }
  event(e: TransferClientEvent): void {
    const step = transferClient(this.state, e);
    this.state = step.state;
    for (const a of step.actions) {
      this.actions.push(a);
      if (a.type === 'command') this.sent.push(dec(encodeCommand(a.command)).trimEnd());
      if (a.type === 'sign-proof') this.event({ type: 'proof-signed', signature: 'A'.repeat(86) });
      if (a.type === 'verify-prove')
        this.event({ type: 'prove-verified', ok: ed25519.verify(a.key, a.input, a.proof) });
    }
  }
  reply(line: string): void {
    const d = new WireDecoder('client');
    d.push(enc.encode(`${line}\r\n`));
    const item = d.next();
    if (item === NEED_MORE || item === END) throw new Error('no reply');
    this.event({ type: 'wire', item });
  }
  result(): Extract<TransferClientAction, { type: 'result' }> {
    const r = this.actions.filter((a) => a.type === 'result');
    assert.equal(r.length, 1);
    return r[0] as Extract<TransferClientAction, { type: 'result' }>;
  }
}

const NONCE = toBase64url(seq(0x20, 18));
const BINDING = toBase64url(seq(0x50, 32));
const proveJob = (): ClientJob =>
  ({
    ...deliver(['alice@example.net']),
    prove: {
      rcpt: 'alice@example.net',
      fingerprint: fingerprint(KEYS.alice.publicKey),
      nonce: NONCE,
    },
  }) as ClientJob;

function proveAnswer(key = KEYS.alice, binding = BINDING, rcpt = 'alice@example.net'): string {
  const input = proveInput(
    NONCE,
    'oKGio6SlpqeoqaqrrK2urw',
    'roaming-laptop.example.net',
    binding,
    rcpt,
  );
  const proof = toBase64url(ed25519.sign(key, input));
  return `250 2.7.0 rcpt=${rcpt} key=${toBase64url(key.publicKey)} proof=${proof}`;
}

function helloed(): Scripted {
  const c = new Scripted({ job: proveJob(), binding: BINDING });
  c.reply(GREETING);
  c.reply('250 2.0.0 domain=example.org proof=pass csv=pass eager=65536');
  assert.deepEqual(c.sent.slice(1), [`PROVE alice@example.net nonce=${NONCE}`]);
  assert.equal(c.state.phase, 'proving');
  return c;
}

test('PROVE ok: the proof over nonce, challenge, server, binding and address holds → RCPT, DATA', () => {
  const c = helloed();
  c.reply(proveAnswer());
  assert.deepEqual(c.sent.slice(2), [
    'RCPT alice@example.net',
    `DATA size=${MESSAGE.length} digest=${DIGEST} signers=example.org send=full`,
  ]);
  // Eager data (§60.10.4): the view goes right behind the DATA, before any answer.
  const kinds = c.actions.map((a) => (a.type === 'command' ? a.command.verb : a.type));
  assert.equal(kinds.indexOf('send-view'), kinds.indexOf('DATA') + 1);
  c.reply('250 2.1.5 rcpt=alice@example.net');
  c.reply('354 2.0.0 view=full');
  assert.equal(c.state.phase, 'sending');
  c.event({ type: 'view-sent' });
  assert.equal(c.state.phase, 'answers');
  c.reply('250 2.0.0 rcpt=alice@example.net id=r-9');
  assert.deepEqual(
    c.result().recipients.map((r) => [r.rcpt, r.reply.code]),
    [['alice@example.net', 250]],
  );
});

test('eager data: a 354 naming another view than full is out of step: the session fails', () => {
  const c = new Scripted({ job: deliver(['alice@example.net']) });
  c.reply(GREETING);
  c.reply('250 2.0.0 domain=example.org proof=pass csv=pass eager=65536');
  assert.match(c.sent.at(-1)!, / send=full$/);
  c.event({ type: 'view-sent' });
  c.reply('250 2.1.5 rcpt=alice@example.net');
  c.reply('354 2.0.0 view=headers');
  assert.ok(c.result().failure !== undefined);
});

test('a cookie issued by a redirect target: PROVE first, then STATUS; a bad proof sends no STATUS', () => {
  const prove = {
    rcpt: 'alice@example.net',
    fingerprint: fingerprint(KEYS.alice.publicKey),
    nonce: NONCE,
  };
  const ok = new Scripted({ job: { kind: 'status', cookie: 'ck-7', prove }, binding: BINDING });
  ok.reply(GREETING);
  ok.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
  assert.deepEqual(ok.sent.slice(1), [`PROVE alice@example.net nonce=${NONCE}`]);
  ok.reply(proveAnswer());
  assert.equal(ok.sent.at(-1), 'STATUS ck-7');
  ok.reply('250 2.0.0 cookie=ck-7 rcpt=alice@example.net state=accepted id=r-1');
  assert.deepEqual(
    ok.result().recipients.map((r) => [r.cookie, r.reply.code, r.reply.params.state]),
    [['ck-7', 250, 'accepted']],
  );

  for (const job of [
    { kind: 'status', cookie: 'ck-7', prove },
    {
      kind: 'cookies',
      ops: [
        { op: 'status', cookie: 'ck-7' },
        { op: 'giveup', cookie: 'ck-8' },
      ],
      prove,
    },
  ] as ClientJob[]) {
    const bad = new Scripted({ job, binding: BINDING });
    bad.reply(GREETING);
    bad.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
    bad.reply(proveAnswer(KEYS.stranger));
    // Nothing about the cookie reaches an endpoint that did not prove the key.
    assert.ok(!bad.sent.some((l) => l.startsWith('STATUS') || l.startsWith('GIVEUP')));
    const r = bad.result();
    assert.equal(r.failure, undefined);
    assert.deepEqual(
      r.recipients.map((x) => [x.cookie, x.reply.code, x.reply.params.err]),
      (job.kind === 'cookies' ? ['ck-7', 'ck-8'] : ['ck-7']).map((c) => [
        c,
        451,
        'NMTP_ERR_TRANSPORT_REDIRECT_FAILED',
      ]),
    );
  }
});

const failedRedirect = (c: Scripted, why: RegExp): void => {
  const r = c.result();
  assert.equal(r.failure, undefined);
  assert.equal(r.recipients.length, 1);
  assert.equal(r.recipients[0]!.rcpt, 'alice@example.net');
  assert.equal(r.recipients[0]!.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
  assert.match(r.recipients[0]!.reply.text, why);
  // No RCPT and no DATA at a target that did not prove the key: straight to QUIT.
  assert.ok(!c.sent.some((l) => l.startsWith('RCPT') || l.startsWith('DATA')));
  assert.equal(c.sent.at(-1), 'QUIT');
};

test('PROVE mismatch: the target proves another key → redirect failed, nothing delivered', () => {
  const c = helloed();
  c.reply(proveAnswer(KEYS.stranger));
  failedRedirect(c, /another key/);
});

test('PROVE no key: 550 PROVE_NO_KEY → redirect failed', () => {
  const c = helloed();
  c.reply('550 5.7.1 rcpt=alice@example.net err=NMTP_ERR_TRANSPORT_PROVE_NO_KEY');
  failedRedirect(c, /NMTP_ERR_TRANSPORT_PROVE_NO_KEY/);
});

test('PROVE bad proof: the right key, signed for another TLS binding → redirect failed', () => {
  const c = helloed();
  c.reply(proveAnswer(KEYS.alice, toBase64url(seq(0x60, 32))));
  assert.ok(c.actions.some((a) => a.type === 'verify-prove'));
  failedRedirect(c, /does not verify/);
});

test('PROVE answered for another address, or without key/proof → redirect failed', () => {
  const other = helloed();
  other.reply(proveAnswer(KEYS.alice, BINDING, 'bob@example.net'));
  failedRedirect(other, /another address/);
  const bare = helloed();
  bare.reply('250 2.7.0 rcpt=alice@example.net');
  failedRedirect(bare, /without a key/);
});

test('a 351 from a redirect target is that recipient’s REDIRECT_FAILED (one redirect only)', () => {
  const c = helloed();
  c.reply(proveAnswer());
  c.reply('351 2.1.5 rcpt=alice@example.net redirect=elsewhere.example:4025 key=SHA256:x');
  c.reply('503 5.5.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS');
  const r = c.result().recipients[0]!;
  assert.equal(r.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
});

test('redirect=failed: sent on the RCPT; a 351 in answer is REDIRECT_FAILED', () => {
  const c = new Scripted({
    job: {
      ...deliver(['roaming@example.net', 'bob@example.net']),
      redirectFailed: ['roaming@example.net'],
    } as ClientJob,
  });
  c.reply(GREETING);
  c.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
  assert.deepEqual(c.sent.slice(1, 3), [
    'RCPT roaming@example.net redirect=failed',
    'RCPT bob@example.net',
  ]);
  c.reply('351 2.1.5 rcpt=roaming@example.net redirect=x.example:1 key=SHA256:x');
  c.reply('550 5.1.1 rcpt=bob@example.net err=NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED');
  c.reply('503 5.5.1 err=NMTP_ERR_TRANSPORT_NO_RECIPIENTS');
  const [roaming, bob] = c.result().recipients;
  assert.equal(roaming!.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
  assert.equal(bob!.reply.code, 550);
});

test('421 in the middle of a pipeline fails the session; idle sessions ignore stale timers', () => {
  const c = new Scripted({ job: deliver(['a@example.net', 'b@example.net']) });
  c.reply(GREETING);
  c.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
  c.reply('250 2.1.5 rcpt=a@example.net');
  c.reply('421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT');
  const r = c.result();
  assert.equal((r.failure as { code: number }).code, 421);
  assert.equal(c.state.phase, 'closed');

  const idle = new Scripted({ keepOpen: true });
  idle.reply(GREETING);
  idle.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
  assert.equal(idle.state.phase, 'idle');
  assert.ok(idle.actions.some((a) => a.type === 'ready'));
  idle.event({ type: 'timeout' });
  assert.equal(idle.state.phase, 'idle');
  // A job while another is in progress is not taken; finish waits for the job's end.
  idle.event({ type: 'job', job: { kind: 'status', cookie: 'ck-1' } });
  idle.event({ type: 'job', job: { kind: 'status', cookie: 'ck-2' } });
  idle.event({ type: 'finish' });
  assert.deepEqual(idle.sent.slice(1), ['STATUS ck-1']);
  idle.reply('250 2.0.0 cookie=ck-1 rcpt=a@example.net state=accepted id=r-1');
  assert.deepEqual(idle.sent.slice(1), ['STATUS ck-1', 'QUIT']);
  idle.reply('221 2.0.0');
  assert.equal(idle.state.phase, 'closed');
});

test('entering sending stops the data timer before the view is sent; a stale timeout there changes nothing', () => {
  const c = new Scripted({ job: deliver(['a@example.net']), pipelining: false });
  c.reply(GREETING);
  c.reply('250 2.0.0 domain=example.org proof=pass csv=pass');
  c.reply('250 2.1.5 rcpt=a@example.net');
  assert.equal(c.state.phase, 'data');
  const before = c.actions.length;
  c.reply('354 2.0.0 view=full');
  assert.equal(c.state.phase, 'sending');
  // "sending: 0 — no timer" (§60.10.7): the host clears the one `data` started (set-timer
  // 0 means none) before it writes the chunks, however long that takes.
  assert.deepEqual(
    c.actions.slice(before).map((a) => a.type),
    ['set-timer', 'send-view'],
  );
  assert.deepEqual(c.actions[before], { type: 'set-timer', seconds: 0 });
  c.event({ type: 'timeout' });
  assert.equal(c.state.phase, 'sending');
  assert.equal(c.actions.filter((a) => a.type === 'result').length, 0);
  // After the view, the answers state has its own timer again.
  c.event({ type: 'view-sent' });
  assert.equal(c.state.phase, 'answers');
  assert.deepEqual(c.actions.at(-1), { type: 'set-timer', seconds: 600 });
  c.reply('250 2.0.0 rcpt=a@example.net id=r-1');
  assert.equal(c.result().recipients[0]?.reply.code, 250);
});

// --- against the reference server's PROVE (§60.10.8) -----------------------------------------

test('PROVE against the reference server: the transcript’s exchange, then a 351 there is final', () => {
  const t = loadTranscripts().find((x) => x.name === 'transfer-prove.txt')!;
  const nonce = /nonce=(\S+)/.exec(t.text)![1]!;
  const job: ClientJob = {
    ...deliver(['roaming@example.net']),
    prove: {
      rcpt: 'roaming@example.net',
      fingerprint: fingerprint(KEYS.alice.publicKey),
      nonce,
    },
  } as ClientJob;
  const run = converse(t.directives as Record<string, string[]>, job);
  const lines = (b: Uint8Array): string[] => dec(b).split('\r\n');
  const want = (who: 'C' | 'S'): string[] =>
    t.lines.filter((l) => l.who === who && l.form === ':').map((l) => l.text);
  // Greeting, HELLO, PROVE and the key proof exactly as in the transcript.
  assert.deepEqual(lines(run.client).slice(0, 2), want('C').slice(0, 2));
  assert.deepEqual(lines(run.server).slice(0, 3), want('S').slice(0, 3));
  // The proof held, so the client went on to RCPT there; this world's decider redirects
  // roaming again, which "is that recipient's temporary failure" (one redirect only).
  assert.match(dec(run.client), /RCPT roaming@example\.net\r\n/);
  const r = run.results[0]!.recipients[0]!;
  assert.equal(r.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
  assert.equal(r.reply.enhanced, '4.4.6');
});

test('PROVE against the reference server for a recipient it holds no key for → redirect failed', () => {
  const job: ClientJob = {
    ...deliver(['alice@example.net']),
    prove: {
      rcpt: 'alice@example.net',
      fingerprint: fingerprint(KEYS.alice.publicKey),
      nonce: NONCE,
    },
  } as ClientJob;
  const run = converse({ server: ['roaming-laptop.example.net'] }, job);
  assert.match(
    dec(run.server),
    /550 5\.7\.1 rcpt=alice@example\.net err=NMTP_ERR_TRANSPORT_PROVE_NO_KEY/,
  );
  assert.ok(!dec(run.client).includes('RCPT'));
  const r = run.results[0]!.recipients[0]!;
  assert.equal(r.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
  assert.equal(r.reply.enhanced, '4.7.0');
});

test('the fallback with redirect=failed against the reference server: taken, or 450', () => {
  const job: ClientJob = {
    ...deliver(['roaming@example.net', 'stubborn@example.net']),
    redirectFailed: ['roaming@example.net', 'stubborn@example.net'],
  } as ClientJob;
  const run = converse({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] }, job);
  assert.match(
    dec(run.client),
    /RCPT roaming@example\.net redirect=failed\r\nRCPT stubborn@example\.net redirect=failed\r\n/,
  );
  assert.deepEqual(
    run.results[0]!.recipients.map((r) => `${r.rcpt} ${r.reply.code}`),
    ['stubborn@example.net 450', 'roaming@example.net 250'],
  );
});

test('a greeting naming another server than the verified certificate: no proof is signed, the session fails with the code', () => {
  const c = new Scripted({ job: { kind: 'status', cookie: 'c' }, verifiedName: 'mx.example.net' });
  c.reply(GREETING);
  assert.equal(c.state.phase, 'closed');
  assert.ok(!c.actions.some((a) => a.type === 'sign-proof'), 'no proof for another server');
  assert.deepEqual(c.sent, []);
  const failure = c.result().failure;
  assert.ok(failure instanceof NmtpError);
  assert.equal(failure.code, 'NMTP_ERR_TRANSPORT_SERVER_NAME_MISMATCH');
});

test('the verified name and the greeting compare ASCII case-insensitively; without a verified name any server name is taken', () => {
  const same = new Scripted({
    job: { kind: 'status', cookie: 'c' },
    verifiedName: 'Roaming-Laptop.example.NET',
  });
  same.reply(GREETING);
  assert.equal(same.state.phase, 'hello');
  assert.match(same.sent[0] ?? '', /^HELLO example\.org sel=s2026 proof=/);
  const any = new Scripted({ job: { kind: 'status', cookie: 'c' } });
  any.reply(GREETING);
  assert.equal(any.state.phase, 'hello');
});
