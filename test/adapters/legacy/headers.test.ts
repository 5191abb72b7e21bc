/**
 * Header pieces of adapters/legacy: folding (fold.ts), dates (date.ts), parameters
 * (params.ts), free text (text.ts). Expected values are written from the RFCs by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { foldField } from '../../../adapters/legacy/fold.ts';
import { toLegacyDate } from '../../../adapters/legacy/date.ts';
import { formatParam } from '../../../adapters/legacy/params.ts';
import { phrase, unstructured } from '../../../adapters/legacy/text.ts';

describe('folding (RFC 5322 §2.1.1, §2.2.3)', () => {
  it('unfolds to the value, lines ≤ 78 where a fold point allows, never a whitespace-only line', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'bb', 'ccccccccccc', ' ', '  ', 'ü', '"q r"'), {
          minLength: 1,
          maxLength: 60,
        }),
        (words) => {
          const value = words.join('').trim();
          const out = foldField('Subject', value);
          assert.ok(out.endsWith('\r\n'));
          const lines = out.slice(0, -2).split('\r\n');
          assert.equal(lines.join(''), `Subject: ${value}`.replace(/: $/, ':'));
          for (const [i, l] of lines.entries()) {
            assert.ok(l.trim().length > 0, 'no whitespace-only line');
            if (i > 0) assert.ok(l.startsWith(' '));
          }
        },
      ),
      { numRuns: 300, seed: 5322 },
    );
  });

  it('does not fold inside a quoted-string', () => {
    const out = foldField('X', `${'w '.repeat(30)}"${'q '.repeat(40)}"`);
    assert.ok(out.includes(`"${'q '.repeat(40)}"`));
  });

  it('refuses a token longer than 998 octets', () => {
    assert.throws(
      () => foldField('Message-Id', `<${'x'.repeat(1000)}@example.org>`),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_LEGACY_LINE_TOO_LONG',
    );
  });
});

describe('Date (RFC 3339 → RFC 5322 §3.3)', () => {
  const cases: [string, string][] = [
    ['2026-11-29T03:40:00Z', 'Sun, 29 Nov 2026 03:40:00 +0000'],
    ['2026-11-29T09:10:00.5+05:30', 'Sun, 29 Nov 2026 09:10:00 +0530'],
    ['2024-02-29T23:59:59.999-08:00', 'Thu, 29 Feb 2024 23:59:59 -0800'],
    ['2026-01-01T00:00:00-00:00', 'Thu, 1 Jan 2026 00:00:00 -0000'],
    ['1969-12-31T23:59:59.9Z', 'Wed, 31 Dec 1969 23:59:59 +0000'],
    ['2000-03-01T00:30:00+14:00', 'Wed, 1 Mar 2000 00:30:00 +1400'],
  ];
  for (const [nmtp, legacy] of cases) {
    it(`${nmtp} → ${legacy}`, () => assert.equal(toLegacyDate(nmtp), legacy));
  }
});

describe('parameters (RFC 2045 §5.1, RFC 2231)', () => {
  const cases: [string, string[]][] = [
    ['report.pdf', ['filename=report.pdf']],
    ['my report.pdf', ['filename="my report.pdf"']],
    ['a "b" \\c', ['filename="a \\"b\\" \\\\c"']],
    ['*x', ['filename="*x"']],
    ['ü.txt', ["filename*=utf-8''%C3%BC.txt"]],
    [`${'a'.repeat(58)}é`, [`filename*0*=utf-8''${'a'.repeat(58)}`, 'filename*1*=%C3%A9']],
  ];
  for (const [value, expected] of cases) {
    it(JSON.stringify(value), () => assert.deepEqual(formatParam('filename', value), expected));
  }
});

describe('free text (RFC 2047, RFC 6532)', () => {
  it('keeps ASCII, encodes non-ASCII words toward 7-bit peers, keeps UTF-8 for SMTPUTF8', () => {
    assert.equal(unstructured('Subject', 'Hello world', false), 'Hello world');
    assert.equal(
      unstructured('Subject', 'Grüße aus Köln', false),
      '=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=',
    );
    assert.equal(unstructured('Subject', 'Grüße aus Köln', true), 'Grüße aus Köln');
  });

  it('encodes text that looks like an encoded-word, so it is shown literally', () => {
    assert.match(unstructured('Subject', '=?utf-8?q?x?=', true), /^=\?UTF-8\?Q\?/);
  });

  it('writes display names as atoms, quoted-strings or encoded-words', () => {
    assert.equal(phrase('John Smith', false), 'John Smith');
    assert.equal(phrase('Doe, John', false), '"Doe, John"');
    assert.equal(phrase('a "b"', false), '"a \\"b\\""');
    assert.equal(phrase('Jürgen Müller', true), 'Jürgen Müller');
    assert.equal(phrase('Jürgen Müller, Dr.', true), '"Jürgen Müller, Dr."');
    assert.equal(phrase('Dr Jürgen', false), 'Dr =?UTF-8?Q?J=C3=BCrgen?=');
  });
});
