/**
 * The server side of redirects (docs/protocol.md §60.10.2, §60.10.8): PROVE — every row of
 * the §60.10.8 table, the byte-exact prove input with the connection's binding, the
 * prove-wait state — and RCPT redirect=failed on both services. Driven through the reducer
 * directly, so each host action and event is visible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import {
  TRANSFER_SERVER_STATES,
  initialSubmissionServer,
  initialTransferServer,
  proveInput,
  submissionServer,
  transferServer,
  type SubmissionEvent,
  type SubmissionState,
  type TransferServerAction,
  type TransferServerEvent,
  type TransferServerState,
} from '../../../src/core/session/index.ts';
import { ed25519, fromBase64url, toBase64url } from '../../../src/core/sign/index.ts';
import { printReplyLine, type Command } from '../../../src/core/wire/index.ts';
import { loadTranscripts } from './transcript.ts';
import { KEYS } from './world.ts';

const CHALLENGE = 'oKGio6SlpqeoqaqrrK2urw';
const SERVER = 'mx.example.net';
const BINDING = toBase64url(Uint8Array.from({ length: 32 }, (_, i) => 0xe0 ^ i));
const NONCE = toBase64url(Uint8Array.from({ length: 16 }, (_, i) => 0x20 + i));

type Action = TransferServerAction;

/** A transfer server driven event by event; `replies` are the wire lines of the last step. */
class Machine {
  state: TransferServerState;
  actions: readonly Action[] = [];
  constructor(binding?: string) {
    this.state = initialTransferServer({ serverName: SERVER });
    this.send({
      type: 'connected',
      challenge: CHALLENGE,
      ip: '192.0.2.10',
      ...(binding === undefined ? {} : { binding }),
    });
  }
  send(e: TransferServerEvent): readonly Action[] {
    const step = transferServer(this.state, e);
    this.state = step.state;
    this.actions = step.actions;
    return step.actions;
  }
  command(verb: Command['verb'], args: string[], params: Record<string, string> = {}) {
    return this.send({
      type: 'wire',
      item: { kind: 'command', offset: 0, command: { verb, args, params } },
    });
  }
  replies(): string[] {
    return this.actions.flatMap((a) => (a.type === 'reply' ? [printReplyLine(a.reply)] : []));
  }
  /** HELLO answered pass/pass: the session is in `ready`. */
  hello(): this {
    this.command('HELLO', ['example.org'], { sel: 's2026', proof: 'A'.repeat(86) });
    this.send({ type: 'proof-result', result: 'pass' });
    this.send({ type: 'txt-result', answer: { status: 'nxdomain' } });
    assert.equal(this.state.phase, 'ready');
    return this;
  }
  hostAction<T extends Action['type']>(type: T): Extract<Action, { type: T }> {
    const a = this.actions.find((x) => x.type === type);
    assert.ok(a, `expected a ${type} action, got ${JSON.stringify(this.actions)}`);
    return a as Extract<Action, { type: T }>;
  }
}

test('state table: PROVE is allowed in ready only; prove-wait waits 30 s for the host', () => {
  for (const [phase, info] of Object.entries(TRANSFER_SERVER_STATES)) {
    assert.equal(
      (info.allowed as readonly string[]).includes('PROVE'),
      phase === 'ready',
      `${phase} and PROVE`,
    );
  }
  assert.equal(TRANSFER_SERVER_STATES['prove-wait'].timeout, 30);
  assert.deepEqual(TRANSFER_SERVER_STATES['prove-wait'].allowed, []);
});

test('PROVE asks the host to sign the exact prove input, with the binding of "connected"', () => {
  const m = new Machine(BINDING).hello();
  m.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  assert.equal(m.state.phase, 'prove-wait');
  const a = m.hostAction('prove');
  assert.equal(a.rcpt, 'roaming@example.net');
  assert.equal(
    Buffer.from(a.input).toString(),
    `NMTP-PROVE-1\n${NONCE}\n${CHALLENGE}\n${SERVER}\n${BINDING}\nroaming@example.net`,
  );
  assert.deepEqual(a.input, proveInput(NONCE, CHALLENGE, SERVER, BINDING, 'roaming@example.net'));
  assert.ok(m.actions.some((x) => x.type === 'set-timer' && x.seconds === 30));
  assert.deepEqual(m.replies(), [], 'no reply until the host answers');
});

