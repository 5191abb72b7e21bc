/**
 * Both ed25519 implementations against published vectors (RFC 8032 §7.1, all 150 tests of
 * Wycheproof's ed25519_test.json) and our own edge cases; openssl as an independent third
 * opinion on the RFC vectors and on Wycheproof's valid vectors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ed from '@noble/ed25519';
import { createHash } from 'node:crypto';
import { nativeEd25519, nobleEd25519 } from '../../../src/core/sign/index.ts';
import { publicKeyToPem } from '../../../src/core/keys/index.ts';
import rfc from '../../vectors/ed25519/rfc8032.json' with { type: 'json' };
import wycheproof from '../../vectors/ed25519/wycheproof.json' with { type: 'json' };

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const IMPLS = [nativeEd25519, nobleEd25519];

/** openssl's verdict on one vector (an independent ed25519 implementation); its output. */
function opensslVerify(publicKeyHex: string, msgHex: string, sigHex: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-ed-'));
  try {
    writeFileSync(join(dir, 'pub.pem'), publicKeyToPem(hex(publicKeyHex)));
    writeFileSync(join(dir, 'msg.bin'), hex(msgHex));
    writeFileSync(join(dir, 'sig.bin'), hex(sigHex));
    const files = ['-inkey', 'pub.pem', '-rawin', '-in', 'msg.bin', '-sigfile', 'sig.bin'];
    return execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', ...files], {
      cwd: dir,
      encoding: 'utf8',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const v of rfc.vectors) {
  test(`${v.id}: both implementations derive the key, sign identically, verify`, () => {
    for (const impl of IMPLS) {
      const seed = hex(v.secret_seed_hex);
      assert.equal(Buffer.from(impl.publicKeyFromSeed(seed)).toString('hex'), v.public_key_hex);
      assert.equal(Buffer.from(impl.sign(seed, hex(v.msg_hex))).toString('hex'), v.sig_hex);
      assert.equal(impl.verify(hex(v.public_key_hex), hex(v.msg_hex), hex(v.sig_hex)), true);
      // One flipped bit in the message must fail.
      const m = hex(v.msg_hex.length ? v.msg_hex : '00');
      m[0] = m[0]! ^ 1;
      assert.equal(impl.verify(hex(v.public_key_hex), m, hex(v.sig_hex)), false);
    }
  });

  // openssl 3.0's pkeyutl refuses an empty input file ("Could not allocate 0 bytes for
  // oneshot sign/verify buffer"), so TEST 1 (empty message) is checked by both in-process
  // implementations only: no openssl test exists for it.
  if (v.msg_hex === '') continue;
  test(`${v.id}: openssl pkeyutl -verify -rawin agrees`, () => {
    assert.match(
      opensslVerify(v.public_key_hex, v.msg_hex, v.sig_hex),
      /Signature Verified Successfully/,
    );
  });
}

test('Wycheproof file is complete: numberOfTests vectors, tcId 1..N in order', () => {
  assert.equal(wycheproof.number_of_tests, 150);
  assert.deepEqual(
    wycheproof.vectors.map((v) => v.id),
    Array.from({ length: wycheproof.number_of_tests }, (_, i) => `wycheproof-${i + 1}`),
  );
});

// Wycheproof's results for this file are only "valid" and "invalid" (no "acceptable"), and
// our strict rule (docs/protocol.md §30.5) must give exactly that verdict.
test(`Wycheproof (${wycheproof.vectors.length} vectors): both implementations give Wycheproof's verdict`, () => {
  for (const v of wycheproof.vectors) {
    assert.ok(v.expected === 'valid' || v.expected === 'invalid', `${v.id}: ${v.expected}`);
    for (const impl of IMPLS) {
      assert.equal(
        impl.verify(hex(v.public_key_hex), hex(v.msg_hex), hex(v.sig_hex)),
        v.expected === 'valid',
        `${v.id} ${impl.name} (${v.flags.join(',')})`,
      );
    }
  }
});

test('Wycheproof valid vectors also verify with openssl pkeyutl (independent check of the transcription)', () => {
  // openssl 3.0's pkeyutl refuses an empty input file, so empty messages are skipped here.
  const all = wycheproof.vectors.filter((v) => v.expected === 'valid' && v.msg_hex !== '');
  for (const v of all) {
    assert.match(
      opensslVerify(v.public_key_hex, v.msg_hex, v.sig_hex),
      /Signature Verified Successfully/,
      v.id,
    );
  }
});

// --- Our own edge cases for the strict rule (docs/protocol.md §30.5) ---------------------

const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const le = (n: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const fromLe = (b: Uint8Array): bigint => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);

test('small-order public key (identity) with R = identity, S = 0: refused by both (OpenSSL alone would accept)', () => {
  const identity = hex('0100000000000000000000000000000000000000000000000000000000000000');
  const sig = new Uint8Array(64);
  sig.set(identity, 0);
  for (const impl of IMPLS)
    assert.equal(impl.verify(identity, new TextEncoder().encode('any message'), sig), false);
});

test('non-canonical public key encoding (y = p): refused by both', () => {
  const key = hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  for (const impl of IMPLS)
    assert.equal(impl.verify(key, new Uint8Array(1), new Uint8Array(64)), false);
});

test('S + L (non-canonical S) of a valid signature: refused by both', () => {
  const v = rfc.vectors[1]!;
  const sig = hex(v.sig_hex);
  const s = fromLe(sig.subarray(32)) + L;
  sig.set(le(s), 32);
  for (const impl of IMPLS)
    assert.equal(impl.verify(hex(v.public_key_hex), hex(v.msg_hex), sig), false);
});

test('R with a torsion component: the cofactored check (noble strict) accepts, our cofactorless rule refuses in both', () => {
  const seed = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
  const { scalar: a, pointBytes: A } = ed.utils.getExtendedPublicKey(seed);
  const msg = new TextEncoder().encode('torsion');
  const T8 = ed.Point.fromBytes(
    hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'),
  );
  const r = 123456789n;
  const R = ed.Point.BASE.multiply(r).add(T8).toBytes();
  const k =
    fromLe(new Uint8Array(createHash('sha512').update(R).update(A).update(msg).digest())) % L;
  const S = (r + k * a) % L;
  const sig = new Uint8Array(64);
  sig.set(R, 0);
  sig.set(le(S), 32);
  assert.equal(ed.verify(sig, msg, A, { zip215: false }), true, 'noble cofactored accepts');
  for (const impl of IMPLS) assert.equal(impl.verify(A, msg, sig), false, impl.name);
});

test('wrong lengths are refused, never thrown', () => {
  const v = rfc.vectors[1]!;
  for (const impl of IMPLS) {
    assert.equal(
      impl.verify(hex(v.public_key_hex).subarray(1), hex(v.msg_hex), hex(v.sig_hex)),
      false,
    );
    assert.equal(
      impl.verify(hex(v.public_key_hex), hex(v.msg_hex), hex(v.sig_hex).subarray(1)),
      false,
    );
  }
});

test('both implementations sign byte-identically for many seeds and messages', () => {
  for (let i = 0; i < 50; i++) {
    const seed = new Uint8Array(createHash('sha256').update(`seed ${i}`).digest());
    const msg = new Uint8Array(createHash('sha512').update(`msg ${i}`).digest()).subarray(0, i);
    const a = nativeEd25519.sign(seed, msg);
    assert.deepEqual(nobleEd25519.sign(seed, msg), a);
    assert.deepEqual(nobleEd25519.publicKeyFromSeed(seed), nativeEd25519.publicKeyFromSeed(seed));
    const pk = nativeEd25519.publicKeyFromSeed(seed);
    assert.equal(nobleEd25519.verify(pk, msg, a), true);
    assert.equal(nativeEd25519.verify(pk, msg, a), true);
  }
});
