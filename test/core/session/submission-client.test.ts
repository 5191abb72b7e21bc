/**
 * The submission client reducer against the reference submission server reducer, in
 * memory: the jobs that make up each submission transcript must produce exactly the
 * transcript's client octets (and the server its server octets) — two independent machines
 * agreeing on the wire. Also the client's reactions to a server that lies or fails, and the
 * state table against the spec (§60.11.6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { parseCertificate } from '../../../src/core/keys/index.ts';
import { ed25519, toBase64url } from '../../../src/core/sign/index.ts';
import {
  END,
  NEED_MORE,
  WireDecoder,
  encodeChunks,
  encodeCommand,
  type Command,
} from '../../../src/core/wire/index.ts';
import {
  SUBMISSION_CLIENT_STATES,
  initialSubmissionClient,
  proofInput,
  submissionClient,
  type SubmissionClientAction,
  type SubmissionClientConfig,
  type SubmissionClientEvent,
  type SubmissionClientState,
  type SubmissionJob,
  type SubmissionResult,
} from '../../../src/core/session/index.ts';
import { concat, lineBytes, loadTranscripts, ServerRun, unescape } from './transcript.ts';
import { KEYS } from './world.ts';

const enc = new TextEncoder();
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const CHALLENGE = 'oKGio6SlpqeoqaqrrK2urw';
const WORLD = {
  service: ['submission'],
  server: ['submit.example.org'],
  challenge: [CHALLENGE],
};

/** The 104-octet message both transcripts send (the body of their `CHUNK 104 LAST`). */
const MESSAGE = (() => {
  const t = loadTranscripts().find((x) => x.name === 'submission-plain-send-status.txt')!;
  const i = t.lines.findIndex((l) => l.text === 'CHUNK 104 LAST');
  const body = unescape(t.lines[i + 1]!.text);
  return body.subarray(0, body.length - 2);
})();

interface Run {
  client: Uint8Array;
  server: Uint8Array;
  results: Extract<SubmissionClientAction, { type: 'result' }>[];
  payloads: Uint8Array[];
  actions: SubmissionClientAction[];
  state: SubmissionClientState;
}

/**
 * The client reducer against the server reducer, as over a network: what the client sends
 * while handling one batch of server octets travels as one flight, answered at once.
 */
function converse(
  directives: Record<string, string[]>,
  config: SubmissionClientConfig,
  o: { message?: Uint8Array; more?: SubmissionJob[] } = {},
): Run {
  const server = new ServerRun(directives);
  const decoder = new WireDecoder('client');
  const more = [...(o.more ?? [])];
  let state = initialSubmissionClient(config);
  const clientOut: Uint8Array[] = [];
  const serverOut: Uint8Array[] = [];
  const results: Run['results'] = [];
  const actions: SubmissionClientAction[] = [];
  let payload: Uint8Array[] = [];
  const payloads: Uint8Array[] = [];
  const inbox: Uint8Array[] = [server.takeGreeting()];
  let flight: Uint8Array[] = [];
  const events: SubmissionClientEvent[] = [];
  const run = (): void => {
    for (let e = events.shift(); e !== undefined; e = events.shift()) {
      const step = submissionClient(state, e);
      state = step.state;
      for (const a of step.actions) {
        actions.push(a);
        if (a.type === 'command') flight.push(encodeCommand(a.command));
        else if (a.type === 'sign-proof') {
          events.push({
            type: 'proof-signed',
            signature: toBase64url(ed25519.sign(KEYS.alice, a.input)),
          });
        } else if (a.type === 'send-message') {
          assert.equal(a.size, (o.message ?? MESSAGE).length);
          flight.push(...encodeChunks(o.message ?? MESSAGE));
          events.push({ type: 'message-sent' });
        } else if (a.type === 'payload') payload.push(a.bytes.slice());
        else if (a.type === 'result') {
          results.push(a);
          payloads.push(concat(payload));
          payload = [];
        } else if (a.type === 'ready') {
          const next = more.shift();
          events.push(next === undefined ? { type: 'finish' } : { type: 'job', job: next });
        }
      }
    }
  };
  while (inbox.length > 0) {
    const b = inbox.shift()!;
    serverOut.push(b);
    decoder.push(b);
    for (;;) {
      const it = decoder.next();
      if (it === NEED_MORE || it === END) break;
      events.push({ type: 'wire', item: it });
      run();
    }
    if (flight.length > 0) {
      const bytes = concat(flight);
      flight = [];
      clientOut.push(bytes);
      const answer = server.feed(bytes);
      if (answer.length > 0) inbox.push(answer);
    }
  }
  return {
    client: concat(clientOut),
    server: concat(serverOut),
    results,
    payloads,
    actions,
    state,
  };
}

