/**
 * Cross-checks the PRECIS implementation against an independent one, Go's
 * golang.org/x/text/secure/precis (oracle/main.go). Go and x/text come from
 * Debian (golang-go, golang-golang-x-text-dev), installed by test/harness before the tests.
 *
 * Known, intended differences (spec §20.4.2, §20.4.3):
 * - the NMTP-reserved ASCII "@" "<" ">" "," '"' "\" (PVALID in PRECIS) and their
 *   fullwidth forms U+FF02 U+FF0C U+FF1C U+FF1E U+FF20 U+FF3C (which width-map to them);
 * - a lone AN digit (U+0660..0669, U+10D30..10D39) fails the Bidi Rule, which x/text's
 *   per-code-point table run here leaves out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { enforceLocalPart } from '../../../src/core/address/index.ts';

const GOPATH = '/usr/share/gocode';

function oracle(mode: 'table' | 'strings', input?: string): string[] {
  return execFileSync('go', ['run', 'main.go', mode], {
    cwd: fileURLToPath(new URL('./oracle/', import.meta.url)),
    env: { ...process.env, GOPATH, GO111MODULE: 'off' },
    input: input ?? '',
    maxBuffer: 1 << 27,
    stdio: ['pipe', 'pipe', 'ignore'],
  })
    .toString()
    .trimEnd()
    .split('\n');
}

// Available = the oracle builds and answers here (Go toolchain, x/text, a writable cache).
const available = ((): boolean => {
  if (!existsSync(`${GOPATH}/src/golang.org/x/text/secure/precis`)) return false;
  try {
    return oracle('strings', '"a"\n')[0] === '+';
  } catch {
    return false;
  }
})();

function mine(s: string): string {
  try {
    const r = enforceLocalPart(s);
    return '+ ' + Array.from(r, (c) => c.codePointAt(0)!.toString(16)).join(' ');
  } catch {
    return '-';
  }
}

const EXPECTED_DIFFERENCES = new Set([
  ...[0x22, 0x2c, 0x3c, 0x3e, 0x40, 0x5c],
  ...[0xff02, 0xff0c, 0xff1c, 0xff1e, 0xff20, 0xff3c],
  ...Array.from({ length: 10 }, (_, i) => 0x0660 + i),
  ...Array.from({ length: 10 }, (_, i) => 0x10d30 + i),
]);

test('every code point x/text knows: same verdict and same mapping', () => {
  assert.ok(
    available,
    'the Go x/text oracle is not installed or does not build (test/harness installs golang-go and golang-golang-x-text-dev)',
  );
  const lines = oracle('table');
  assert.match(lines[0]!, /^# unicode /);
  const diffs: string[] = [];
  for (const line of lines.slice(1)) {
    const [hex, ...rest] = line.split(' ');
    const cp = parseInt(hex!, 16);
    const theirs = rest.join(' ');
    if (mine(String.fromCodePoint(cp)) !== theirs && !EXPECTED_DIFFERENCES.has(cp)) {
      diffs.push(`${hex}: x/text ${theirs}, ours ${mine(String.fromCodePoint(cp))}`);
    }
  }
  assert.deepEqual(diffs.slice(0, 20), []);
  assert.ok(lines.length > 100_000, `${lines.length} code points compared`);
});

test('random right-to-left strings: Bidi Rule and contextual rules agree', () => {
  assert.ok(
    available,
    'the Go x/text oracle is not installed or does not build (test/harness installs golang-go and golang-golang-x-text-dev)',
  );
  // The pool's R, AL and AN letters, digits of both Arabic digit sets, marks, ZWNJ, virama.
  const pool = [...'aZ09.-_', ...'\u05d0\u05d1\u0628\u062a\u0627\u0644\u0660\u0661\u06f0'];
  pool.push(...'\u064b\u0301\u05b0\u00e9\u0915\u094d\u200c');
  const rtl = /[\u05d0\u05d1\u0628\u062a\u0627\u0644\u0660\u0661]/u;
  let seed = 42; // a fixed linear congruential sequence: the same strings every run
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const xs: string[] = [];
  while (xs.length < 5000) {
    let s = '';
    for (let j = 1 + next(5); j > 0; j--) s += pool[next(pool.length)];
    if (rtl.test(s)) xs.push(s); // x/text applies the Bidi Rule to every string
  }
  // JSON string syntax is a subset of Go's quoted-string syntax for these characters.
  const verdicts = oracle('strings', xs.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const diffs = xs
    .map((s, i) => [s, verdicts[i], mine(s)[0]] as const)
    .filter(([, theirs, ours]) => theirs !== ours);
  assert.deepEqual(diffs.slice(0, 20), []);
});
