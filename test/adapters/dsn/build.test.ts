/** Builder rules beyond the golden files: refusals, NOTIFY, RET, envelope, boundaries. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, defaultDsnSources } from '../../../adapters/dsn/index.ts';
import { enhancedStatus } from '../../../src/core/delivery/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { CASES, ORIGINAL, fixedSources } from './cases.ts';

const isCode = (code: string) => (e: unknown) => e instanceof NmtpError && e.code === code;
const failed = CASES.find((c) => c.name === 'failed')!.input;
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

test('never addressed to the null sender', () => {
  for (const returnPath of ['', '<>', '  ', ' <> ']) {
    assert.throws(
      () => buildDsn({ ...failed, returnPath }, fixedSources()),
      isCode('NMTP_ERR_DSN_NULL_SENDER'),
    );
  }
});

test('envelope: MAIL FROM:<> to the return path; From MAILER-DAEMON, Auto-Submitted', () => {
  const b = buildDsn({ ...failed, returnPath: '<alice@legacy.example>' }, fixedSources());
  assert.deepEqual(b.envelope, { mailFrom: '', rcptTo: 'alice@legacy.example' });
  const s = text(b.bytes);
  assert.match(s, /^From: Mail Delivery System <MAILER-DAEMON@example\.net>\r\n/);
  assert.match(s, /\r\nTo: <alice@legacy\.example>\r\n/);
  assert.match(s, /\r\nAuto-Submitted: auto-replied\r\n/);
  assert.match(s, /\r\nDate: Sun, 29 Nov 2026 04:00:00 \+0000\r\n/);
  assert.match(s, /\r\nMessage-Id: <dsn\.fixed@example\.net>\r\n/);
  assert.equal(b.global, false);
  assert.equal(b.eightBit, false);
  assert.equal(b.smtputf8, false);
});

test('NOTIFY filters; nothing reportable is a coded refusal', () => {
  const outcome = failed.recipients[0]!.outcome;
  assert.throws(
    () => buildDsn({ ...failed, recipients: [{ outcome, notify: 'NEVER' }] }, fixedSources()),
    isCode('NMTP_ERR_DSN_NOTHING_TO_REPORT'),
  );
  assert.throws(
    () =>
      buildDsn(
        { ...failed, recipients: [{ outcome, notify: new Set(['SUCCESS']) }] },
        fixedSources(),
      ),
    isCode('NMTP_ERR_DSN_NOTHING_TO_REPORT'),
  );
  const mixed = CASES.find((c) => c.name === 'mixed-multiple')!.input;
  const b = buildDsn(mixed, fixedSources());
  assert.equal(b.reported.length, 4);
  assert.doesNotMatch(text(b.bytes), /quiet@nmtp\.example/);
});

test('RET: FULL returns the message only when something failed; default and HDRS return headers', () => {
  const kinds = (input: Parameters<typeof buildDsn>[0]): string =>
    /Content-Type: (text\/rfc822-headers|message\/rfc822)/.exec(
      text(buildDsn(input, fixedSources()).bytes),
    )?.[1] ?? 'none';
  assert.equal(kinds({ ...failed, ret: 'FULL' }), 'message/rfc822');
  assert.equal(kinds({ ...failed, ret: 'HDRS' }), 'text/rfc822-headers');
  assert.equal(kinds({ ...failed, ret: undefined }), 'text/rfc822-headers');
  assert.equal(kinds({ ...failed, original: undefined }), 'none');
  const delayed = CASES.find((c) => c.name === 'delayed-will-retry')!.input;
  assert.equal(kinds({ ...delayed, ret: 'FULL' }), 'text/rfc822-headers');
  // RFC 2046 §5.2.1: message/rfc822 is never base64/quoted-printable.
  assert.match(
    text(buildDsn({ ...failed, ret: 'FULL' }, fixedSources()).bytes),
    /message\/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n/,
  );
});

test('8-bit body with ASCII headers stays message/rfc822 with 8bit', () => {
  const original = Buffer.from('Subject: x\r\nMessage-ID: <e@x>\r\n\r\nSchöne Grüße\r\n');
  const b = buildDsn({ ...failed, ret: 'FULL', original }, fixedSources());
  assert.match(
    text(b.bytes),
    /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n/,
  );
  assert.equal(b.global, false);
  assert.equal(b.eightBit, true);
});

test('UTF-8 anywhere in the report selects the RFC 6533 global types', () => {
  const g = buildDsn(CASES.find((c) => c.name === 'utf8-global')!.input, fixedSources());
  assert.equal(g.global, true);
  assert.equal(g.smtputf8, true);
  const s = text(g.bytes);
  assert.match(s, /report-type=global-delivery-status/);
  assert.match(
    s,
    /Content-Type: message\/global-delivery-status\r\nContent-Transfer-Encoding: 8bit/,
  );
  assert.match(s, /Content-Type: message\/global\r\n/);
  // rfc822 type with a UTF-8 address is written as utf-8 (RFC 6533 §3).
  const o = failed.recipients[0]!.outcome;
  const u = buildDsn(
    {
      ...failed,
      recipients: [
        {
          outcome: { ...o, originalRecipient: { addrType: 'rfc822', address: 'jürgen@x.example' } },
        },
      ],
    },
    fixedSources(),
  );
  assert.match(text(u.bytes), /Original-Recipient: utf-8; jürgen@x\.example\r\n/);
});

test('bad values are refused, remote text is cleaned', () => {
  const o = failed.recipients[0]!.outcome;
  const bad: Parameters<typeof buildDsn>[0][] = [
    { ...failed, envid: 'a\r\nBcc: x' },
    { ...failed, reportingMta: 'gw example' },
    { ...failed, returnPath: 'a b@c' },
    { ...failed, recipients: [{ outcome: { ...o, recipient: { legacy: 'x\ny@z' } } }] },
    { ...failed, recipients: [{ outcome: { ...o, remoteMta: 'a;b c' } }] },
    { ...failed, recipients: [{ outcome: { ...o, remoteMta: 'a;b' } }] },
    { ...failed, receivedFromMta: 'x(comment)' },
  ];
  for (const input of bad) {
    assert.throws(() => buildDsn(input, fixedSources()), isCode('NMTP_ERR_DSN_BAD_FIELD'));
  }
  assert.throws(
    () =>
      buildDsn(
        { ...failed, recipients: [{ outcome: { ...o, status: enhancedStatus('2.0.0') } }] },
        fixedSources(),
      ),
    isCode('NMTP_ERR_DSN_BAD_OUTCOME'),
  );
  const cleaned = buildDsn(
    {
      ...failed,
      recipients: [
        { outcome: { ...o, diagnostic: { type: 'smtp', text: '550 a\r\nInjected: yes\x00' } } },
      ],
    },
    fixedSources(),
  );
  assert.match(text(cleaned.bytes), /Diagnostic-Code: smtp; 550 a Injected: yes\r\n/);
});

test('a boundary that occurs in the content is replaced; endless collisions are coded', () => {
  const original = Buffer.concat([ORIGINAL, Buffer.from('--clash\r\n')]);
  const b = buildDsn({ ...failed, ret: 'FULL', original }, fixedSources(['clash', 'fresh']));
  assert.match(text(b.bytes), /boundary="fresh"/);
  assert.throws(
    () => buildDsn({ ...failed, ret: 'FULL', original }, fixedSources(['clash'])),
    isCode('NMTP_ERR_DSN_BOUNDARY_COLLISION'),
  );
  assert.throws(
    () => buildDsn(failed, fixedSources(['bad"quote'])),
    isCode('NMTP_ERR_DSN_BAD_FIELD'),
  );
});

test('default sources give fresh ids and boundaries', () => {
  const a = buildDsn(failed, defaultDsnSources());
  const b = buildDsn(failed, defaultDsnSources());
  const id = (x: Uint8Array) => /Message-Id: (.*)\r\n/.exec(text(x))?.[1];
  const bd = (x: Uint8Array) => /boundary="(.*)"/.exec(text(x))?.[1];
  assert.notEqual(id(a.bytes), id(b.bytes));
  assert.notEqual(bd(a.bytes), bd(b.bytes));
  assert.match(id(a.bytes)!, /^<dsn\.[0-9a-f]{24}@example\.net>$/);
});

test('every line of every case is at most 998 octets and ends in CRLF', () => {
  for (const c of CASES) {
    const s = text(buildDsn(c.input, fixedSources()).bytes);
    assert.ok(s.endsWith('\r\n'), c.name);
    assert.doesNotMatch(s, /[^\r]\n|\r[^\n]/, c.name);
    for (const line of s.split('\r\n')) assert.ok(Buffer.byteLength(line) <= 998, c.name);
  }
});

test('the returned original keeps its octets, whatever the charset', () => {
  const original = Buffer.concat([
    Buffer.from('Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf'),
    Buffer.from([0xe9, 0x0d, 0x0a]),
  ]);
  const b = buildDsn({ ...failed, ret: 'FULL', original }, fixedSources());
  const at = Buffer.from(b.bytes).indexOf(Buffer.from('caf'));
  assert.deepEqual([...b.bytes.subarray(at, at + 6)], [0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a]);
  assert.equal(b.eightBit, true);
});