const plain = (password: string): SubmissionJob => ({
  kind: 'auth',
  credentials: { mechanism: 'PLAIN', user: 'alice@example.org', password },
});
const keyAuth: SubmissionJob = {
  kind: 'auth',
  credentials: { mechanism: 'KEY', user: 'alice@example.org', publicKey: KEYS.alice.publicKey },
};
const raw = (
  verb: Command['verb'],
  args: string[],
  params: Record<string, string> = {},
): SubmissionJob => ({
  kind: 'command',
  command: { verb, args, params },
});

const CASES: [string, SubmissionJob[]][] = [
  [
    'submission-plain-send-status.txt',
    [
      // A probe before AUTH (answered 530), a wrong password, then the right one.
      raw('RCPT', ['alice@example.net']),
      plain('wrong'),
      plain('correct horse'),
      {
        kind: 'send',
        recipients: ['alice@example.net', 'carol@example.net'],
        size: MESSAGE.length,
      },
      { kind: 'status', id: 's-1' },
      { kind: 'status', id: 's-9' },
    ],
  ],
  [
    'submission-key-sign-certify.txt',
    [
      keyAuth,
      // SEND without RCPT: the send job refuses that locally, so it goes as a plain command.
      raw('SEND', [], { size: String(MESSAGE.length) }),
      { kind: 'sign', size: MESSAGE.length },
      { kind: 'certify', publicKey: KEYS.alice.publicKey, days: 30 },
      raw('HELLO', ['example.org'], {
        sel: 's2026',
        proof:
          'c_tTo8w0MPRbiyC2Jlvd_s4ORYASeANv71Ud822-EJ8n0fU5e7vgOBTtfRmJ8jn9n3KITxDLn0UUw43c0MPFDA',
      }),
    ],
  ],
];

for (const [name, jobs] of CASES) {
  test(`submission client reproduces the client side of ${name}`, () => {
    const t = loadTranscripts().find((x) => x.name === name)!;
    const client = dec(concat(t.lines.filter((l) => l.who === 'C').map(lineBytes)));
    const server = dec(concat(t.lines.filter((l) => l.who === 'S').map(lineBytes)));
    const run = converse(t.directives as Record<string, string[]>, { jobs });
    assert.equal(dec(run.client), client);
    assert.equal(dec(run.server), server);
    assert.equal(run.results.length, jobs.length);
    assert.equal(run.state.phase, 'closed');
    // Every job's result names the job it answers, in order.
    assert.deepEqual(
      run.results.map((r) => r.job),
      jobs,
    );
  });
}

const byKind = <K extends SubmissionResult['kind']>(run: Run, kind: K) =>
  run.results
    .map((r) => r.result)
    .filter((r): r is Extract<SubmissionResult, { kind: K }> => r.kind === kind);

