/**
 * The message layer end to end, in memory: frame a message, sign it as author domain and as
 * relay, verify each signature independently, apply the replay rule, and check that the
 * known email-signing attacks fail (appended content, duplicate From, replay to another
 * recipient, tampering).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encodeMessage } from '../../../src/core/frame/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  domainKeyName,
  issueCertificate,
  keyPairFromSeed,
  printDomainKeyRecord,
  type TxtAnswer,
} from '../../../src/core/keys/index.ts';
import { signMessage, verifyMessage } from '../../../src/core/message/index.ts';

const utf8 = new TextEncoder();
const seed = (label: string): Uint8Array =>
  new Uint8Array(createHash('sha256').update(label).digest());
const salt = (label: string): Uint8Array => seed(label).subarray(0, 16);

const author = keyPairFromSeed(seed('author key'));
const relay = keyPairFromSeed(seed('relay key'));
const user = keyPairFromSeed(seed('user key'));
const T0 = 1_795_000_000;

const dns = new Map<string, string>([
  [
    domainKeyName('s1', 'example.org'),
    printDomainKeyRecord({ publicKey: author.publicKey, flags: 'u' }),
  ],
  [
    domainKeyName('r1', 'relay.example'),
    printDomainKeyRecord({ publicKey: relay.publicKey, flags: '' }),
  ],
]);
const resolveTxt = (name: string): TxtAnswer => {
  const txt = dns.get(name);
  return txt === undefined ? { status: 'nxdomain' } : { status: 'ok', records: [[txt]] };
};

function sample(extraFields: { name: string; value: string }[] = []): Uint8Array {
  return encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'From', value: 'Zoë Ünal <zoë@example.org>' },
        { name: 'To', value: 'Bob <bob@xn--bcher-kva.example>, <carol@relay.example>' },
        { name: 'Subject', value: 'Grüße, plain UTF-8' },
        { name: 'Date', value: '2026-11-29T03:40:00Z' },
        ...extraFields,
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'text/plain' }],
          body: utf8.encode('Hallo Bob.\r\n'),
        },
        {
          fields: [
            { name: 'Content-Type', value: 'application/octet-stream' },
            { name: 'Content-Filename', value: 'Bericht; "final".bin' },
          ],
          body: new Uint8Array([0, 1, 2, 13, 10, 13, 10, 255]),
        },
      ],
    },
  });
}

const authorSign = (bytes: Uint8Array, recipients = ['bob@bücher.example', 'list@relay.example']) =>
  signMessage(bytes, {
    key: author,
    domain: 'example.org',
    selector: 's1',
    recipients,
    signedAt: T0,
    expiresAt: T0 + 86_400,
    salt: salt('a'),
  });

test('two signatures verify independently; the second leaves the first intact', async () => {
  const once = authorSign(sample());
  const twice = signMessage(once, {
    key: relay,
    domain: 'relay.example',
    selector: 'r1',
    recipients: ['bob@xn--bcher-kva.example'],
    signedAt: T0 + 60,
    expiresAt: T0 + 3600,
    salt: salt('r'),
  });
  // Only trace lines were appended: the first signed message is a prefix up to its trace end.
  const v = await verifyMessage(twice, {
    resolveTxt,
    now: T0 + 120,
    recipient: 'bob@bücher.example',
    authenticatedDomain: 'relay.example',
  });
  assert.deepEqual(
    v.signatures.map((s) => s.status),
    ['valid', 'valid'],
  );
  assert.equal(v.replay?.ok, true);
  assert.equal(v.replay?.index, 1);
  const first = await verifyMessage(once, { resolveTxt, now: T0 + 120 });
  assert.deepEqual(first.contentDigest, v.contentDigest);
});

test('replay to another recipient fails the replay rule', async () => {
  const signed = authorSign(sample());
  const v = await verifyMessage(signed, {
    resolveTxt,
    now: T0 + 10,
    recipient: 'mallory@elsewhere.example',
    authenticatedDomain: 'example.org',
  });
  assert.equal(v.signatures[0]?.status, 'not-for-recipient');
  assert.equal(v.replay?.ok, false);
  assert.equal(v.replay?.code, 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT');
});

test('a transfer from a domain that did not sign has no transfer signature', async () => {
  const signed = authorSign(sample());
  const v = await verifyMessage(signed, {
    resolveTxt,
    now: T0 + 10,
    recipient: 'bob@bücher.example',
    authenticatedDomain: 'relay.example',
  });
  assert.equal(v.signatures[0]?.status, 'valid');
  assert.equal(v.replay?.code, 'NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE');
});

test('expired signatures are reported as expired', async () => {
  const v = await verifyMessage(authorSign(sample()), { resolveTxt, now: T0 + 86_401 });
  assert.equal(v.signatures[0]?.status, 'expired');
});

test('appended content is refused before any signature is looked at', async () => {
  const signed = authorSign(sample());
  const appended = new Uint8Array([...signed, ...utf8.encode('PS: wire money\r\n')]);
  await assert.rejects(verifyMessage(appended, { resolveTxt, now: T0 }), (e: unknown) => {
    return e instanceof NmtpError && e.code === 'NMTP_ERR_FRAME_TRAILING_BYTES';
  });
});

test('a duplicate From (reader and verifier disagreeing) is a malformed message', () => {
  assert.throws(
    () => authorSign(sample([{ name: 'from', value: 'CEO <ceo@example.org>' }])),
    (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_FRAME_DUPLICATE_FIELD',
  );
});

test('changing one content octet invalidates every signature', async () => {
  const signed = authorSign(sample());
  const i = Buffer.from(signed).indexOf('Hallo');
  const tampered = new Uint8Array(signed);
  tampered[i] = 'J'.charCodeAt(0);
  const v = await verifyMessage(tampered, { resolveTxt, now: T0 + 1 });
  assert.equal(v.signatures[0]?.status, 'invalid');
  assert.equal(v.signatures[0]?.code, 'NMTP_ERR_SIG_DIGEST_MISMATCH');
});

test('addresses in address-list fields must be canonical NMTP addresses', () => {
  const bytes = encodeMessage({
    trace: [],
    root: { fields: [{ name: 'From', value: '<a@EXAMPLE.org>' }], body: new Uint8Array() },
  });
  assert.throws(
    () => authorSign(bytes),
    (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_NOT_CANONICAL',
  );
});

test('a user-key signature travels with its certificate and verifies through it', async () => {
  const certificate = issueCertificate(
    {
      domain: 'example.org',
      selector: 's1',
      id: '0123456789abcdef0123456789abcdef',
      user: 'zoë@example.org',
      userKey: user.publicKey,
      notBefore: T0 - 10,
      notAfter: T0 + 86_400 * 30,
    },
    author,
  );
  const signed = signMessage(sample(), {
    key: user,
    domain: 'example.org',
    selector: 's1',
    recipients: ['bob@bücher.example'],
    signedAt: T0,
    expiresAt: T0 + 600,
    salt: salt('u'),
    user: { address: 'zoë@example.org', certId: '0123456789abcdef0123456789abcdef', certificate },
  });
  const v = await verifyMessage(signed, {
    resolveTxt,
    now: T0 + 5,
    recipient: 'bob@bücher.example',
  });
  assert.deepEqual(
    v.signatures.map((s) => s.status),
    ['valid'],
  );
  assert.equal(v.signatures[0]?.signature?.user, 'zoë@example.org');
});

test('display names in address lists are held to the display-name rules', () => {
  const bytes = encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: 'Evil\u202E <ann@example.org>' }],
      body: new Uint8Array(),
    },
  });
  assert.throws(
    () => authorSign(bytes),
    (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_DISPLAY_NAME_INVALID',
  );
});
