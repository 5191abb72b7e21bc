/**
 * The SMTP deliverer's reading of replies (RFC 5321 §4.2, RFC 2034 §4): the reply code, the
 * enhanced code when its class agrees with it, and the text of every line. The deliverer
 * itself runs against real servers in test/integration/smtp-deliver.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReply } from '../../../adapters/smtp-sender/smtp-deliver.ts';

test('one line, with and without an enhanced code', () => {
  assert.deepEqual(parseReply('250 2.0.0 Ok: queued as 4XyZ'), {
    code: 250,
    enhanced: '2.0.0',
    text: 'Ok: queued as 4XyZ',
  });
  assert.deepEqual(parseReply('550 Mailbox unavailable'), {
    code: 550,
    text: 'Mailbox unavailable',
  });
  assert.deepEqual(parseReply('250'), { code: 250, text: '' });
});

test('multi-line replies: the lines joined, the repeated enhanced code said once', () => {
  assert.deepEqual(
    parseReply(
      '550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 Please check the address.',
    ),
    {
      code: 550,
      enhanced: '5.1.1',
      text: 'The email account that you tried to reach does not exist. Please check the address.',
    },
  );
});

test('an enhanced code of another class is not taken as one (RFC 3463 §3.1)', () => {
  // A 5xx reply with a 4.x.x code is ambiguous: the code stays in the text for people.
  assert.deepEqual(parseReply('550 4.2.2 Mailbox full'), { code: 550, text: '4.2.2 Mailbox full' });
});

test('anything that is not a reply', () => {
  assert.equal(parseReply(''), undefined);
  assert.equal(parseReply('hello'), undefined);
  assert.equal(parseReply('99 short'), undefined);
});
