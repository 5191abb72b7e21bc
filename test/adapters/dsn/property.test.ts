/**
 * Properties: the parser never crashes (a value or a coded NmtpError, nothing else), and
 * any diagnostic text a peer may send survives build → parse with only whitespace runs
 * collapsed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildDsn, parseDsn } from '../../../adapters/dsn/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { CASES, fixedSources } from './cases.ts';

const mixed = buildDsn(CASES.find((c) => c.name === 'mixed-multiple')!.input, fixedSources()).bytes;

test('mutated reports: a result or a coded error, never a crash', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(mixed.length - 1), fc.integer({ min: 0, max: 255 })), {
        maxLength: 20,
      }),
      fc.nat(mixed.length),
      (edits, cut) => {
        const bytes = Uint8Array.from(mixed.subarray(0, cut));
        for (const [at, v] of edits) if (at < bytes.length) bytes[at] = v;
        try {
          const p = parseDsn(bytes);
          assert.ok(p.outcomes.length > 0);
        } catch (e) {
          assert.ok(e instanceof NmtpError, String(e));
          assert.match(e.code, /^NMTP_ERR_DSN_/);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('arbitrary remote diagnostic text round-trips (whitespace runs collapsed)', () => {
  const base = CASES.find((c) => c.name === 'failed')!.input;
  const outcome = base.recipients[0]!.outcome;
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => {
      const b = buildDsn(
        { ...base, recipients: [{ outcome: { ...outcome, diagnostic: { type: 'smtp', text } } }] },
        fixedSources(),
      );
      const got = parseDsn(b.bytes).outcomes[0]!.diagnostic;
      // eslint-disable-next-line no-control-regex
      const want = text.replace(/[\s\x00-\x1f\x7f-\x9f]+/g, ' ').trim();
      assert.deepEqual(got, { type: 'smtp', text: want });
    }),
    { numRuns: 300 },
  );
});
