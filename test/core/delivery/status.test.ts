import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  enhancedStatus,
  isEnhancedStatus,
  leadingEnhancedStatus,
  statusClass,
} from '../../../src/core/delivery/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

test('RFC 3463 syntax: class 2/4/5, subject and detail 1-3 digits', () => {
  for (const ok of ['2.0.0', '4.2.2', '5.1.1', '5.1.10', '4.999.999']) {
    assert.equal(enhancedStatus(ok), ok);
    assert.ok(isEnhancedStatus(ok));
  }
  for (const bad of [
    '3.0.0',
    '5.1',
    '5.1.1.1',
    '5.1000.1',
    ' 5.1.1',
    '5.1.1 ',
    '550',
    '',
    '5..1',
  ]) {
    assert.equal(isEnhancedStatus(bad), false, bad);
    assert.throws(
      () => enhancedStatus(bad),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_DSN_BAD_STATUS',
    );
  }
});

test('statusClass and leading code in reply text', () => {
  assert.equal(statusClass(enhancedStatus('4.7.1')), 4);
  assert.equal(leadingEnhancedStatus('5.1.1 User unknown'), '5.1.1');
  assert.equal(leadingEnhancedStatus('  2.0.0'), '2.0.0');
  assert.equal(leadingEnhancedStatus('User unknown 5.1.1'), undefined);
  assert.equal(leadingEnhancedStatus('5.1.1.2 odd'), undefined);
});
