/** Field model: names, values, and the structured fields (docs/protocol.md §10.3, §10.5). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checkFieldValue,
  contentTypeParam,
  fieldNameEquals,
  formatAddressList,
  formatContentLength,
  formatContentType,
  formatDate,
  getField,
  getFields,
  isMessageNmtp,
  isMultipart,
  isValidFieldName,
  parseAddressList,
  parseContentLength,
  parseContentType,
  parseDate,
  validateField,
} from '../../../src/core/frame/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { codeOf } from '../../support/code-of.ts';

test('field names: ASCII letters, digits, hyphen; compared case-insensitively', () => {
  for (const ok of ['From', 'x-1', 'CONTENT-LENGTH', '-']) assert.ok(isValidFieldName(ok), ok);
  for (const bad of ['', 'a b', 'a_b', 'a:b', 'Üb', 'a\tb']) assert.ok(!isValidFieldName(bad), bad);
  assert.ok(fieldNameEquals('Content-Length', 'content-LENGTH'));
  assert.ok(!fieldNameEquals('From', 'Fro'));
  const fields = [
    { name: 'X-A', value: '1' },
    { name: 'x-a', value: '2' },
  ];
  assert.equal(getField(fields, 'X-a'), '1');
  assert.deepEqual(getFields(fields, 'X-A'), ['1', '2']);
});

test('field values: controls, NFC, edge spaces', () => {
  assert.equal(checkFieldValue(''), undefined);
  assert.equal(checkFieldValue('a  b'), undefined);
  assert.equal(checkFieldValue('Grüße 👋'), undefined);
  assert.equal(checkFieldValue('a\tb'), 'NMTP_ERR_FRAME_CONTROL_CHAR');
  assert.equal(checkFieldValue('a\u007fb'), 'NMTP_ERR_FRAME_CONTROL_CHAR');
  assert.equal(checkFieldValue('a\u0085b'), 'NMTP_ERR_FRAME_CONTROL_CHAR');
  assert.equal(checkFieldValue('a\u009fb'), 'NMTP_ERR_FRAME_CONTROL_CHAR');
  assert.equal(checkFieldValue('a\u00a0b'), undefined); // NBSP is not a control
  assert.equal(checkFieldValue('e\u0301'), 'NMTP_ERR_FRAME_NOT_NFC');
  assert.equal(checkFieldValue('\udc00'), 'NMTP_ERR_FRAME_UTF8');
  assert.equal(checkFieldValue(' a'), 'NMTP_ERR_FRAME_FIELD_SYNTAX');
  assert.equal(checkFieldValue('a '), 'NMTP_ERR_FRAME_FIELD_SYNTAX');
  assert.equal(
    codeOf(() => validateField({ name: 'Date', value: 'yesterday' })),
    'NMTP_ERR_FRAME_DATE_SYNTAX',
  );
  assert.equal(
    codeOf(() => validateField({ name: 'X', value: 'anything' })),
    'no error',
  );
});

test('Content-Length: digits only, no sign or leading zero, at most 15 digits', () => {
  assert.equal(parseContentLength('0'), 0);
  assert.equal(parseContentLength('999999999999999'), 999_999_999_999_999);
  for (const bad of [
    '',
    '00',
    '01',
    '+1',
    '-1',
    '1.0',
    '1e3',
    ' 1',
    '0x1',
    '1000000000000000',
    '١',
  ]) {
    assert.equal(
      codeOf(() => parseContentLength(bad)),
      'NMTP_ERR_FRAME_LENGTH_SYNTAX',
      bad,
    );
  }
  assert.equal(formatContentLength(42), '42');
  assert.equal(
    codeOf(() => formatContentLength(-1)),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
  assert.equal(
    codeOf(() => formatContentLength(1.5)),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('Content-Type parse and print', () => {
  const ct = parseContentType('text/plain; charset=utf-8; note=a=b c');
  assert.deepEqual(ct, {
    type: 'text',
    subtype: 'plain',
    params: [
      ['charset', 'utf-8'],
      ['note', 'a=b c'],
    ],
  });
  assert.equal(contentTypeParam(ct, 'CHARSET'), 'utf-8');
  assert.equal(formatContentType(ct), 'text/plain; charset=utf-8; note=a=b c');
  assert.ok(isMultipart(parseContentType('Multipart/Alternative')));
  assert.ok(isMessageNmtp(parseContentType('MESSAGE/NMTP')));
  assert.ok(!isMessageNmtp(parseContentType('message/rfc822')));
  assert.deepEqual(parseContentType('application/x; e=').params, [['e', '']]);
  for (const bad of [
    'text',
    'text/',
    '/plain',
    'text/plain;',
    'text/plain;a=b',
    'text/plain;  a=b',
    'text/plain; a',
    'text/plain; =b',
    'text/plain; a=1; a=2',
    'te xt/plain',
  ]) {
    assert.equal(
      codeOf(() => parseContentType(bad)),
      'NMTP_ERR_FRAME_CONTENT_TYPE_SYNTAX',
      bad,
    );
  }
  assert.equal(
    codeOf(() => formatContentType({ type: 'text', subtype: 'plain', params: [['a', 'x;y']] })),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('address lists: angle brackets delimit; display names may hold commas', () => {
  assert.deepEqual(parseAddressList('Doe, John <john@example.org>, <x@y.example>'), [
    { displayName: 'Doe, John', address: 'john@example.org' },
    { address: 'x@y.example' },
  ]);
  assert.deepEqual(parseAddressList('山田 太郎 <taro@例え.jp>'), [
    { displayName: '山田 太郎', address: 'taro@例え.jp' },
  ]);
  for (const bad of [
    '',
    'a@b',
    '<a@b',
    'Ann<a@b>',
    'Ann  <a@b>',
    '<a@b>,<c@d>',
    '<a@b>, ',
    '<a@b> ',
    '<>',
    '<a b>',
    '<a,b>',
    '<a<b>',
    'A > B <a@b>',
    '<a@b>x',
  ]) {
    assert.equal(
      codeOf(() => parseAddressList(bad)),
      'NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX',
      bad,
    );
  }
  // The frame's whitespace is Unicode White_Space: U+FEFF is not, so the frame passes it on
  // for the address layer to judge, while U+3000 (IDEOGRAPHIC SPACE) is refused here.
  assert.deepEqual(parseAddressList('<a@exam\uFEFFple.org>'), [{ address: 'a@exam\uFEFFple.org' }]);
  assert.equal(
    codeOf(() => parseAddressList('<a@exam\u3000ple.org>')),
    'NMTP_ERR_FRAME_ADDRESS_LIST_SYNTAX',
  );
  // The hook sees each raw address with its display name and may refuse it with its own code.
  const seen: [string, string | undefined][] = [];
  parseAddressList('<a@x>, B <b@y>', (a, name) => void seen.push([a, name]));
  assert.deepEqual(seen, [
    ['a@x', undefined],
    ['b@y', 'B'],
  ]);
  assert.equal(
    codeOf(() =>
      parseAddressList('<a@x>', () => {
        throw new NmtpError('NMTP_ERR_ADDR_MISSING_AT');
      }),
    ),
    'NMTP_ERR_ADDR_MISSING_AT',
  );
  assert.equal(
    formatAddressList([{ displayName: 'Doe, John', address: 'j@x' }, { address: 'k@y' }]),
    'Doe, John <j@x>, <k@y>',
  );
  assert.equal(
    codeOf(() => formatAddressList([{ displayName: 'a <b>', address: 'j@x' }])),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('address lists round-trip', () => {
  const display = fc
    .string({ minLength: 1, maxLength: 12 })
    .filter((s) => !/[<>\p{Cc}]/u.test(s) && !s.startsWith(' ') && !s.endsWith(' '));
  const address = fc.stringMatching(/^[a-z0-9.+-]{1,10}@[a-z0-9-]{1,10}\.example$/);
  const mailbox = fc.oneof(
    address.map((a) => ({ address: a })),
    fc.tuple(display, address).map(([d, a]) => ({ displayName: d, address: a })),
  );
  fc.assert(
    fc.property(fc.array(mailbox, { minLength: 1, maxLength: 5 }), (list) => {
      assert.deepEqual(parseAddressList(formatAddressList(list)), list);
    }),
  );
});

test('Date: RFC 3339 with explicit offset', () => {
  assert.deepEqual(parseDate('2026-11-29T03:40:00Z'), {
    epochMs: Date.UTC(2026, 10, 29, 3, 40),
    offsetMinutes: 0,
  });
  assert.deepEqual(parseDate('2026-11-29T09:10:00.5+05:30'), {
    epochMs: Date.UTC(2026, 10, 29, 3, 40, 0, 500),
    offsetMinutes: 330,
  });
  assert.equal(parseDate('2026-11-29T03:40:00-00:00').offsetMinutes, null);
  assert.equal(formatDate(0, null), '1970-01-01T00:00:00-00:00');
  for (const frac of ['001', '009', '07', '5', '999999999']) {
    const ms = Number(frac.padEnd(3, '0').slice(0, 3));
    assert.equal(
      parseDate(`2026-01-01T00:00:00.${frac}Z`).epochMs,
      Date.UTC(2026, 0, 1) + ms,
      frac,
    );
  }
  assert.equal(parseDate('2024-02-29T00:00:00Z').epochMs, Date.UTC(2024, 1, 29));
  assert.equal(parseDate('0001-01-01T00:00:00Z').epochMs, -62135596800000);
  for (const bad of [
    '2026-11-29 03:40:00Z',
    '2026-11-29T03:40:00',
    '2026-11-29t03:40:00z',
    '2025-02-29T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-11-29T24:00:00Z',
    '2026-11-29T03:40:60Z',
    '2026-11-29T03:40:00+24:00',
    '2026-11-29T03:40:00.Z',
    'Sun, 29 Nov 2026 03:40:00 +0000',
  ]) {
    assert.equal(
      codeOf(() => parseDate(bad)),
      'NMTP_ERR_FRAME_DATE_SYNTAX',
      bad,
    );
  }
  assert.equal(formatDate(Date.UTC(2026, 10, 29, 3, 40)), '2026-11-29T03:40:00Z');
  assert.equal(
    formatDate(Date.UTC(2026, 10, 29, 3, 40, 0, 7), 330),
    '2026-11-29T09:10:00.007+05:30',
  );
  assert.equal(formatDate(Date.UTC(2026, 0, 1), -90), '2025-12-31T22:30:00-01:30');
  fc.assert(
    fc.property(
      fc.integer({ min: -62135596800000, max: 253402214400000 }),
      fc.integer({ min: -1439, max: 1439 }),
      (ms, off) => {
        const back = parseDate(formatDate(ms, off));
        assert.equal(back.epochMs, ms);
        assert.equal(back.offsetMinutes, off);
      },
    ),
  );
});
