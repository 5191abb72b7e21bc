/**
 * Reducer properties that transcripts do not show: timeouts, the error budget, the state
 * tables, the byte-exact proof input, CSV evaluation, and "nothing throws out of a reducer"
 * for arbitrary event sequences (fast-check).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  SUBMISSION_SERVER_STATES,
  TRANSFER_SERVER_STATES,
  evaluateCsv,
  initialSubmissionServer,
  initialTransferServer,
  parseIp,
  proofInput,
  submissionServer,
  transferServer,
  type SubmissionEvent,
  type SubmissionState,
  type TransferServerEvent,
  type TransferServerState,
} from '../../../src/core/session/index.ts';
import { VERBS, type Verb } from '../../../src/core/wire/index.ts';
import { ServerRun } from './transcript.ts';

const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

test('proof input is "NMTP-AUTH-1" LF challenge LF server LF identity, byte for byte', () => {
  assert.equal(
    Buffer.from(proofInput('oKGio6SlpqeoqaqrrK2urw', 'mx.example.net', 'example.org')).toString(
      'hex',
    ),
    Buffer.from(
      'NMTP-AUTH-1\noKGio6SlpqeoqaqrrK2urw\nmx.example.net\nexample.org',
      'ascii',
    ).toString('hex'),
  );
});

test('state tables: every state described; allowed verbs belong to the service', () => {
  for (const [table, service] of [
    [TRANSFER_SERVER_STATES, 'transfer'],
    [SUBMISSION_SERVER_STATES, 'submission'],
  ] as const) {
    for (const [phase, info] of Object.entries(table)) {
      assert.ok(info.description.length > 0, phase);
      assert.ok(info.timeout >= 0, phase);
      for (const v of info.allowed as readonly Verb[]) {
        assert.ok(VERBS[v].services.includes(service), `${phase} allows ${v}`);
      }
    }
  }
});

test('silence: the timer answers 421 4.4.2 and closes', () => {
  const run = new ServerRun({ challenge: ['oKGio6SlpqeoqaqrrK2urw'] });
  run.takeGreeting();
  assert.equal(dec(run.timeout()), '421 4.4.2 err=NMTP_ERR_TRANSPORT_TIMEOUT\r\n');
  assert.equal(run.closed, true);
  assert.ok(run.actions.some((a) => a.type === 'set-timer' && a.seconds === 60));
});

test('the timer restarts on complete commands only, not on partial input', () => {
  const run = new ServerRun({});
  run.takeGreeting();
  const timers = (): number => run.actions.filter((a) => a.type === 'set-timer').length;
  const before = timers();
  run.feed(new TextEncoder().encode('NO'));
  assert.equal(timers(), before, 'a partial line must not buy time (one byte a minute)');
  run.feed(new TextEncoder().encode('OP\r\n'));
  assert.equal(timers(), before + 1);
});

test('after 10 refused commands the server closes', () => {
  const run = new ServerRun({});
  run.takeGreeting();
  const out = dec(run.feed(new TextEncoder().encode('RSET\r\n'.repeat(12))));
  const lines = out.split('\r\n').filter((l) => l !== '');
  assert.equal(lines.length, 11);
  assert.match(lines[10]!, /^421 4\.7\.0 /);
  assert.equal(run.closed, true);
});

test('host answers in the wrong state are ignored, not thrown', () => {
  let s: TransferServerState = initialTransferServer({ serverName: 'mx.example.net' });
  for (const e of [
    { type: 'proof-result', result: 'pass' },
    { type: 'recipient-decision', decision: { kind: 'accept' } },
    { type: 'view-choice', choice: { kind: 'view', view: 'full' } },
    { type: 'message-decision', answers: [] },
    { type: 'cookie-state', state: { kind: 'unknown' } },
    { type: 'proved', none: true },
  ] as TransferServerEvent[]) {
    const step = transferServer(s, e);
    assert.deepEqual(step.actions, []);
    s = step.state;
  }
});

test('CSV: record syntax, prefixes, IPv4-mapped clients, result kinds', () => {
  const rec = (t: string) => ({ status: 'ok' as const, records: [[t]] });
  const r = rec('v=NMTPCSV1; ip=192.0.2.0/24,2001:db8::/32,198.51.100.7');
  assert.equal(evaluateCsv(r, '192.0.2.200'), 'pass');
  assert.equal(evaluateCsv(r, '192.0.3.1'), 'fail');
  assert.equal(evaluateCsv(r, '198.51.100.7'), 'pass');
  assert.equal(evaluateCsv(r, '198.51.100.8'), 'fail');
  assert.equal(evaluateCsv(r, '2001:db8:ffff::1'), 'pass');
  assert.equal(evaluateCsv(r, '2001:db9::1'), 'fail');
  assert.equal(evaluateCsv(r, '::ffff:192.0.2.9'), 'pass');
  assert.equal(evaluateCsv({ status: 'nxdomain' }, '192.0.2.1'), 'none');
  assert.equal(evaluateCsv({ status: 'ok', records: [['v=spf1 -all']] }, '192.0.2.1'), 'none');
  assert.equal(evaluateCsv({ status: 'temperror' }, '192.0.2.1'), 'temperror');
  assert.equal(evaluateCsv(rec('v=NMTPCSV1; ip=192.0.2.0/33'), '192.0.2.1'), 'permerror');
  assert.equal(evaluateCsv(rec('v=NMTPCSV1; ip=192.0.02.0/24'), '192.0.2.1'), 'permerror');
  assert.equal(
    evaluateCsv(
      { status: 'ok', records: [['v=NMTPCSV1; ip=192.0.2.1'], ['v=NMTPCSV1; ip=192.0.2.2']] },
      '192.0.2.1',
    ),
    'permerror',
  );
  assert.equal(
    evaluateCsv({ status: 'ok', records: [['v=NMTPCSV1; ', 'ip=192.0.2.1']] }, '192.0.2.1'),
    'pass',
  );
  assert.deepEqual([...parseIp('::1')!], [...new Uint8Array(15), 1]);
  assert.equal(parseIp('1::2::3'), undefined);
  assert.equal(parseIp('256.0.0.1'), undefined);
});

/** Arbitrary wire items and host events: whatever arrives, the reducers answer or ignore. */
const wireItem = fc.oneof(
  fc.constantFrom<TransferServerEvent>(
    { type: 'timeout' },
    { type: 'proof-result', result: 'pass' },
    { type: 'proof-result', result: 'fail' },
    { type: 'txt-result', answer: { status: 'nxdomain' } },
    { type: 'recipient-decision', decision: { kind: 'accept' } },
    { type: 'view-choice', choice: { kind: 'view', view: 'headers' } },
    { type: 'view-choice', choice: { kind: 'unknown-cookie' } },
    { type: 'message-decision', answers: [{ kind: 'accepted', rcpt: 'a@b.example', id: 'r1' }] },
    { type: 'cookie-state', state: { kind: 'given-up', rcpt: 'a@b.example' } },
    { type: 'proved', none: true },
    { type: 'proved', key: new Uint8Array(32), signature: new Uint8Array(64) },
    { type: 'wire', item: { kind: 'chunk', size: 3, last: true, offset: 0 } },
    { type: 'wire', item: { kind: 'chunk-data', bytes: new Uint8Array(3), offset: 0 } },
    { type: 'wire', item: { kind: 'chunk-end', last: true, offset: 0 } },
  ),
  fc
    .record({
      verb: fc.constantFrom(...(Object.keys(VERBS) as Verb[])),
      arg: fc.constantFrom('example.org', 'a@b.example', 'ck-1', 'PLAIN', '!!'),
      flag: fc.boolean(),
    })
    .map(({ verb, arg, flag }): TransferServerEvent => ({
      type: 'wire',
      item: {
        kind: 'command',
        offset: 0,
        command: {
          verb,
          args:
            verb === 'RCPT' ||
            verb === 'STATUS' ||
            verb === 'GIVEUP' ||
            verb === 'HELLO' ||
            verb === 'PROVE'
              ? [arg]
              : [],
          params:
            verb === 'HELLO'
              ? { sel: 's', proof: 'A'.repeat(86) }
              : verb === 'DATA'
                ? { size: '3', digest: 'A'.repeat(43) }
                : verb === 'SEND' || verb === 'SIGN'
                  ? { size: '3' }
                  : verb === 'PROVE'
                    ? { nonce: 'A'.repeat(22) }
                    : verb === 'RCPT' && flag
                      ? { redirect: 'failed' }
                      : {},
        },
      },
    })),
);

