/**
 * The legacy → framed vectors (test/vectors/convert/, docs/protocol.md §50.12): every input
 * converts to exactly the expected framed octets, with the listed warnings; and the vectors
 * are the ones generate.ts writes (no stale files).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { decodeMessage, encodeMessage } from '../../../src/core/frame/index.ts';
import { VECTORS } from '../../vectors/convert/generate.ts';

const DIR = fileURLToPath(new URL('../../vectors/convert/', import.meta.url));

interface Doc {
  options: { gateway: string; now_text: string };
  vectors: { id: string; input: string; expected: string; warnings: string[] }[];
}

test('conversion vectors: exact framed output and warnings', async () => {
  const doc = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Doc;
  const opts = { gateway: doc.options.gateway, now: Date.parse(doc.options.now_text) };
  assert.deepEqual(
    doc.vectors.map((v) => v.id),
    VECTORS.map(([id]) => id),
  );
  for (const v of doc.vectors) {
    const r = await legacyToFramed(readFileSync(join(DIR, v.input)), opts);
    const expected = readFileSync(join(DIR, v.expected));
    assert.deepEqual(Buffer.from(encodeMessage(r.message)), expected, v.id);
    assert.deepEqual(
      r.warnings.map((w) => w.code),
      v.warnings,
      v.id,
    );
    // The expected output is itself a valid framed message.
    decodeMessage(expected);
  }
  const files = readdirSync(DIR).filter((f) => f.endsWith('.eml') || f.endsWith('.nmtp'));
  assert.deepEqual(files.sort(), doc.vectors.flatMap((v) => [v.input, v.expected]).sort());
});
