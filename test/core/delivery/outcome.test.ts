import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkOutcome,
  cookieVerdict,
  enhancedStatus,
  type RecipientOutcome,
} from '../../../src/core/delivery/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

const isCode = (code: string) => (e: unknown) => e instanceof NmtpError && e.code === code;

test('checkOutcome: the status class must agree with the action', () => {
  const ok: RecipientOutcome = {
    recipient: { legacy: 'a@b.example' },
    action: 'failed',
    status: enhancedStatus('5.1.1'),
  };
  assert.equal(checkOutcome(ok), ok);
  assert.throws(
    () => checkOutcome({ ...ok, action: 'delivered' }),
    isCode('NMTP_ERR_DSN_BAD_OUTCOME'),
  );
  assert.throws(
    () => checkOutcome({ ...ok, action: 'delayed' }),
    isCode('NMTP_ERR_DSN_BAD_OUTCOME'),
  );
  assert.throws(() => checkOutcome({ ...ok, recipient: {} }), isCode('NMTP_ERR_DSN_BAD_OUTCOME'));
  assert.throws(
    () => checkOutcome({ ...ok, action: 'bounced' as RecipientOutcome['action'] }),
    isCode('NMTP_ERR_DSN_BAD_OUTCOME'),
  );
});

test('cookieVerdict: parsed DSN outcomes become cookie states', () => {
  const base = { recipient: { legacy: 'a@b.example' } };
  assert.deepEqual(cookieVerdict({ ...base, action: 'relayed', status: enhancedStatus('2.0.0') }), {
    state: 'accepted',
  });
  assert.deepEqual(
    cookieVerdict({
      ...base,
      action: 'failed',
      status: enhancedStatus('5.1.1'),
      diagnostic: { type: 'smtp', text: '550 5.1.1 no' },
    }),
    { state: 'rejected', status: '5.1.1', text: '550 5.1.1 no' },
  );
  const until = new Date('2026-12-01T00:00:00Z');
  assert.deepEqual(
    cookieVerdict({
      ...base,
      action: 'delayed',
      status: enhancedStatus('4.2.2'),
      willRetryUntil: until,
    }),
    { state: 'deferred', status: '4.2.2', until },
  );
});
