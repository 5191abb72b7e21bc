import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CATALOG, ERROR_TABLES, NmtpError, isErrorCode } from '../../../src/core/errors/index.ts';
import { classify } from '../../../src/core/errors/policy.ts';

test('no error code is defined in two tables', () => {
  const seen = new Map<string, string>();
  for (const [table, codes] of Object.entries(ERROR_TABLES)) {
    for (const code of Object.keys(codes)) {
      assert.equal(seen.get(code), undefined, `${code} defined in ${seen.get(code)} and ${table}`);
      seen.set(code, table);
    }
  }
  assert.equal(seen.size, Object.keys(CATALOG).length);
});

test('every code is NMTP_ERR_ followed by upper-case words', () => {
  for (const code of Object.keys(CATALOG)) assert.match(code, /^NMTP_ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
});

test('docs/errors.md lists exactly the catalog, with the same temporary flag and scope', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, { temporary: string; scope: string }>();
  for (const m of doc.matchAll(
    /^\| `(NMTP_ERR_[A-Z0-9_]+)` \| (temporary|permanent) \| (\w+) \|/gm,
  )) {
    rows.set(m[1]!, { temporary: m[2]!, scope: m[3]! });
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(CATALOG).sort());
  for (const [code, spec] of Object.entries(CATALOG)) {
    assert.equal(rows.get(code)?.temporary, spec.temporary ? 'temporary' : 'permanent', code);
    assert.equal(rows.get(code)?.scope, spec.scope, code);
  }
});

test('NmtpError carries code, flag, scope and offset', () => {
  const e = new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'bad', { offset: 7 });
  assert.equal(e.code, 'NMTP_ERR_INVALID_ARGUMENT');
  assert.equal(e.temporary, false);
  assert.match(e.message, /at offset 7/);
  assert.ok(isErrorCode('NMTP_ERR_INTERNAL'));
  assert.ok(!isErrorCode('NMTP_ERR_NOPE'));
});

test('policy: unknown errors are temporary and local', () => {
  for (const thrown of [new Error('boom'), 'string', undefined, { weird: true }]) {
    const v = classify(thrown);
    assert.equal(v.code, 'NMTP_ERR_INTERNAL');
    assert.equal(v.temporary, true);
  }
  const known = classify(new NmtpError('NMTP_ERR_INVALID_ARGUMENT'));
  assert.equal(known.temporary, false);
  assert.equal(known.code, 'NMTP_ERR_INVALID_ARGUMENT');
});
