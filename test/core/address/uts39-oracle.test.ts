/**
 * Cross-checks skeleton() and restrictionLevel() against ICU's spoof checker (UTS #39),
 * through PyICU (oracle/icu_oracle.py). PyICU comes from Debian (python3-icu, for
 * /usr/bin/python3), installed by test/harness before the tests.
 *
 * Debian bookworm's ICU is 72.1 (Unicode 15.0) while our data is Unicode 17.0, so a
 * bounded number of skeletons differ: the confusables.txt changes of Unicode 15.1-17.0
 * (about 230 code points when written, e.g. U+04CF now maps to "l", not "i").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { skeleton, restrictionLevel } from '../../../src/core/address/index.ts';

const PYTHON = '/usr/bin/python3';
const available = ((): boolean => {
  try {
    execFileSync(PYTHON, ['-c', 'import icu'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

interface OracleResult {
  skeleton_same: number;
  skeleton_diff: [string, string, string][];
  level_same: number;
  level_diff: [string, string, string][];
}

test('skeletons and restriction levels agree with ICU', () => {
  assert.ok(
    available,
    'PyICU is not importable by /usr/bin/python3 (test/harness installs python3-icu)',
  );
  const skeletons: [string, string][] = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    const ch = String.fromCodePoint(cp);
    if (/^[\p{Cn}\p{Co}\p{Cs}]$/u.test(ch)) continue;
    skeletons.push([cp.toString(16), skeleton(ch)]);
  }
  // Random strings over letters of the scripts the levels distinguish (fixed sequence).
  const pool = [...'abcxyzабвгдαβγδ中文字ひらがカタナ한국어אבגไทยᎠᎡᎢ0123ー々'];
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const levels: [string, string][] = [];
  for (let i = 0; i < 5000; i++) {
    let s = '';
    for (let j = 1 + next(5); j > 0; j--) s += pool[next(pool.length)];
    levels.push([s, restrictionLevel(s)]);
  }
  const result = JSON.parse(
    execFileSync(PYTHON, [fileURLToPath(new URL('./oracle/icu_oracle.py', import.meta.url))], {
      input: JSON.stringify({ skeletons, levels }),
      maxBuffer: 1 << 27,
    }).toString(),
  ) as OracleResult;
  assert.deepEqual(result.level_diff.slice(0, 10), []);
  assert.equal(result.level_same, levels.length);
  assert.ok(result.skeleton_same > 140_000, `${result.skeleton_same} skeletons agree`);
  assert.ok(
    result.skeleton_diff.length < 300,
    `${result.skeleton_diff.length} differ, e.g. ${JSON.stringify(result.skeleton_diff.slice(0, 5))}`,
  );
});
