/**
 * Golden files: each builder case in cases.ts is compared byte-for-byte with
 * test/fixtures/dsn/<name>.eml after masking the Date and Message-Id header values and the
 * boundary (the injected parts). On a mismatch the masked output is written beside the
 * golden as <name>.eml.actual (git-ignored) and the test fails.
 *
 * Regenerate deliberately, then review the diff by eye and with python3's email package:
 *   NMTP_UPDATE_GOLDEN=1 node --import tsx --test test/adapters/dsn/golden.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildDsn } from '../../../adapters/dsn/index.ts';
import { CASES, fixedSources } from './cases.ts';

const dir = new URL('../../fixtures/dsn/', import.meta.url);
const update = process.env.NMTP_UPDATE_GOLDEN === '1';

/** Masks the values that come from the injected sources. */
export function mask(eml: string): string {
  const boundary = /boundary="([^"]+)"/.exec(eml)?.[1];
  let out = eml
    .replace(/^Date: .*$/m, 'Date: {DATE}')
    .replace(/^Message-Id: .*$/m, 'Message-Id: {MESSAGE-ID}');
  if (boundary !== undefined) out = out.split(boundary).join('{BOUNDARY}');
  return out;
}

for (const c of CASES) {
  test(`golden: ${c.name}`, () => {
    const built = buildDsn(c.input, fixedSources());
    const actual = mask(Buffer.from(built.bytes).toString('utf8'));
    const golden = fileURLToPath(new URL(`${c.name}.eml`, dir));
    const actualPath = `${golden}.actual`;
    if (update) writeFileSync(golden, actual);
    assert.ok(existsSync(golden), `missing golden ${golden}; see the header of this file`);
    const expected = readFileSync(golden, 'utf8');
    if (actual !== expected) {
      writeFileSync(actualPath, actual);
      assert.fail(`${c.name}: output differs from ${golden}; wrote ${actualPath}`);
    }
    rmSync(actualPath, { force: true });
  });
}
