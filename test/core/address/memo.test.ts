/**
 * processDomain and parseAddress keep their results in a bounded memo: a repeated call
 * gives the same (frozen) value as the first, the two parse modes never share an entry,
 * and refusals are thrown afresh every time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { parseAddress, processDomain } from '../../../src/core/address/index.ts';

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof NmtpError);
    return e.code;
  }
  assert.fail('expected a refusal');
};

test('a repeated domain gives the same frozen result', () => {
  const a = processDomain('Bücher.Example');
  assert.deepEqual(a, { unicode: 'bücher.example', ascii: 'xn--bcher-kva.example' });
  assert.equal(processDomain('Bücher.Example'), a);
  assert.ok(Object.isFrozen(a));
  // Another spelling of the same domain is its own entry with the same value.
  assert.deepEqual(processDomain('xn--bcher-kva.example'), a);
});

test('a repeated address gives the same deep-frozen result', () => {
  const a = parseAddress('zoë@Bücher.Example');
  assert.equal(parseAddress('zoë@Bücher.Example'), a);
  assert.ok(Object.isFrozen(a));
  assert.ok(Object.isFrozen(a.homograph));
  assert.ok(Object.isFrozen(a.homograph.domain.labels));
  assert.ok(Object.isFrozen(a.homograph.local.warnings));
  assert.throws(() => {
    (a.homograph.reasons as string[]).push('x');
  }, TypeError);
});

test('input and wire mode never share an entry', () => {
  // Accepted as input (prepared), refused on the wire — in either order of first use.
  assert.equal(parseAddress('ann@EXAMPLE.org').canonical, 'ann@example.org');
  assert.equal(
    code(() => parseAddress('ann@EXAMPLE.org', { mode: 'wire' })),
    'NMTP_ERR_ADDR_NOT_CANONICAL',
  );
  assert.equal(
    code(() => parseAddress('bea@EXAMPLE.org', { mode: 'wire' })),
    'NMTP_ERR_ADDR_NOT_CANONICAL',
  );
  assert.equal(parseAddress('bea@EXAMPLE.org').canonical, 'bea@example.org');
});

test('refusals are not kept: each call throws a new error with the same code', () => {
  const errors: unknown[] = [];
  for (let i = 0; i < 2; i++) {
    try {
      processDomain('localhost');
    } catch (e) {
      errors.push(e);
    }
  }
  assert.equal(errors.length, 2);
  assert.notEqual(errors[0], errors[1]);
  assert.equal(
    code(() => processDomain('localhost')),
    'NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL',
  );
  assert.equal(
    code(() => parseAddress('a@localhost')),
    'NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL',
  );
  assert.equal(
    code(() => parseAddress('a@localhost')),
    'NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL',
  );
});

test('past its bound the memo starts again, and results stay right', () => {
  const first = processDomain('first.example');
  for (let i = 0; i < 5000; i++) processDomain(`d${i}.example`);
  const again = processDomain('first.example');
  assert.deepEqual(again, first);
  assert.deepEqual(processDomain('d4999.example'), {
    unicode: 'd4999.example',
    ascii: 'd4999.example',
  });
});