test('no event sequence makes a reducer throw (fast-check)', () => {
  fc.assert(
    fc.property(fc.array(wireItem, { maxLength: 30 }), (events) => {
      let t = transferServer(initialTransferServer({ serverName: 'mx.example.net' }), {
        type: 'connected',
        challenge: 'oKGio6SlpqeoqaqrrK2urw',
        ip: '192.0.2.1',
      }).state;
      let s = submissionServer(initialSubmissionServer({ serverName: 'submit.example.org' }), {
        type: 'connected',
        challenge: 'oKGio6SlpqeoqaqrrK2urw',
        ip: '192.0.2.1',
      }).state;
      for (const e of events) {
        t = transferServer(t, e).state;
        s = submissionServer(s, e as SubmissionEvent).state;
      }
      return true;
    }),
    { numRuns: 500 },
  );
});

test('octets beyond the announced size are never handed to storage', () => {
  let s = initialTransferServer({ serverName: 'mx.example.net' });
  const feed = (e: TransferServerEvent) => {
    const step = transferServer(s, e);
    s = step.state;
    return step.actions;
  };
  feed({ type: 'connected', challenge: 'oKGio6SlpqeoqaqrrK2urw', ip: '192.0.2.10' });
  // Drive to the data state directly through its host events.
  s = {
    ...s,
    phase: 'data',
    domain: 'example.org',
    recipients: ['a@b.example'],
    tx: { size: 4, digest: 'x', signers: [], received: 0, view: 'full' },
  };
  const stored = [
    ...feed({ type: 'wire', item: { kind: 'chunk-data', bytes: new Uint8Array(3), offset: 0 } }),
    ...feed({ type: 'wire', item: { kind: 'chunk-data', bytes: new Uint8Array(3), offset: 3 } }),
  ].filter((a) => a.type === 'store-chunk');
  assert.equal(stored.length, 1);
  const end = feed({ type: 'wire', item: { kind: 'chunk-end', last: true, offset: 6 } });
  assert.ok(
    end.some(
      (a) => a.type === 'reply' && a.reply.params.err === 'NMTP_ERR_TRANSPORT_SIZE_MISMATCH',
    ),
  );
});