test('results of the plain transcript as values: auth, the id, per-recipient states', () => {
  const run = converse(WORLD, { jobs: CASES[0]![1] });
  const [probe, auths, send, status] = [
    byKind(run, 'command'),
    byKind(run, 'auth'),
    byKind(run, 'send'),
    byKind(run, 'status'),
  ];
  assert.equal(probe[0]!.ok, false);
  assert.equal(probe[0]!.reply?.params.err, 'NMTP_ERR_TRANSPORT_AUTH_REQUIRED');
  assert.deepEqual(
    auths.map((a) => [a.ok, a.reply?.code, a.user]),
    [
      [false, 535, undefined],
      [true, 235, 'alice@example.org'],
    ],
  );
  assert.equal(send[0]!.ok, true);
  assert.equal(send[0]!.id, 's-1');
  assert.deepEqual(
    send[0]!.rcpts.map((r) => `${r.rcpt} ${r.reply.code}`),
    ['alice@example.net 250', 'carol@example.net 250'],
  );
  assert.equal(status[0]!.ok, true);
  assert.deepEqual(status[0]!.recipients, [
    { rcpt: 'alice@example.net', state: 'accepted' },
    { rcpt: 'carol@example.net', state: 'deferred' },
  ]);
  assert.equal(status[1]!.ok, false);
  assert.equal(status[1]!.reply?.params.err, 'NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN');
  assert.ok(run.results.every((r) => r.result.failure === undefined));
});

test('SIGN and CERTIFY payloads arrive whole: the signed message and a certificate for the key', () => {
  const run = converse(WORLD, { jobs: CASES[1]![1] });
  const sign = byKind(run, 'sign')[0]!;
  const certify = byKind(run, 'certify')[0]!;
  assert.equal(sign.ok, true);
  assert.equal(sign.size, 141);
  const signed = dec(run.payloads[2]!);
  assert.equal(signed.length, 141);
  assert.match(signed, /^NMTP\/1\r\nTrace: signed-by=submit\.example\.org\r\n/);
  assert.equal(certify.ok, true);
  const cert = parseCertificate(dec(run.payloads[3]!).trimEnd());
  assert.equal(cert.user, 'alice@example.org');
  assert.deepEqual(cert.userKey, KEYS.alice.publicKey);
  assert.equal(cert.notAfter - cert.notBefore, 30 * 86400);
});

test('AUTH KEY: the host is asked to sign the proof input of the canonical user address', () => {
  const jobs: SubmissionJob[] = [
    {
      kind: 'auth',
      credentials: { mechanism: 'KEY', user: 'Alice@EXAMPLE.org', publicKey: KEYS.alice.publicKey },
    },
  ];
  const run = converse(WORLD, { jobs });
  const sign = run.actions.find((a) => a.type === 'sign-proof') as { input: Uint8Array };
  // "identity = the user's canonical address (§20.6.1) in UTF-8" (§60.8.1): the domain is
  // case-folded; the local part is kept as written.
  assert.deepEqual(sign.input, proofInput(CHALLENGE, 'submit.example.org', 'Alice@example.org'));
  assert.match(dec(run.client), /^AUTH KEY Alice@example\.org /);
});

test('a send with a refused recipient goes to the others; with nobody accepted, no SEND', () => {
  const run = converse(WORLD, {
    jobs: [
      plain('correct horse'),
      {
        kind: 'send',
        recipients: ['bob@example.net', 'not an address', 'bob@example.net'],
        size: 104,
      },
      { kind: 'send', recipients: ['@bad', 'x@'], size: 104 },
      { kind: 'send', recipients: ['erin@example.net'], size: 104 },
    ],
  });
  const sends = byKind(run, 'send');
  // A recipient that is not one word never reaches the wire: the whole job is refused.
  assert.equal((sends[0]!.failure as NmtpError).code, 'NMTP_ERR_TRANSPORT_BAD_ARGUMENT');
  assert.deepEqual(sends[0]!.rcpts, []);
  assert.equal(sends[1]!.ok, false);
  assert.deepEqual(
    sends[1]!.rcpts.map((r) => `${r.rcpt} ${r.reply.code} ${r.reply.params.err}`),
    ['@bad 501 NMTP_ERR_TRANSPORT_BAD_ARGUMENT', 'x@ 501 NMTP_ERR_TRANSPORT_BAD_ARGUMENT'],
  );
  assert.equal(sends[2]!.id, 's-1');
  const text = dec(run.client);
  assert.equal(text.match(/^SEND /gm)?.length, 1);
  assert.ok(!text.includes('not an address'));
});

