/** The two small mappings into the outcome type: SMTP replies and NMTP answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkOutcome,
  cookieExpired,
  fromNmtpAnswer,
  fromSmtpReply,
} from '../../../src/core/delivery/index.ts';

const at = new Date('2026-11-29T04:00:00Z');
const recipient = { legacy: 'bob@example.org' };

test('SMTP: 2xx/4xx/5xx with and without enhanced codes', () => {
  const cases: [number | string, string[], string, string][] = [
    [250, ['2.1.5 Ok'], 'relayed', '2.1.5'],
    [250, ['Ok'], 'relayed', '2.0.0'],
    [550, ['5.1.1 <bob@example.org>: User unknown'], 'failed', '5.1.1'],
    [554, ['Transaction failed'], 'failed', '5.0.0'],
    [452, ['4.2.2 Mailbox full'], 'delayed', '4.2.2'],
    [421, ['Service not available'], 'delayed', '4.0.0'],
    ['550', ['5.7.1 Rejected'], 'failed', '5.7.1'],
  ];
  for (const [code, lines, action, status] of cases) {
    const o = checkOutcome(
      fromSmtpReply({ code, lines }, { recipient, at, remoteMta: 'mx.example.org' }),
    );
    assert.equal(o.action, action, `${code} ${lines[0]}`);
    assert.equal(o.status, status, `${code} ${lines[0]}`);
    assert.equal(o.remoteMta, 'mx.example.org');
    assert.equal(o.diagnostic?.type, 'smtp');
    assert.equal(o.diagnostic?.text, `${code} ${lines[0]}`);
    assert.equal(o.lastAttempt, at);
  }
});

test('SMTP: unknown or ambiguous replies are temporary', () => {
  const cases: [number | string, string[]][] = [
    [354, ['go ahead']], // not a final answer
    [199, []],
    ['abc', ['garbage']],
    [650, ['out of range']],
    [550, ['4.2.2 class mismatch']], // 5xx carrying a 4.x.x code
    [250, ['5.1.1 class mismatch']],
    [450, ['5.1.1 class mismatch']],
  ];
  for (const [code, lines] of cases) {
    const o = checkOutcome(fromSmtpReply({ code, lines }, { recipient, at }));
    assert.equal(o.action, 'delayed', `${code} ${lines.join(' ')}`);
    assert.equal(o.status, '4.0.0', `${code} ${lines.join(' ')}`);
  }
});

test('SMTP: multi-line reply is joined; successAction and willRetryUntil', () => {
  const until = new Date('2026-12-04T00:00:00Z');
  const o = fromSmtpReply(
    {
      code: 550,
      lines: ['5.1.1 The email account that you tried', '5.1.1 to reach does not exist.'],
    },
    { recipient, at },
  );
  assert.equal(
    o.diagnostic?.text,
    '550 5.1.1 The email account that you tried 5.1.1 to reach does not exist.',
  );
  assert.equal(
    fromSmtpReply({ code: 250, lines: [] }, { recipient, at, successAction: 'delivered' }).action,
    'delivered',
  );
  assert.equal(
    fromSmtpReply({ code: 451, lines: [] }, { recipient, at, willRetryUntil: until })
      .willRetryUntil,
    until,
  );
  assert.equal(
    fromSmtpReply({ code: 550, lines: [] }, { recipient, at, willRetryUntil: until })
      .willRetryUntil,
    undefined,
  );
});

test('NMTP: accepted → relayed, rejected → failed, deferred → delayed with cookie', () => {
  const expires = new Date('2026-12-01T00:00:00Z');
  const cookie = { id: 'ck1', minPollSeconds: 60, maxPollSeconds: 600, expires };
  const acc = checkOutcome(
    fromNmtpAnswer({ kind: 'accepted', receiverId: 'r9' }, { recipient, at }),
  );
  assert.equal(acc.action, 'relayed');
  assert.equal(acc.status, '2.0.0');
  assert.equal(acc.finalLogId, 'r9');
  const rej = checkOutcome(
    fromNmtpAnswer(
      { kind: 'rejected', status: '5.7.1', text: 'policy' },
      { recipient, at, remoteMta: 'n.example' },
    ),
  );
  assert.equal(rej.action, 'failed');
  assert.equal(rej.status, '5.7.1');
  assert.deepEqual(rej.diagnostic, { type: 'nmtp', text: '5.7.1 policy' });
  assert.equal(
    checkOutcome(fromNmtpAnswer({ kind: 'rejected', text: 'no' }, { recipient, at })).status,
    '5.0.0',
  );
  const def = checkOutcome(
    fromNmtpAnswer({ kind: 'deferred', cookie, text: 'held' }, { recipient, at }),
  );
  assert.equal(def.action, 'delayed');
  assert.equal(def.status, '4.0.0');
  assert.equal(def.willRetryUntil, expires);
  assert.deepEqual(def.cookie, cookie);
});

test('NMTP: unknown kinds and contradictory codes are temporary', () => {
  const u = checkOutcome(fromNmtpAnswer({ kind: 'redirect-v9', text: '?' }, { recipient, at }));
  assert.equal(u.action, 'delayed');
  assert.equal(u.status, '4.0.0');
  const r = checkOutcome(
    fromNmtpAnswer({ kind: 'rejected', status: '4.2.2', text: 'full' }, { recipient, at }),
  );
  assert.equal(r.action, 'delayed');
  assert.equal(r.status, '4.2.2');
  const bad = checkOutcome(
    fromNmtpAnswer({ kind: 'rejected', status: 'x', text: 'x' }, { recipient, at }),
  );
  assert.equal(bad.status, '5.0.0');
});

test('cookieExpired: delayed → failed 5.4.7, cookie and retry window dropped', () => {
  const expires = new Date('2026-12-01T00:00:00Z');
  const cookie = { id: 'ck1', minPollSeconds: 60, maxPollSeconds: 600, expires };
  const def = fromNmtpAnswer({ kind: 'deferred', cookie }, { recipient, at });
  const f = checkOutcome(cookieExpired(def, expires));
  assert.equal(f.action, 'failed');
  assert.equal(f.status, '5.4.7');
  assert.equal(f.cookie, undefined);
  assert.equal(f.willRetryUntil, undefined);
  assert.equal(f.lastAttempt, expires);
});