test('without a binding in "connected" (plaintext) the binding line is empty', () => {
  const m = new Machine().hello();
  m.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  assert.equal(
    Buffer.from(m.hostAction('prove').input).toString(),
    `NMTP-PROVE-1\n${NONCE}\n${CHALLENGE}\n${SERVER}\n\nroaming@example.net`,
  );
});

test('§60.10.8 row "holds a key": 250 2.7.0 rcpt= key= proof=, and the proof verifies', () => {
  const m = new Machine(BINDING).hello();
  m.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  const input = m.hostAction('prove').input;
  const signature = ed25519.sign(KEYS.alice, input);
  m.send({ type: 'proved', key: KEYS.alice.publicKey, signature });
  const key = toBase64url(KEYS.alice.publicKey);
  assert.deepEqual(m.replies(), [
    `250 2.7.0 rcpt=roaming@example.net key=${key} proof=${toBase64url(signature)}`,
  ]);
  assert.equal(m.state.phase, 'ready');
  assert.equal(m.state.errors, 0);
  // What a sender does with the reply: verify over the input it computes itself.
  const proof = fromBase64url(/proof=(\S+)/.exec(m.replies()[0]!)![1]!, 64)!;
  const mine = proveInput(NONCE, CHALLENGE, SERVER, BINDING, 'roaming@example.net');
  assert.ok(ed25519.verify(KEYS.alice.publicKey, mine, proof));
  // Another binding (another connection) gives another input: the proof is worthless there.
  const other = proveInput(
    NONCE,
    CHALLENGE,
    SERVER,
    toBase64url(new Uint8Array(32)),
    'roaming@example.net',
  );
  assert.ok(!ed25519.verify(KEYS.alice.publicKey, other, proof));
});

test('§60.10.8 row "no key": 550 5.7.1 rcpt= PROVE_NO_KEY; the session goes on in ready', () => {
  const m = new Machine().hello();
  m.command('PROVE', ['alice@example.net'], { nonce: NONCE });
  m.send({ type: 'proved', none: true });
  assert.deepEqual(m.replies(), [
    '550 5.7.1 rcpt=alice@example.net err=NMTP_ERR_TRANSPORT_PROVE_NO_KEY',
  ]);
  assert.equal(m.state.phase, 'ready');
  // An answer, like a rejected RCPT, not a refused command: the error budget is untouched.
  assert.equal(m.state.errors, 0);
  m.command('RCPT', ['alice@example.net']);
  assert.equal(m.state.phase, 'rcpt-wait');
});

test('§60.10.8 row "malformed address": 501 5.1.3 rcpt=<as sent>, as RCPT answers it', () => {
  const m = new Machine().hello();
  for (const [raw, code] of [
    ['not-an-address', 'NMTP_ERR_ADDR_MISSING_AT'],
    ['roaming@Example.NET', 'NMTP_ERR_ADDR_NOT_CANONICAL'],
  ] as const) {
    m.command('PROVE', [raw], { nonce: NONCE });
    assert.deepEqual(m.replies(), [
      `501 5.1.3 rcpt=${raw} err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # ${code}`,
    ]);
    assert.equal(m.state.phase, 'ready');
  }
  assert.equal(m.state.errors, 2);
});

test('§60.10.8 row "bad nonce": not 16..64 octets of canonical base64url is 501 5.5.4', () => {
  const b64 = (n: number): string => toBase64url(new Uint8Array(n).fill(7));
  for (const nonce of [
    b64(15),
    b64(65),
    b64(0).concat('A'), // one character: not base64url of anything
    `${b64(16)}==`, // padding
    `${b64(16).slice(0, -1)}+`, // not the url alphabet
    'ICEiIyQlJicoKSorLC0uLx', // non-zero trailing bits: not the canonical encoding
  ]) {
    const m = new Machine().hello();
    m.command('PROVE', ['roaming@example.net'], { nonce });
    assert.deepEqual(
      m.replies(),
      [
        '501 5.5.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # nonce must be 16 to 64 octets in base64url',
      ],
      nonce,
    );
    assert.equal(m.state.phase, 'ready');
  }
  for (const n of [16, 40, 64]) {
    const m = new Machine().hello();
    m.command('PROVE', ['roaming@example.net'], { nonce: b64(n) });
    assert.equal(m.state.phase, 'prove-wait', `${n} octets`);
  }
});

