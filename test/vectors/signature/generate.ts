/**
 * Generates test/vectors/signature/*.json. Run: node --import tsx test/vectors/signature/generate.ts
 *
 * Independence of the expectations: every expected status follows from how the vector is
 * built (a tampered tag, a wrong key, a time past x=, a revoked record…), not from running
 * the verifier; and every signature marked valid is re-verified by `openssl pkeyutl` in
 * test/core/sign/openssl.test.ts, and by both ed25519 implementations in vectors.test.ts.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { keyPairFromSeed, issueCertificate, printDomainKeyRecord } from '../../../src/core/keys/index.ts';
import { signContent, signedInput, toBase64url } from '../../../src/core/sign/index.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const seq = (start: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

// Worked example (also shown in docs/protocol.md §30.9).
const rootPart = 'Content-Length: 5\r\n\r\nhello\r\n\r\n';
const digest = new Uint8Array(createHash('sha256').update(rootPart).digest());
const domainKey = keyPairFromSeed(seq(0x00, 32));
const otherKey = keyPairFromSeed(seq(0x40, 32));
const userKey = keyPairFromSeed(seq(0x80, 32));
const salt = seq(0xa0, 16);
const T = 1795000000;
const X = T + 7 * 86400;
const base = {
  digest,
  domain: 'example.org',
  selector: 's2026',
  signedAt: T,
  expiresAt: X,
  recipients: ['bob@example.net'],
  salt,
  key: domainKey,
};
const single = signContent(base);
const example = {
  description: 'Worked example of docs/protocol.md §30.9',
  root_part_text: rootPart,
  digest_hex: hex(digest),
  seed_hex: hex(domainKey.seed),
  public_key_hex: hex(domainKey.publicKey),
  public_key_b64url: toBase64url(domainKey.publicKey),
  domain: 'example.org',
  selector: 's2026',
  signed_at: T,
  expires_at: X,
  salt_hex: hex(salt),
  recipients: ['bob@example.net'],
  signed_input_text: new TextDecoder().decode(signedInput(single)),
  field_value: single,
  dns_record: printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: 'u' }),
};
writeFileSync(new URL('worked-example.json', import.meta.url), JSON.stringify(example, null, 2) + '\n');

const keyName = 's2026._nmtpkey.example.org';
const record = printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: 'u' });
const dns: Record<string, string[]> = { [keyName]: [record] };
const now = T + 60;
const vec = (
  id: string,
  description: string,
  field: string,
  expected: { status: string; code?: string },
  extra: { recipient?: string; now?: number; dns?: Record<string, string[]>; certificates?: string[]; digest_hex?: string } = {},
): object => ({
  id,
  description,
  input: {
    field_value: field,
    digest_hex: extra.digest_hex ?? hex(digest),
    now: extra.now ?? now,
    recipient: extra.recipient ?? 'bob@example.net',
    dns: extra.dns ?? dns,
    certificates: extra.certificates ?? [],
  },
  expected,
});
const multi = signContent({ ...base, recipients: ['bob@example.net', 'carol@example.com', 'dave@example.net'] });
const swap = (f: string, from: RegExp | string, to: string): string => f.replace(from, to);
const appendedDigest = hex(createHash('sha256').update(rootPart + 'X').digest());
const certId = '0123456789abcdef0123456789abcdef';
const cert = issueCertificate(
  { domain: 'example.org', selector: 's2026', id: certId, user: 'alice@example.org', userKey: userKey.publicKey, notBefore: T - 86400, notAfter: T + 30 * 86400 },
  domainKey,
);
const userSig = signContent({ ...base, user: 'alice@example.org', certId, key: userKey });
const vectors = [
  vec('single-valid', 'One domain signature, one recipient', single, { status: 'valid' }),
  vec('multi-valid-2nd', 'Three recipients; the verifier holds the second', multi, { status: 'valid' }, { recipient: 'carol@example.com' }),
  vec('not-for-recipient', 'Replay to a recipient not listed in r=', single, { status: 'not-for-recipient', code: 'NMTP_ERR_SIG_NOT_FOR_RECIPIENT' }, { recipient: 'mallory@example.net' }),
  vec('appended-content', 'Content with one appended octet: the digest differs', single, { status: 'invalid', code: 'NMTP_ERR_SIG_DIGEST_MISMATCH' }, { digest_hex: appendedDigest }),
  vec('tampered-t', 't= changed after signing', swap(single, /t=\d+/, `t=${T + 1}`), { status: 'invalid', code: 'NMTP_ERR_SIG_BAD_SIGNATURE' }),
  vec('tampered-x', 'x= extended after signing', swap(single, /x=\d+/, `x=${X + 86400}`), { status: 'invalid', code: 'NMTP_ERR_SIG_BAD_SIGNATURE' }),
  vec('tampered-d', 'd= changed to another domain publishing the same key', swap(single, 'd=example.org', 'd=example.com'), { status: 'invalid', code: 'NMTP_ERR_SIG_BAD_SIGNATURE' }, { dns: { ...dns, 's2026._nmtpkey.example.com': [record] } }),
  vec('tampered-r', 'r= swapped for the hashes of another recipient (same salt)', swap(single, /r=[^;]+/, `r=${toBase64url(salt)}:${toBase64url(createHash('sha256').update(salt).update('mallory@example.net').digest().subarray(0, 16))}`), { status: 'invalid', code: 'NMTP_ERR_SIG_BAD_SIGNATURE' }, { recipient: 'mallory@example.net' }),
  vec('wrong-key', 'DNS publishes a different key', single, { status: 'invalid', code: 'NMTP_ERR_SIG_BAD_SIGNATURE' }, { dns: { [keyName]: [printDomainKeyRecord({ publicKey: otherKey.publicKey, flags: '' })] } }),
  vec('expired', 'Verified after x=', single, { status: 'expired', code: 'NMTP_ERR_SIG_EXPIRED' }, { now: X + 1 }),
  vec('revoked', 'The key record has an empty p=', single, { status: 'revoked', code: 'NMTP_ERR_KEY_REVOKED' }, { dns: { [keyName]: ['v=NMTPKEY1; k=ed25519; p='] } }),
  vec('unknown-key', 'No record at the selector', single, { status: 'unknown-key', code: 'NMTP_ERR_KEY_NOT_FOUND' }, { dns: {} }),
  vec('malformed-order', 'Tags out of order', swap(single, /^v=1; a=ed25519/, 'a=ed25519; v=1'), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('malformed-space', 'Two spaces after a semicolon', swap(single, '; s=', ';  s='), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('malformed-padding', 'b= with base64 padding', single + '==', { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('user-key-valid', 'User-key signature with its certificate in the trace block', userSig, { status: 'valid' }, { certificates: [cert] }),
  vec('user-key-no-cert', 'User-key signature without its certificate', userSig, { status: 'invalid', code: 'NMTP_ERR_SIG_CERT_MISSING' }),
  vec('user-key-cert-revoked', 'The certificate has a revocation record', userSig, { status: 'revoked', code: 'NMTP_ERR_CERT_REVOKED' }, { certificates: [cert], dns: { ...dns, [`${certId}._nmtprevoked.example.org`]: ['revoked'] } }),
  vec('user-key-not-authorized', 'The domain key lacks f=u', userSig, { status: 'invalid', code: 'NMTP_ERR_CERT_NOT_AUTHORIZED' }, { certificates: [cert], dns: { [keyName]: [printDomainKeyRecord({ publicKey: domainKey.publicKey, flags: '' })] } }),
  // §30.2 precedence: the version first, then the algorithm, then everything else.
  vec('version-first', 'v=2 with tags this version does not know: the version code, not malformed', 'v=2; k=ed448; sig=xyz', { status: 'invalid', code: 'NMTP_ERR_SIG_VERSION' }),
  vec('version-before-algorithm', 'v=2 and a=ed448: the version code', swap(single, /^v=1; a=ed25519/, 'v=2; a=ed448'), { status: 'invalid', code: 'NMTP_ERR_SIG_VERSION' }),
  vec('algorithm-first', 'v=1, a=ed448 and tags this version does not know: the algorithm code', 'v=1; a=ed448; k=xyz', { status: 'invalid', code: 'NMTP_ERR_SIG_ALGORITHM' }),
  // A "tag" is name= and a value of one or more characters other than ";" and SP (§30.2):
  // an empty v= or a= is no tag, so neither a version nor an algorithm: malformed.
  vec('version-empty', 'v= with an empty value: no tag, so malformed (not the version code)', swap(single, /^v=1; /, 'v=; '), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('version-with-space', 'v=1 2: a value holding SP is no tag: malformed', swap(single, /^v=1; /, 'v=1 2; '), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('algorithm-empty', 'a= with an empty value: no tag, so malformed (not the algorithm code)', swap(single, /^v=1; a=ed25519; /, 'v=1; a=; '), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  vec('malformed-duplicate-hash', 'r= lists the same recipient hash twice', swap(single, /r=([^:]+):([^;]+)/, 'r=$1:$2,$2'), { status: 'invalid', code: 'NMTP_ERR_SIG_MALFORMED' }),
  // §30.6 step 4b: a certificate named by c= that does not parse reports why (§40.6).
  vec('user-key-cert-weak-key', 'The certificate k= is a small-order point', userSig, { status: 'invalid', code: 'NMTP_ERR_KEY_WEAK' }, { certificates: [cert.replace(/k=[^;]+/, `k=${toBase64url(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0)))}`)] }),
  vec('user-key-cert-na-not-after-nb', 'The certificate na= is not later than nb=', userSig, { status: 'invalid', code: 'NMTP_ERR_CERT_MALFORMED' }, { certificates: [cert.replace(/na=\d+/, `na=${T - 86400}`)] }),
];
writeFileSync(
  new URL('vectors.json', import.meta.url),
  JSON.stringify({ description: 'Signature field verification vectors (§30.10). dns maps a TXT owner name to its records; a missing name is NXDOMAIN.', vectors }, null, 2) + '\n',
);