test('a duplicate recipient is refused by the server; the message goes to the rest', () => {
  const run = converse(WORLD, {
    jobs: [
      plain('correct horse'),
      {
        kind: 'send',
        recipients: ['bob@example.net', 'BOB@example.net', 'dave@example.net'],
        size: 104,
      },
    ],
  });
  const send = byKind(run, 'send')[0]!;
  assert.equal(send.ok, true);
  assert.deepEqual(
    send.rcpts.map((r) => r.reply.code),
    [250, 250, 250],
  );
  const run2 = converse(WORLD, {
    jobs: [
      plain('correct horse'),
      { kind: 'send', recipients: ['bob@example.net', 'bob@example.net'], size: 104 },
    ],
  });
  const send2 = byKind(run2, 'send')[0]!;
  assert.equal(send2.ok, true);
  assert.equal(send2.rcpts[1]!.reply.params.err, 'NMTP_ERR_TRANSPORT_DUPLICATE_RECIPIENT');
});

test('a refused SEND (552) is followed by RSET, so the next transaction starts empty', () => {
  const big = 64 * 1024 * 1024 + 1;
  const run = converse(WORLD, {
    jobs: [
      plain('correct horse'),
      { kind: 'send', recipients: ['bob@example.net'], size: big },
      { kind: 'send', recipients: ['bob@example.net'], size: 104 },
    ],
  });
  const [refused, sent] = byKind(run, 'send');
  assert.equal(refused!.ok, false);
  assert.equal(refused!.reply?.code, 552);
  assert.equal(refused!.reply?.params.err, 'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE');
  // Without the RSET, the second RCPT would be a duplicate of the first transaction's.
  assert.equal(sent!.ok, true);
  assert.equal(sent!.rcpts[0]!.reply.code, 250);
  assert.match(
    dec(run.client),
    new RegExp(`SEND size=${big}\\r\\nRSET\\r\\nRCPT bob@example\\.net\\r\\n`),
  );
});

test('local refusals: a send without recipients and a malformed id cost no octets', () => {
  const run = converse(WORLD, {
    jobs: [
      plain('correct horse'),
      { kind: 'send', recipients: [], size: 104 },
      { kind: 'status', id: 'no spaces allowed' },
    ],
  });
  const send = byKind(run, 'send')[0]!;
  assert.equal((send.failure as NmtpError).code, 'NMTP_ERR_TRANSPORT_NO_RECIPIENTS');
  const status = byKind(run, 'status')[0]!;
  assert.equal((status.failure as NmtpError).code, 'NMTP_ERR_TRANSPORT_BAD_ARGUMENT');
  assert.equal(
    dec(run.client),
    `AUTH PLAIN ${toBase64url(enc.encode('\0alice@example.org\0correct horse'))}\r\nQUIT\r\n`,
  );
});

test('a kept session goes idle between jobs, takes more, and QUITs when finished', () => {
  const run = converse(
    WORLD,
    { jobs: [plain('correct horse')], keepOpen: true },
    {
      more: [
        { kind: 'send', recipients: ['bob@example.net'], size: 104 },
        { kind: 'status', id: 's-1' },
      ],
    },
  );
  assert.deepEqual(
    run.results.map((r) => [r.result.kind, r.result.ok]),
    [
      ['auth', true],
      ['send', true],
      ['status', true],
    ],
  );
  assert.equal(run.actions.filter((a) => a.type === 'ready').length, 3);
  assert.match(dec(run.client), /STATUS s-1\r\nQUIT\r\n$/);
  // Idle has no timer of its own: entering it stops the session timer.
  const i = run.actions.findIndex((a) => a.type === 'ready');
  assert.deepEqual(run.actions[i + 1], { type: 'set-timer', seconds: 0 });
});

