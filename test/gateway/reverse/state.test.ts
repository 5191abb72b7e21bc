/** What a reverse cookie answers, from the queue entry alone (src/gateway/reverse/state.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reverseCookieState, type StatePolicy } from '../../../src/gateway/reverse/state.ts';
import type { QueuedRecipient, QueuedSubmission } from '../../../src/queue/types.ts';

const policy: StatePolicy = { confirm: 'dsn', confirmWindow: 600, minPoll: 60, maxPoll: 3600 };

function entry(r: Partial<QueuedRecipient>, meta: Record<string, unknown> = {}): QueuedSubmission {
  return {
    version: 1,
    id: 'rabc',
    user: 'nmtp-return+rabc.x@gw.test',
    created: 1000,
    expires: 1000 + 86400,
    size: 10,
    kind: 'smtp',
    meta: {
      origin: 'nmtp-in',
      mailFrom: '',
      arrival: 1000,
      reverse: { client: 'sender.test', rcpts: ['a@legacy.test'] },
    },
    recipients: [
      {
        rcpt: 'a@legacy.test',
        state: 'pending',
        attempts: 0,
        polls: 0,
        nextAt: 1000,
        meta: { legacy: 'a@legacy.test', ...meta },
        ...r,
      },
    ],
  };
}

test('pending or retrying: deferred, until the queue lifetime plus the confirm window', () => {
  const s = reverseCookieState(entry({}), 0, 1001, policy);
  assert.deepEqual(s, {
    kind: 'deferred',
    rcpt: 'a@legacy.test',
    min: 60,
    max: 3600,
    expires: 1000 + 86400 + 600 + 3600,
  });
});

test('a 2xx from a smarthost that offered DSN waits for the DSN or the confirm window', () => {
  const e = entry({ state: 'accepted', last: { at: 2000, code: 250, dsn: true } });
  assert.equal(reverseCookieState(e, 0, 2100, policy).kind, 'deferred');
  assert.equal(reverseCookieState(e, 0, 2600, policy).kind, 'accepted');
  assert.equal(
    reverseCookieState(e, 0, 2100, { ...policy, confirm: 'smarthost' }).kind,
    'accepted',
  );
  const noDsn = entry({ state: 'accepted', last: { at: 2000, code: 250, dsn: false } });
  assert.deepEqual(reverseCookieState(noDsn, 0, 2001, policy), {
    kind: 'accepted',
    rcpt: 'a@legacy.test',
    id: 'rabc',
  });
});

test('a late failure report wins over the smarthost 2xx; a delayed report changes nothing', () => {
  const failed = entry(
    { state: 'accepted', last: { at: 2000, code: 250, dsn: true } },
    {
      report: { action: 'failed', status: '5.1.1', text: 'smtp; 550 5.1.1 no such user', at: 2050 },
    },
  );
  assert.deepEqual(reverseCookieState(failed, 0, 2100, policy), {
    kind: 'rejected',
    rcpt: 'a@legacy.test',
    enhanced: '5.1.1',
    text: 'smtp; 550 5.1.1 no such user',
  });
  const delayed = entry(
    { state: 'accepted', last: { at: 2000, dsn: true } },
    { report: { action: 'delayed', status: '4.4.1', at: 2050 } },
  );
  assert.equal(reverseCookieState(delayed, 0, 2100, policy).kind, 'deferred');
});

test('a 5xx is rejected with its code; an odd code becomes 5.0.0', () => {
  const e = entry({
    state: 'rejected',
    last: { at: 2000, code: 550, enhanced: '5.7.1', text: 'no\r\nthanks' },
  });
  assert.deepEqual(reverseCookieState(e, 0, 2001, policy), {
    kind: 'rejected',
    rcpt: 'a@legacy.test',
    enhanced: '5.7.1',
    text: 'no thanks',
  });
  const odd = entry({ state: 'rejected', last: { at: 2000, code: 550, enhanced: '4.2.0' } });
  assert.equal(
    (reverseCookieState(odd, 0, 2001, policy) as { enhanced: string }).enhanced,
    '5.0.0',
  );
});

test('given up by GIVEUP is given-up; given up by the queue lifetime is rejected 5.4.7', () => {
  assert.deepEqual(
    reverseCookieState(entry({ state: 'given-up' }, { cancel: true }), 0, 2001, policy),
    {
      kind: 'given-up',
      rcpt: 'a@legacy.test',
    },
  );
  const expired = reverseCookieState(
    entry({ state: 'given-up', last: { at: 9, text: '451 try later' } }),
    0,
    2001,
    policy,
  );
  assert.equal(expired.kind, 'rejected');
  assert.equal((expired as { enhanced: string }).enhanced, '5.4.7');
});

test('an entry of another kind, or an index out of range, is unknown', () => {
  assert.equal(
    reverseCookieState({ ...entry({}), meta: { origin: 'smtp-in' } }, 0, 1, policy).kind,
    'unknown',
  );
  assert.equal(reverseCookieState(entry({}), 1, 1, policy).kind, 'unknown');
});
