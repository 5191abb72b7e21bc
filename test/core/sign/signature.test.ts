/**
 * Signature fields: syntax, sign/verify round trip, independence of several signatures, the
 * replay rule, and the DKIM-style attacks of docs/protocol.md §30.8.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  checkReplay,
  parseSignatureField,
  signContent,
  signedInput,
  verifyAll,
  verifySignature,
  type VerifyContext,
} from '../../../src/core/sign/index.ts';
import { keyPairFromSeed, printDomainKeyRecord } from '../../../src/core/keys/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { mapResolver } from './helpers.ts';

const sha = (s: string): Uint8Array => new Uint8Array(createHash('sha256').update(s).digest());
const content = 'Content-Length: 5\r\n\r\nhello\r\n\r\n';
const digest = sha(content);
const orgKey = keyPairFromSeed(sha('org'));
const relayKey = keyPairFromSeed(sha('relay'));
const dns = {
  'a._nmtpkey.example.org': [printDomainKeyRecord({ publicKey: orgKey.publicKey, flags: '' })],
  'r1._nmtpkey.relay.example': [printDomainKeyRecord({ publicKey: relayKey.publicKey, flags: '' })],
};
const T = 1795000000;
const sign = (over: Partial<Parameters<typeof signContent>[0]> = {}): string =>
  signContent({
    digest,
    domain: 'example.org',
    selector: 'a',
    signedAt: T,
    expiresAt: T + 3600,
    recipients: ['bob@example.net'],
    salt: sha('salt').subarray(0, 16),
    key: orgKey,
    ...over,
  });
const ctx: VerifyContext = {
  digest,
  resolveTxt: mapResolver(dns),
  now: T + 10,
  recipient: 'bob@example.net',
};

test('round trip: a fresh signature verifies, and parse(print) is the identity', async () => {
  const f = sign();
  assert.equal((await verifySignature(f, ctx)).status, 'valid');
  const p = parseSignatureField(f);
  assert.equal(p.domain, 'example.org');
  assert.equal(
    new TextDecoder().decode(signedInput(f)),
    `NMTP-SIG-1\n${f.slice(0, f.indexOf('; b='))}`,
  );
});

test('strict syntax: every deviation is NMTP_ERR_SIG_MALFORMED (or VERSION/ALGORITHM)', () => {
  const f = sign();
  const cases: [string, string][] = [
    [f.replace('v=1', 'v=2'), 'NMTP_ERR_SIG_VERSION'],
    [f.replace('a=ed25519', 'a=rsa'), 'NMTP_ERR_SIG_ALGORITHM'],
    [f.replace('; s=a', '; s=a; s=a'), 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace('d=example.org', 'd=Example.org'), 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace(/t=\d+/, 't=01795000000'), 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace(/x=\d+/, `x=${T}`), 'NMTP_ERR_SIG_MALFORMED'],
    [f + ' ', 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace('; ', ';'), 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace(/h=[^;]+/, 'h=AAAA'), 'NMTP_ERR_SIG_MALFORMED'],
    [f.replace(/(r=[^:]+:)([^;]+)/, '$1$2,$2'), 'NMTP_ERR_SIG_MALFORMED'],
  ];
  for (const [value, code] of cases) {
    assert.throws(
      () => parseSignatureField(value),
      (e: NmtpError) => e.code === code,
      value,
    );
  }
});

test('attack: appended content changes the digest, so h= no longer matches', async () => {
  const r = await verifySignature(sign(), { ...ctx, digest: sha(content + 'P.S. pay me') });
  assert.equal(r.code, 'NMTP_ERR_SIG_DIGEST_MISMATCH');
});

test('attack: replay to another recipient fails (rcpt binding)', async () => {
  const r = await verifySignature(sign(), { ...ctx, recipient: 'victim@example.com' });
  assert.equal(r.status, 'not-for-recipient');
});

test('attack: tampering with t=, x=, r=, d=, s= or h= breaks the signature', async () => {
  const f = sign();
  const other = sign({ recipients: ['victim@example.com'] });
  const tampered = [
    f.replace(/t=\d+/, `t=${T - 1}`),
    f.replace(/x=\d+/, `x=${T + 999999}`),
    f.replace(/r=[^;]+/, other.match(/r=[^;]+/)![0]),
    f.replace('s=a', 's=r1').replace('d=example.org', 'd=relay.example'),
  ];
  for (const t of tampered) {
    const r = await verifySignature(t, { ...ctx, recipient: 'victim@example.com' });
    assert.equal(r.status, 'invalid', t);
  }
});

test('attack: a signature over other content does not verify for this content', async () => {
  const r = await verifySignature(sign({ digest: sha('other') }), ctx);
  assert.equal(r.code, 'NMTP_ERR_SIG_DIGEST_MISMATCH');
});

test('attack: the signature of one field cannot be moved onto another (context and value are signed)', async () => {
  const a = sign();
  const b = sign({ expiresAt: T + 7200 });
  const moved = `${b.slice(0, b.indexOf('; b='))}${a.slice(a.indexOf('; b='))}`;
  assert.equal((await verifySignature(moved, ctx)).code, 'NMTP_ERR_SIG_BAD_SIGNATURE');
});

test('adding a second signature leaves the first verifying; a bad one spoils only itself', async () => {
  const first = sign();
  const relay = sign({ domain: 'relay.example', selector: 'r1', key: relayKey, signedAt: T + 5 });
  const broken = relay.replace(/b=./, (m) => (m === 'b=A' ? 'b=B' : 'b=A'));
  const results = await verifyAll([first, relay, broken, 'garbage'], ctx);
  assert.deepEqual(
    results.map((r) => r.status),
    ['valid', 'valid', 'invalid', 'invalid'],
  );
});

test('replay rule: the last signature of the authenticated domain must be valid for the recipient', async () => {
  const org = sign();
  const relayForBob = sign({ domain: 'relay.example', selector: 'r1', key: relayKey });
  const relayForOther = sign({
    domain: 'relay.example',
    selector: 'r1',
    key: relayKey,
    recipients: ['x@example.com'],
  });
  const ok = checkReplay(await verifyAll([org, relayForBob], ctx), 'relay.example');
  assert.deepEqual(ok, { ok: true, index: 1, temporary: false });
  // A relay replaying an old message it once signed for someone else: its LAST signature
  // does not list bob, even though an earlier one (by example.org) does.
  const replay = checkReplay(
    await verifyAll([org, relayForBob, relayForOther], ctx),
    'relay.example',
  );
  assert.equal(replay.ok, false);
  assert.equal(replay.code, 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT');
  const none = checkReplay(await verifyAll([org], ctx), 'relay.example');
  assert.equal(none.code, 'NMTP_ERR_SIG_NO_TRANSFER_SIGNATURE');
  const expired = checkReplay(await verifyAll([org], { ...ctx, now: T + 7200 }), 'example.org');
  assert.equal(expired.code, 'NMTP_ERR_SIG_EXPIRED');
});

test('DNS failure is temporary and reported as unknown-key', async () => {
  const r = await verifySignature(sign(), {
    ...ctx,
    resolveTxt: () => ({ status: 'temperror', detail: 'SERVFAIL' }),
  });
  assert.equal(r.status, 'unknown-key');
  assert.equal(r.code, 'NMTP_ERR_KEY_LOOKUP_FAILED');
  assert.equal(r.temporary, true);
});

test('a signature dated beyond the clock skew is refused', async () => {
  const r = await verifySignature(sign({ signedAt: T + 1000, expiresAt: T + 5000 }), ctx);
  assert.equal(r.code, 'NMTP_ERR_SIG_FUTURE');
});

test('two NMTPKEY1 records at one name are ambiguous', async () => {
  const rec = dns['a._nmtpkey.example.org'][0]!;
  const r = await verifySignature(sign(), {
    ...ctx,
    resolveTxt: mapResolver({ 'a._nmtpkey.example.org': [rec, rec] }),
  });
  assert.equal(r.code, 'NMTP_ERR_KEY_AMBIGUOUS');
});

test('a resolver that throws counts as a temporary DNS failure, not a crash', async () => {
  const r = await verifySignature(sign(), {
    ...ctx,
    resolveTxt: () => {
      throw new Error('socket closed');
    },
  });
  assert.equal(r.code, 'NMTP_ERR_KEY_LOOKUP_FAILED');
  assert.equal(r.temporary, true);
});
