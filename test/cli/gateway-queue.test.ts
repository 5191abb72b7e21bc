/** `nmtp-gateway queue list`'s text (src/cli/gateway-queue.ts formatList), postqueue -p style. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatList } from '../../src/cli/gateway-queue.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';

const AT = Date.UTC(2026, 11, 7, 12, 0, 0) / 1000;

test('an empty queue says so', () => {
  assert.equal(formatList([]), 'Mail queue is empty');
});

test('one block per entry: id, kind, size, arrival, sender; each recipient with state, next try and last answer', () => {
  const entry: QueuedSubmission = {
    version: 1,
    id: 'E1',
    kind: 'smtp',
    user: '',
    created: AT,
    size: 1234,
    expires: AT + 5 * 86400,
    recipients: [
      {
        rcpt: 'bob@legacy.example',
        state: 'pending',
        attempts: 2,
        polls: 0,
        nextAt: AT + 300,
        last: {
          at: AT + 10,
          code: 450,
          enhanced: '4.2.0',
          text: 'Mailbox busy',
          relay: 'in.legacy.example[192.0.2.1]:25',
        },
      },
      {
        rcpt: 'ann@legacy.example',
        state: 'rejected',
        attempts: 1,
        polls: 0,
        nextAt: AT,
        last: { at: AT + 10, code: 550, enhanced: '5.1.1', text: 'no such user' },
      },
    ],
    meta: { origin: 'dsn', mailFrom: '', arrival: AT },
  };
  assert.equal(
    formatList([entry]),
    [
      'E1  smtp  1234  2026-12-07T12:00:00Z  MAILER-DAEMON',
      '    pending   bob@legacy.example next 2026-12-07T12:05:00Z — host in.legacy.example[192.0.2.1]:25 said: 450 4.2.0 Mailbox busy',
      '    rejected  ann@legacy.example — 550 5.1.1 no such user',
      '',
      '-- 1 entries, 1 recipients waiting',
    ].join('\n'),
  );
});