// --- a server that lies, fails or goes away: fed as raw octets ----------------------------

const GREETING = `220 2.0.0 version=NMTP/1 service=submission server=submit.example.org challenge=${CHALLENGE}\r\n`;

/** Feeds server octets to a fresh client; returns every action and the final state. */
function feed(config: SubmissionClientConfig, ...serverText: (string | SubmissionClientEvent)[]) {
  const decoder = new WireDecoder('client');
  let state = initialSubmissionClient(config);
  const actions: SubmissionClientAction[] = [];
  const step = (e: SubmissionClientEvent): void => {
    const out = submissionClient(state, e);
    state = out.state;
    actions.push(...out.actions);
  };
  for (const x of serverText) {
    if (typeof x !== 'string') {
      step(x);
      continue;
    }
    decoder.push(enc.encode(x));
    for (let it = decoder.next(); it !== NEED_MORE && it !== END; it = decoder.next()) {
      step({ type: 'wire', item: it });
    }
  }
  const results = actions.flatMap((a) => (a.type === 'result' ? [a.result] : []));
  const sent = actions.flatMap((a) =>
    a.type === 'command' ? [dec(encodeCommand(a.command))] : [],
  );
  return { state, actions, results, sent };
}

const failureCode = (r: SubmissionResult | undefined): string | undefined => {
  const f = r?.failure;
  return f instanceof NmtpError ? f.code : undefined;
};

test('a greeting of another version or service: close at once, every job fails with it', () => {
  for (const g of [
    GREETING.replace('NMTP/1', 'NMTP/2'),
    GREETING.replace('service=submission', 'service=transfer'),
    '554 5.0.0 # go away\r\n',
  ]) {
    const r = feed({ jobs: [plain('x'), { kind: 'status', id: 's-1' }] }, g);
    assert.equal(r.state.phase, 'closed');
    assert.deepEqual(r.sent, []);
    assert.equal(r.results.length, 2);
    assert.ok(r.results.every((x) => typeof x.failure === 'object' && 'code' in x.failure!));
    assert.equal(r.actions.at(-1)?.type, 'close');
  }
});

test('a payload larger than maxPayload is refused before any chunk: coded, and the session closes', () => {
  const r = feed(
    { jobs: [{ kind: 'certify', publicKey: KEYS.alice.publicKey }], maxPayload: 100 },
    GREETING,
    '250 2.0.0 size=101\r\n',
  );
  assert.equal(failureCode(r.results[0]), 'NMTP_ERR_TRANSPORT_MESSAGE_TOO_LARGE');
  assert.equal(r.state.phase, 'closed');
  assert.ok(!r.actions.some((a) => a.type === 'payload'));
});