test('§60.10.8 row "outside ready": 503 5.5.1 OUT_OF_ORDER before HELLO, in a transaction, while waiting', () => {
  const before = new Machine();
  before.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  assert.deepEqual(before.replies(), ['503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER']);

  const tx = new Machine().hello();
  tx.command('RCPT', ['alice@example.net']);
  tx.send({ type: 'recipient-decision', decision: { kind: 'accept' } });
  assert.equal(tx.state.phase, 'recipients');
  tx.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  assert.deepEqual(tx.replies(), ['503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER']);
  assert.equal(tx.state.phase, 'recipients');

  const waiting = new Machine().hello();
  waiting.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  waiting.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  assert.deepEqual(waiting.replies(), ['503 5.5.1 err=NMTP_ERR_TRANSPORT_OUT_OF_ORDER']);
  assert.equal(waiting.state.phase, 'prove-wait');
});

test('a "proved" event outside prove-wait is a host bug: ignored', () => {
  const m = new Machine().hello();
  assert.deepEqual(m.send({ type: 'proved', none: true }), []);
  assert.deepEqual(
    m.send({ type: 'proved', key: KEYS.alice.publicKey, signature: new Uint8Array(64) }),
    [],
  );
  assert.equal(m.state.phase, 'ready');
});

test('a host that never signs: prove-wait times out with 421 4.4.2', () => {
  const m = new Machine().hello();
  m.command('PROVE', ['roaming@example.net'], { nonce: NONCE });
  m.send({ type: 'timeout' });
  assert.deepEqual(m.replies(), ['421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT']);
  assert.equal(m.state.phase, 'closed');
});

// --- RCPT redirect=failed ----------------------------------------------------------------------

test('RCPT redirect=failed is passed to the decider; without it the question has no such field', () => {
  const m = new Machine().hello();
  m.command('RCPT', ['roaming@example.net'], { redirect: 'failed' });
  assert.deepEqual(m.hostAction('decide-recipient'), {
    type: 'decide-recipient',
    domain: 'example.org',
    rcpt: 'roaming@example.net',
    redirectFailed: true,
  });
  m.send({ type: 'recipient-decision', decision: { kind: 'accept' } });
  assert.deepEqual(m.replies(), ['250 2.1.5 rcpt=roaming@example.net']);

  m.command('RCPT', ['alice@example.net']);
  assert.deepEqual(m.hostAction('decide-recipient'), {
    type: 'decide-recipient',
    domain: 'example.org',
    rcpt: 'alice@example.net',
  });
});

test('a decider that still redirects after redirect=failed is answered 450 4.2.1, not 351', () => {
  const redirect = {
    kind: 'redirect',
    host: 'roaming-laptop.example.net',
    port: 4025,
    fingerprint: 'SHA256:UZyuk-k60BHXhTVYlEBe2PqBYsblStoTO7ttu5Mt9Xs',
  } as const;
  const m = new Machine().hello();
  m.command('RCPT', ['roaming@example.net'], { redirect: 'failed' });
  m.send({ type: 'recipient-decision', decision: redirect });
  assert.deepEqual(m.replies(), [
    '450 4.2.1 rcpt=roaming@example.net err=NMTP_ERR_TRANSPORT_RECIPIENT_UNAVAILABLE',
  ]);
  assert.equal(m.state.phase, 'ready');
  // The flag belongs to that one RCPT: the next one may be redirected.
  m.command('RCPT', ['roaming@example.net']);
  m.send({ type: 'recipient-decision', decision: redirect });
  assert.match(m.replies()[0]!, /^351 2\.1\.5 rcpt=roaming@example\.net redirect=/);
  assert.equal(m.state.pendingRedirectFailed, undefined);
});