test('a complete non-LAST chunk restarts the data timer (transfer and submission)', () => {
  // "The timer restarts on every complete command, complete chunk or host answer — never on
  // a partial line or partial chunk" (§60.9).
  const chunk = (bytes: number, last: boolean): TransferServerEvent[] => [
    { type: 'wire', item: { kind: 'chunk', size: bytes, last, offset: 0 } },
    { type: 'wire', item: { kind: 'chunk-data', bytes: new Uint8Array(bytes), offset: 0 } },
    { type: 'wire', item: { kind: 'chunk-end', last, offset: bytes } },
  ];
  const timers = (actions: readonly { type: string; seconds?: number }[]): number[] =>
    actions.flatMap((a) => (a.type === 'set-timer' ? [a.seconds!] : []));

  let t: TransferServerState = {
    ...initialTransferServer({ serverName: 'mx.example.net' }),
    phase: 'data',
    domain: 'example.org',
    recipients: ['a@b.example'],
    tx: { size: 8, digest: 'x', signers: [], received: 0, view: 'full' },
  };
  const tSteps = chunk(4, false).map((e) => {
    const step = transferServer(t, e);
    t = step.state;
    return timers(step.actions);
  });
  // Header and body octets are partial; only the end of the chunk restarts the timer.
  assert.deepEqual(tSteps, [[], [], [TRANSFER_SERVER_STATES.data.timeout]]);
  assert.equal(t.phase, 'data');

  let s: SubmissionState = {
    ...initialSubmissionServer({ serverName: 'submit.example.net' }),
    phase: 'data',
    user: 'u@example.org',
    recipients: ['a@b.example'],
    op: 'SEND',
    size: 8,
  };
  const sSteps = chunk(4, false).map((e) => {
    const step = submissionServer(s, e as SubmissionEvent);
    s = step.state;
    return timers(step.actions);
  });
  assert.deepEqual(sSteps, [[], [], [SUBMISSION_SERVER_STATES.data.timeout]]);
  assert.equal(s.phase, 'data');
  assert.equal(s.received, 4);
});

test('an empty non-LAST chunk, or octets past the announced size, do not restart the data timer (§60.9)', () => {
  // "Only a chunk that carries octets within the announced size counts as complete
  // progress": otherwise `CHUNK 0` every 119 s would hold a session open for ever.
  const chunk = (bytes: number): TransferServerEvent[] => [
    { type: 'wire', item: { kind: 'chunk', size: bytes, last: false, offset: 0 } },
    ...(bytes === 0
      ? []
      : [
          {
            type: 'wire',
            item: { kind: 'chunk-data', bytes: new Uint8Array(bytes), offset: 0 },
          } as const,
        ]),
    { type: 'wire', item: { kind: 'chunk-end', last: false, offset: bytes } },
  ];
  const restarted = (
    events: TransferServerEvent[],
    run: (e: TransferServerEvent) => readonly { type: string }[],
  ): boolean => events.map(run).some((actions) => actions.some((a) => a.type === 'set-timer'));

  let t: TransferServerState = {
    ...initialTransferServer({ serverName: 'mx.example.net' }),
    phase: 'data',
    domain: 'example.org',
    recipients: ['a@b.example'],
    tx: { size: 8, digest: 'x', signers: [], received: 0, view: 'full' },
  };
  const tRun = (e: TransferServerEvent): readonly { type: string }[] => {
    const step = transferServer(t, e);
    t = step.state;
    return step.actions;
  };
  assert.equal(restarted(chunk(0), tRun), false, 'empty chunk');
  assert.equal(restarted(chunk(8), tRun), true, 'progress up to the size');
  assert.equal(restarted(chunk(1), tRun), false, 'octets past the size');

  let s: SubmissionState = {
    ...initialSubmissionServer({ serverName: 'submit.example.net' }),
    phase: 'data',
    user: 'u@example.org',
    recipients: ['a@b.example'],
    op: 'SEND',
    size: 8,
  };
  const sRun = (e: TransferServerEvent): readonly { type: string }[] => {
    const step = submissionServer(s, e as SubmissionEvent);
    s = step.state;
    return step.actions;
  };
  assert.equal(restarted(chunk(0), sRun), false, 'empty chunk');
  assert.equal(restarted(chunk(8), sRun), true, 'progress up to the size');
  assert.equal(restarted(chunk(1), sRun), false, 'octets past the size');
});
