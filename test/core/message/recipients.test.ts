/**
 * verifyForRecipients (src/core/message): one decoding and one check per signature for a
 * transfer's recipients, each verdict exactly what verifyMessage gives for that recipient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage } from '../../../src/core/frame/index.ts';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
} from '../../../src/core/keys/index.ts';
import {
  signMessage,
  verifyForRecipients,
  verifyMessage,
} from '../../../src/core/message/index.ts';
import { staticTxtResolver } from '../../../src/dns/txt.ts';

const org = keyPairFromSeed(new Uint8Array(32).fill(1));
const relay = keyPairFromSeed(new Uint8Array(32).fill(2));
const resolveTxt = staticTxtResolver(
  new Map([
    [
      domainKeyName('s1', 'example.org'),
      [printDomainKeyRecord({ publicKey: org.publicKey, flags: '' })],
    ],
    [
      domainKeyName('r1', 'relay.example'),
      [printDomainKeyRecord({ publicKey: relay.publicKey, flags: '' })],
    ],
  ]),
);
const now = 1_800_000_000;
const sign = (m: Uint8Array, key: typeof org, domain: string, selector: string, rcpts: string[]) =>
  signMessage(m, {
    key,
    domain,
    selector,
    recipients: rcpts,
    signedAt: now - 10,
    expiresAt: now + 3600,
    salt: new Uint8Array(16).fill(rcpts.length),
  });

const plain = encodeMessage({
  trace: [],
  root: {
    fields: [{ name: 'Content-Type', value: 'text/plain' }],
    body: new TextEncoder().encode('hi\r\n'),
  },
});
// example.org signs for bob and carol; the relay signs again for bob only.
const signed = sign(
  sign(plain, org, 'example.org', 's1', ['bob@example.net', 'carol@example.net']),
  relay,
  'relay.example',
  'r1',
  ['bob@example.net'],
);

test('each recipient gets the verdict verifyMessage gives it, for each client domain', async () => {
  const recipients = [
    'bob@example.net',
    'carol@example.net',
    'dave@example.net',
    'Bob@Example.NET',
  ];
  for (const domain of ['example.org', 'relay.example', 'other.example']) {
    const v = await verifyForRecipients(signed, {
      resolveTxt,
      now,
      recipients,
      authenticatedDomain: domain,
    });
    assert.equal(v.signatures.length, 2);
    assert.ok(v.signatures.every((s) => s.status === 'valid'));
    for (const rcpt of recipients) {
      const one = await verifyMessage(signed, {
        resolveTxt,
        now,
        recipient: rcpt,
        authenticatedDomain: domain,
      });
      assert.deepEqual(v.replay.get(rcpt), one.replay, `${rcpt} from ${domain}`);
    }
  }
  const relayed = await verifyForRecipients(signed, {
    resolveTxt,
    now,
    recipients,
    authenticatedDomain: 'relay.example',
  });
  assert.equal(relayed.replay.get('bob@example.net')?.ok, true);
  assert.equal(relayed.replay.get('carol@example.net')?.code, 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT');
});

test('an expired signature keeps its own code for every recipient (the recipient check is last)', async () => {
  const later = now + 7200;
  const v = await verifyForRecipients(signed, {
    resolveTxt,
    now: later,
    recipients: ['dave@example.net'],
    authenticatedDomain: 'example.org',
  });
  const one = await verifyMessage(signed, {
    resolveTxt,
    now: later,
    recipient: 'dave@example.net',
    authenticatedDomain: 'example.org',
  });
  assert.deepEqual(v.replay.get('dave@example.net'), one.replay);
  assert.equal(one.replay?.code, 'NMTP_ERR_SIG_EXPIRED');
});