test('any other redirect value is 501 5.5.4 BAD_ARGUMENT; the decider is not asked', () => {
  const m = new Machine().hello();
  for (const value of ['yes', 'FAILED', 'failed,again']) {
    m.command('RCPT', ['roaming@example.net'], { redirect: value });
    assert.deepEqual(m.replies(), [
      '501 5.5.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # redirect takes only the value failed',
    ]);
    assert.ok(!m.actions.some((a) => a.type === 'decide-recipient'));
  }
});

test('submission: RCPT with a redirect parameter is 501 5.5.4 BAD_ARGUMENT', () => {
  let s: SubmissionState = initialSubmissionServer({ serverName: 'submit.example.org' });
  const feed = (e: SubmissionEvent): string[] => {
    const step = submissionServer(s, e);
    s = step.state;
    return step.actions.flatMap((a) => (a.type === 'reply' ? [printReplyLine(a.reply)] : []));
  };
  const cmd = (verb: Command['verb'], args: string[], params: Record<string, string> = {}) =>
    feed({ type: 'wire', item: { kind: 'command', offset: 0, command: { verb, args, params } } });
  feed({ type: 'connected', challenge: CHALLENGE, ip: '192.0.2.10' });
  const credentials = Buffer.from('\0alice@example.org\0correct horse').toString('base64url');
  cmd('AUTH', ['PLAIN', credentials]);
  feed({ type: 'auth-result', ok: true });
  assert.equal(s.phase, 'ready');
  for (const value of ['failed', 'yes']) {
    assert.deepEqual(cmd('RCPT', ['bob@example.net'], { redirect: value }), [
      '501 5.5.4 err=NMTP_ERR_TRANSPORT_BAD_ARGUMENT # redirect is a transfer parameter',
    ]);
  }
  assert.deepEqual(s.recipients, []);
  assert.deepEqual(cmd('RCPT', ['bob@example.net']), ['250 2.1.5 rcpt=bob@example.net']);
  // PROVE is a transfer verb.
  assert.deepEqual(cmd('PROVE', ['bob@example.net'], { nonce: NONCE }), [
    '502 5.5.1 err=NMTP_ERR_TRANSPORT_WRONG_SERVICE',
  ]);
});

test('a redirect to an IPv6 literal is sent in brackets, so host:port stays unambiguous', () => {
  const m = new Machine().hello();
  m.command('RCPT', ['roaming@example.net']);
  m.send({
    type: 'recipient-decision',
    decision: { kind: 'redirect', host: '2001:db8::1', port: 4025, fingerprint: 'SHA256:x' },
  });
  assert.deepEqual(m.replies(), [
    '351 2.1.5 rcpt=roaming@example.net redirect=[2001:db8::1]:4025 key=SHA256:x',
  ]);
});

test('the proofs in the PROVE transcripts verify under node:crypto, over the empty binding', () => {
  const spki = Buffer.concat([
    Buffer.from('302a300506032b6570032100', 'hex'),
    Buffer.from(KEYS.alice.publicKey),
  ]);
  const alice = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  let checked = 0;
  for (const t of loadTranscripts()) {
    const server = t.directives.server?.[0] ?? 'mx.example.net';
    const challenge = t.directives.challenge?.[0] ?? 'AAAAAAAAAAAAAAAAAAAAAA';
    let nonce: string | undefined;
    for (const l of t.lines) {
      const c = /^PROVE \S+ nonce=(\S+)$/.exec(l.text);
      if (l.who === 'C' && c) nonce = c[1];
      const s = /^250 2\.7\.0 rcpt=(\S+) key=(\S+) proof=(\S+)$/.exec(l.text);
      if (l.who !== 'S' || s === null) continue;
      assert.equal(s[2], toBase64url(KEYS.alice.publicKey), t.name);
      const input = `NMTP-PROVE-1\n${nonce}\n${challenge}\n${server}\n\n${s[1]}`;
      assert.ok(cryptoVerify(null, Buffer.from(input), alice, fromBase64url(s[3]!, 64)!), t.name);
      checked++;
    }
  }
  assert.ok(checked >= 2, `checked ${checked} proofs`);
});
