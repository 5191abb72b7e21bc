/**
 * The listener's envelope helpers: the path as sent (not smtp-server's Unicode copy), the
 * MAIL and RCPT parameters from smtp-server's decoded `args`, and the reply text format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ENHANCED_PREFIX,
  isAscii,
  lineText,
  mailFromOf,
  pathOf,
  rcptToOf,
  replyText,
  splitReplyText,
} from '../../../adapters/smtp-listener/envelope.ts';

test('pathOf: the token smtp-server validated, without brackets and source route', () => {
  assert.equal(pathOf('MAIL FROM:<a@xn--bcher-kva.example> SIZE=10'), 'a@xn--bcher-kva.example');
  assert.equal(pathOf('MAIL FROM:<>'), '');
  assert.equal(pathOf('mail from: <a@b.example>'), 'a@b.example');
  assert.equal(pathOf('RCPT TO:<@r1.example,@r2.example:c@d.example>'), 'c@d.example');
  assert.equal(pathOf('RCPT TO:<ü@bücher.example> NOTIFY=NEVER'), 'ü@bücher.example');
  assert.equal(pathOf('RCPT TO:c@d.example'), undefined);
  assert.equal(pathOf('NOOP'), undefined);
});

test('lineText refuses octets that are not UTF-8; isAscii', () => {
  assert.equal(lineText(Buffer.from('MAIL FROM:<jörg@x.example>')), 'MAIL FROM:<jörg@x.example>');
  assert.equal(lineText(Buffer.from([0x4d, 0xf6, 0x41])), undefined);
  assert.equal(isAscii('a@b.example'), true);
  assert.equal(isAscii('jörg@b.example'), false);
});

test('mailFromOf and rcptToOf read smtp-server args (already xtext-decoded)', () => {
  assert.deepEqual(
    mailFromOf('a@b.example', {
      SIZE: '1000',
      BODY: '8bitmime',
      SMTPUTF8: true,
      RET: 'full',
      ENVID: 'x+y=z',
    }),
    {
      address: 'a@b.example',
      size: 1000,
      body: '8BITMIME',
      smtputf8: true,
      ret: 'FULL',
      envid: 'x+y=z',
    },
  );
  assert.deepEqual(mailFromOf('', false), { address: '', smtputf8: false });
  assert.deepEqual(rcptToOf('c@d.example', { NOTIFY: 'NEVER', ORCPT: 'rfc822;c;x@d.example' }), {
    address: 'c@d.example',
    notify: 'NEVER',
    orcpt: { type: 'rfc822', address: 'c;x@d.example' },
  });
  assert.deepEqual(rcptToOf('c@d.example', undefined), { address: 'c@d.example' });
});

test('replyText: enhanced code, text, and the catalog code behind " # "', () => {
  const r = {
    code: 550,
    enhanced: '5.1.1',
    text: 'no such user',
    err: 'NMTP_ERR_GW_RELAY_DENIED',
  } as const;
  assert.equal(replyText(r), '5.1.1 no such user # NMTP_ERR_GW_RELAY_DENIED');
  assert.equal(replyText({ code: 250, enhanced: '2.0.0', text: 'ok' }), '2.0.0 ok');
  assert.equal(replyText({ code: 250, enhanced: '2.0.0', text: '' }), '2.0.0');
  assert.ok(ENHANCED_PREFIX.test(replyText(r)));
  assert.ok(!ENHANCED_PREFIX.test('Error: need MAIL command'));
  assert.deepEqual(splitReplyText(replyText(r)), {
    enhanced: '5.1.1',
    text: 'no such user',
    err: 'NMTP_ERR_GW_RELAY_DENIED',
  });
  assert.deepEqual(splitReplyText('2.0.0 ok'), { enhanced: '2.0.0', text: 'ok' });
  assert.equal(splitReplyText('Accepted'), undefined);
});
