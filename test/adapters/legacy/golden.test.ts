/**
 * The worked example of docs/protocol.md §51.10, byte for byte: the framed
 * input (worked-example.nmtp) and the legacy outputs toward a 7-bit peer and toward a
 * SMTPUTF8 + 8BITMIME peer, with the boundary's random octets fixed. The expected files
 * were reviewed by hand against RFC 5322/2045/2047/2231 and are read back by Python in
 * the same checks as index.test.ts. On mismatch the test writes `*.actual`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeMessage } from '../../../src/core/frame/index.ts';
import { framedToLegacy, type LegacyOptions } from '../../../adapters/legacy/index.ts';
import { assertDecodedEqual, assertWireRules, pythonDecode } from './helpers.ts';

const dir = new URL('../../fixtures/legacy/', import.meta.url);
const input = decodeMessage(new Uint8Array(readFileSync(new URL('worked-example.nmtp', dir))));

const CASES: [string, LegacyOptions][] = [
  [
    'worked-example.7bit.eml',
    { smtputf8: false, eightBitMime: false, random: () => new Uint8Array(18) },
  ],
  [
    'worked-example.utf8.eml',
    { smtputf8: true, eightBitMime: true, random: () => new Uint8Array(18).fill(255) },
  ],
];

describe('worked example (golden files)', () => {
  for (const [file, peer] of CASES) {
    it(file, () => {
      const golden = new URL(file, dir);
      const out = Buffer.from(framedToLegacy(input, peer));
      if (!out.equals(readFileSync(golden))) {
        writeFileSync(new URL(`${file}.actual`, dir), out);
        assert.fail(`${file} differs; see ${file}.actual`);
      }
      assertWireRules(out, peer);
      const [d] = pythonDecode([out]);
      assertDecodedEqual(input.root, d!, peer);
    });
  }
});
