/** Domain key records (vectors), encodings, fingerprints and user certificates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  decodePublicKey,
  fingerprint,
  issueCertificate,
  keyPairFromSeed,
  parseCertificate,
  parseDomainKeyRecord,
  printDomainKeyRecord,
  publicKeyFromPem,
  publicKeyToPem,
  seedFromPem,
  seedToPem,
  splitTxt,
  verifyCertificate,
  lookupDomainKey,
} from '../../../src/core/keys/index.ts';
import { toBase64url } from '../../../src/core/sign/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { mapResolver } from '../sign/helpers.ts';
import records from '../../vectors/keys/records.json' with { type: 'json' };
import certificates from '../../vectors/keys/certificates.json' with { type: 'json' };

for (const v of records.vectors) {
  test(`key record ${v.id}: ${v.description}`, () => {
    const expected = v.expected as Record<string, unknown>;
    if ('error' in expected) {
      assert.throws(
        () => parseDomainKeyRecord(v.input.txt),
        (e: NmtpError) => e.code === expected.error,
      );
      return;
    }
    const r = parseDomainKeyRecord(v.input.txt);
    assert.equal(
      r.publicKey === undefined ? null : toBase64url(r.publicKey),
      expected.public_key_b64url,
    );
    assert.equal(r.flags, expected.flags);
    assert.equal(r.expiresAt, expected.expires_at);
    assert.equal(r.note, expected.note);
    assert.equal(printDomainKeyRecord(r), v.input.txt, 'printing gives the same text back');
  });
}

test('a record split into 255-octet strings is joined before parsing', async () => {
  const key = keyPairFromSeed(new Uint8Array(32));
  const txt = printDomainKeyRecord({ publicKey: key.publicKey, flags: 'u', note: 'x'.repeat(300) });
  const parts = splitTxt(txt);
  assert.ok(parts.length === 2 && parts.every((p) => p.length <= 255));
  const found = await lookupDomainKey(
    () => ({ status: 'ok', records: [parts, ['unrelated=1']] }),
    'example.org',
    'a',
  );
  assert.equal(found.status, 'found');
});

test('PEM round trips, and PEM matches openssl layout (SPKI / PKCS#8, RFC 8410)', () => {
  const seed = new Uint8Array(createHash('sha256').update('k').digest());
  const key = keyPairFromSeed(seed);
  assert.deepEqual(publicKeyFromPem(publicKeyToPem(key.publicKey)), key.publicKey);
  assert.deepEqual(seedFromPem(seedToPem(seed)), seed);
  assert.match(publicKeyToPem(key.publicKey), /^-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA/);
  assert.throws(
    () => publicKeyFromPem('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'),
    (e: NmtpError) => e.code === 'NMTP_ERR_KEY_PEM',
  );
});

test('fingerprint is SHA256: + base64url of the full SHA-256 of the raw key', () => {
  const pk = new Uint8Array(
    Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex'),
  );
  const expected = createHash('sha256').update(pk).digest('base64url');
  assert.equal(fingerprint(pk), `SHA256:${expected}`);
  assert.throws(
    () => decodePublicKey('AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    (e: NmtpError) => e.code === 'NMTP_ERR_KEY_WEAK',
  );
});

const domainKey = keyPairFromSeed(new Uint8Array(32).fill(7));
const userKey = keyPairFromSeed(new Uint8Array(32).fill(9));
const id = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const T = 1795000000;
const fields = {
  domain: 'example.org',
  selector: 'a',
  id,
  user: 'alice@example.org',
  userKey: userKey.publicKey,
  notBefore: T,
  notAfter: T + 86400,
};
const dns = {
  'a._nmtpkey.example.org': [printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: 'u' })],
};

test('certificate u= must be the canonical address, not another spelling of it', () => {
  // Decomposed "ë" (e + U+0308) has the right shape but is not the NFC canonical form.
  for (const user of ['zoe\u0308@example.org', 'alice@xn--bcher-kva.example.']) {
    assert.throws(
      () => parseCertificate(issueCertificate({ ...fields, user }, domainKey)),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_CERT_MALFORMED',
      user,
    );
  }
  assert.equal(
    parseCertificate(issueCertificate({ ...fields, user: 'zoë@example.org' }, domainKey)).user,
    'zoë@example.org',
  );
});

test('certificate: issue, parse, verify; and each failure has its code', async () => {
  const cert = issueCertificate(fields, domainKey);
  assert.equal(parseCertificate(cert).user, 'alice@example.org');
  const ok = await verifyCertificate(cert, { resolveTxt: mapResolver(dns), now: T + 10 });
  assert.equal(ok.ok, true);
  const code = async (
    value: string,
    now = T + 10,
    d: Record<string, string[]> = dns,
  ): Promise<string | undefined> => {
    const r = await verifyCertificate(value, { resolveTxt: mapResolver(d), now });
    return r.ok ? undefined : r.error.code;
  };
  assert.equal(await code(cert, T - 1), 'NMTP_ERR_CERT_NOT_YET_VALID');
  assert.equal(await code(cert, T + 86401), 'NMTP_ERR_CERT_EXPIRED');
  assert.equal(await code(cert.replace('u=alice@', 'u=eve@')), 'NMTP_ERR_CERT_BAD_SIGNATURE');
  assert.equal(
    await code(cert, T + 10, { ...dns, [`${id}._nmtprevoked.example.org`]: ['r'] }),
    'NMTP_ERR_CERT_REVOKED',
  );
  assert.equal(
    await code(cert, T + 10, {
      'a._nmtpkey.example.org': [
        printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: '' }),
      ],
    }),
    'NMTP_ERR_CERT_NOT_AUTHORIZED',
  );
  assert.equal(await code(cert.replace('id=a1', 'id=A1')), 'NMTP_ERR_CERT_MALFORMED');
  assert.throws(
    () => issueCertificate({ ...fields, user: 'alice@example.com' }, domainKey),
    (e: NmtpError) => e.code === 'NMTP_ERR_CERT_WRONG_DOMAIN',
  );
  const temp = await verifyCertificate(cert, {
    resolveTxt: (n) => (n.includes('_nmtprevoked') ? { status: 'temperror' } : mapResolver(dns)(n)),
    now: T + 10,
  });
  assert.equal(temp.ok ? undefined : temp.error.temporary, true);
});

for (const v of certificates.vectors) {
  test(`certificate vector ${v.id}: ${v.description}`, () => {
    const expected = v.expected as Record<string, unknown>;
    if ('error' in expected) {
      assert.throws(
        () => parseCertificate(v.input.value),
        (e: NmtpError) => e.code === expected.error,
      );
      return;
    }
    const c = parseCertificate(v.input.value);
    assert.deepEqual(
      {
        domain: c.domain,
        selector: c.selector,
        id: c.id,
        user: c.user,
        user_key_b64url: toBase64url(c.userKey),
        not_before: c.notBefore,
        not_after: c.notAfter,
      },
      expected,
    );
  });
}
