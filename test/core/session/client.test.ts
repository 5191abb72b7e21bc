/**
 * The transfer client reducer against the transfer server reducer, in memory: for the
 * transcripts that are one client job, the client must produce exactly the transcript's
 * client octets (and the server its server octets) — two independent machines agreeing on
 * the wire. Also: the client's reactions to failures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signMessage } from '../../../src/core/message/index.ts';
import { decodeMessage } from '../../../src/core/frame/index.ts';
import { ed25519, toBase64url } from '../../../src/core/sign/index.ts';
import {
  WireDecoder,
  NEED_MORE,
  END,
  encodeCommand,
  encodeChunks,
} from '../../../src/core/wire/index.ts';
import {
  initialTransferClient,
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
}

function converse(
  directives: Record<string, string[]>,
  job: ClientJob,
  signer = KEYS['example.org'],
): Run {
  const server = new ServerRun(directives);
  const dec = new WireDecoder('client');
  let state: TransferClientState = initialTransferClient({
    domain: 'example.org',
    selector: 's2026',
    job,
  });
  const clientOut: Uint8Array[] = [];
  const serverOut: Uint8Array[] = [];
  const results: Run['results'] = [];
  const inbox: Uint8Array[] = [server.takeGreeting()];
  const toServer = (b: Uint8Array): void => {
    clientOut.push(b);
    inbox.push(server.feed(b));
  };
  const dispatch = (e: TransferClientEvent): void => {
    const step = transferClient(state, e);
    state = step.state;
    for (const a of step.actions) {
      if (a.type === 'command') toServer(encodeCommand(a.command));
      else if (a.type === 'sign-proof')
        dispatch({ type: 'proof-signed', signature: toBase64url(ed25519.sign(signer, a.input)) });
      else if (a.type === 'send-view') {
        for (const c of encodeChunks(view(a.view))) toServer(c);
        dispatch({ type: 'view-sent' });
      } else if (a.type === 'result') results.push(a);
    }
  };
  while (inbox.length > 0) {
    const b = inbox.shift()!;
    serverOut.push(b);
    dec.push(b);
    for (;;) {
      const it = dec.next();
      if (it === NEED_MORE || it === END) break;
      dispatch({ type: 'wire', item: it });
    }
  }
  return { client: concat(clientOut), server: concat(serverOut), results };
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
  test(`client reducer reproduces the client side of ${name}`, () => {
    const t = loadTranscripts().find((x) => x.name === name)!;
    const run = converse(t.directives as Record<string, string[]>, job);
    assert.equal(dec(run.client), dec(concat(t.lines.filter((l) => l.who === 'C').map(lineBytes))));
    assert.equal(dec(run.server), dec(concat(t.lines.filter((l) => l.who === 'S').map(lineBytes))));
    assert.equal(run.results.length, 1);
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
  const run = converse(
    { challenge: ['oKGio6SlpqeoqaqrrK2urw'] },
    deliver(['alice@example.net']),
    KEYS.stranger,
  );
  const failure = run.results[0]!.failure as { code: number; params: Record<string, string> };
  assert.equal(failure.code, 535);
  assert.equal(failure.params.err, 'NMTP_ERR_TRANSPORT_PROOF_INVALID');
});

test('client: nobody accepted → no DATA, just QUIT', () => {
  const run = converse({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] }, deliver(['nobody@example.net']));
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