test('a payload whose chunks carry more or fewer octets than announced is a size mismatch', () => {
  const job: SubmissionJob = { kind: 'certify', publicKey: KEYS.alice.publicKey };
  const more = feed(
    { jobs: [job] },
    GREETING,
    '250 2.0.0 size=3\r\nCHUNK 2\r\nab\r\nCHUNK 2 LAST\r\ncd\r\n',
  );
  assert.equal(failureCode(more.results[0]), 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH');
  // Only the octets within the announced size were handed out.
  const handed = more.actions.flatMap((a) => (a.type === 'payload' ? [dec(a.bytes)] : []));
  assert.deepEqual(handed, ['ab']);
  const fewer = feed({ jobs: [job] }, GREETING, '250 2.0.0 size=3\r\nCHUNK 2 LAST\r\nab\r\n');
  assert.equal(failureCode(fewer.results[0]), 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH');
  const ok = feed(
    { jobs: [job] },
    GREETING,
    '250 2.0.0 size=3\r\nCHUNK 2\r\nab\r\nCHUNK 1 LAST\r\nc\r\n',
  );
  assert.equal(ok.results[0]!.ok, true);
  assert.deepEqual(ok.sent.at(-1), 'QUIT\r\n');
});

test('a chunk nobody asked for, or a reply during a payload: the server is out of step', () => {
  const stray = feed({ jobs: [{ kind: 'status', id: 's-1' }] }, GREETING, 'CHUNK 1 LAST\r\nx\r\n');
  assert.equal(failureCode(stray.results[0]), 'NMTP_ERR_WIRE_UNEXPECTED_CHUNK');
  const job: SubmissionJob = { kind: 'certify', publicKey: KEYS.alice.publicKey };
  const midway = feed({ jobs: [job] }, GREETING, '250 2.0.0 size=3\r\n250 2.0.0\r\n');
  assert.equal(midway.state.phase, 'closed');
  assert.equal((midway.results[0]!.failure as { code: number }).code, 250);
});

test('timeouts and a dropped connection fail the job in progress and every queued one', () => {
  const jobs: SubmissionJob[] = [plain('x'), { kind: 'status', id: 's-1' }];
  const t = feed({ jobs }, GREETING, { type: 'timeout' });
  assert.deepEqual(
    t.results.map((r) => r.failure),
    ['timeout', 'timeout'],
  );
  assert.equal(t.actions.at(-1)?.type, 'close');
  const c = feed({ jobs }, GREETING, { type: 'closed' });
  assert.deepEqual(
    c.results.map((r) => r.failure),
    ['closed', 'closed'],
  );
  const closing = feed({ jobs }, GREETING, '421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT\r\n');
  assert.equal((closing.results[1]!.failure as { code: number }).code, 421);
});

test('a status line that does not name a recipient state is out of step', () => {
  const r = feed(
    { jobs: [{ kind: 'status', id: 's-1' }] },
    GREETING,
    '250 2.0.0 id=s-1 count=2\r\n250 2.0.0 rcpt=a@example.net state=accepted\r\n250 2.0.0 rcpt=b@example.net state=lost\r\n',
  );
  assert.equal(r.state.phase, 'closed');
  assert.equal(r.results[0]!.ok, false);
  // What arrived before the bad line is still reported.
  assert.deepEqual((r.results[0] as Extract<SubmissionResult, { kind: 'status' }>).recipients, [
    { rcpt: 'a@example.net', state: 'accepted' },
  ]);
});

test('each state sets its own timer from the table', () => {
  const r = feed({ jobs: [{ kind: 'sign', size: 1 }] }, GREETING, '354 2.0.0 view=full\r\n');
  const timers = r.actions.flatMap((a) => (a.type === 'set-timer' ? [a.seconds] : []));
  assert.deepEqual(timers, [
    SUBMISSION_CLIENT_STATES.send.timeout,
    SUBMISSION_CLIENT_STATES.sending.timeout,
  ]);
  const after = submissionClient(r.state, { type: 'message-sent' });
  assert.deepEqual(after.actions, [
    { type: 'set-timer', seconds: SUBMISSION_CLIENT_STATES.answer.timeout },
  ]);
  // A stale timer firing while the host sends the message changes nothing.
  assert.deepEqual(submissionClient(r.state, { type: 'timeout' }).actions, []);
});

test('the state table in docs/protocol.md §60.11.6 is SUBMISSION_CLIENT_STATES', () => {
  const spec = readFileSync(
    fileURLToPath(new URL('../../../docs/protocol.md', import.meta.url)),
    'utf8',
  );
  const start = spec.indexOf('#### 60.11.6 ');
  assert.ok(start > 0, '§60.11.6 exists');
  const section = spec.slice(start, spec.indexOf('\n### ', start));
  const rows = [...section.matchAll(/^\| `([a-z-]+)` \| (\d+|—) \|/gm)].map((m) => [
    m[1],
    m[2] === '—' ? 0 : Number(m[2]),
  ]);
  assert.deepEqual(
    rows,
    Object.entries(SUBMISSION_CLIENT_STATES).map(([k, v]) => [k, v.timeout]),
  );
});
