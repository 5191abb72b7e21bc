import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DELIVERY_ACTIONS,
  enhancedStatus,
  expectedClass,
  parseNotify,
  reportable,
  wantsDsn,
  type DeliveryAction,
} from '../../../src/core/delivery/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

test('parseNotify: NEVER alone, or a list of SUCCESS/FAILURE/DELAY, any case', () => {
  assert.equal(parseNotify('NEVER'), 'NEVER');
  assert.equal(parseNotify('never'), 'NEVER');
  assert.deepEqual(
    [...(parseNotify('success,Failure, DELAY') as Set<string>)],
    ['SUCCESS', 'FAILURE', 'DELAY'],
  );
  for (const bad of ['NEVER,SUCCESS', '', 'SUCCESS,,DELAY', 'ALWAYS']) {
    assert.throws(
      () => parseNotify(bad),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_DSN_BAD_FIELD',
      bad,
    );
  }
});

test('which actions produce a DSN under each NOTIFY (table of docs/protocol.md §52.4)', () => {
  const table: Record<string, DeliveryAction[]> = {
    NEVER: [],
    SUCCESS: ['delivered', 'relayed', 'expanded'],
    FAILURE: ['failed'],
    DELAY: ['delayed'],
    'FAILURE,DELAY': ['failed', 'delayed'],
    'SUCCESS,FAILURE,DELAY': ['failed', 'delayed', 'delivered', 'relayed', 'expanded'],
  };
  for (const [value, expected] of Object.entries(table)) {
    const got = DELIVERY_ACTIONS.filter((a) => wantsDsn(a, parseNotify(value)));
    assert.deepEqual(got.sort(), [...expected].sort(), value);
  }
  // Absent NOTIFY = FAILURE,DELAY.
  assert.deepEqual(DELIVERY_ACTIONS.filter((a) => wantsDsn(a, undefined)).sort(), [
    'delayed',
    'failed',
  ]);
});

test('reportable keeps input order and drops what NOTIFY does not ask for', () => {
  const mk = (legacy: string, action: DeliveryAction) => ({
    recipient: { legacy },
    action,
    status: enhancedStatus(`${expectedClass(action)}.0.0`),
  });
  const out = reportable([
    { outcome: mk('a@x', 'failed') },
    { outcome: mk('b@x', 'delivered') },
    { outcome: mk('c@x', 'delayed'), notify: 'NEVER' },
    { outcome: mk('d@x', 'relayed'), notify: parseNotify('SUCCESS') },
  ]);
  assert.deepEqual(
    out.map((o) => o.recipient.legacy),
    ['a@x', 'd@x'],
  );
});
