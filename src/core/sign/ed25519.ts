/**
 * Ed25519 (RFC 8032 pure Ed25519) behind one interface, with two implementations that must
 * agree byte for byte and verdict for verdict:
 *
 *  - `nativeEd25519`: node:crypto (OpenSSL). Fast; the hot path. KeyObjects are built from
 *    raw 32-byte keys via fixed DER prefixes and cached per key, because building one per
 *    call costs more than the signature itself.
 *  - `nobleEd25519`: @noble/ed25519 3.2 (pure JS, audited). A second, independent
 *    implementation for cross-checking and for environments without OpenSSL ed25519.
 *
 * ACCEPTANCE RULE (docs/protocol.md §30.5): strict RFC 8032, as OpenSSL does
 * it, plus a refusal of weak public keys. A signature (R, S) on message M under key A is
 * accepted iff
 *   1. the signature is 64 octets and the key 32 octets;
 *   2. S < L (canonical scalar; RFC 8032 §5.1.7 step 1);
 *   3. A is a canonical encoding (y < p; not x = 0 with the sign bit set) and not one of the
 *      eight small-order points;
 *   4. R decodes (canonically) and [S]B = R + [k]A exactly — the cofactorless equation,
 *      with k = SHA-512(R || A || M) mod L.
 * Checks 1–3 run here, before either implementation, so both see identical inputs; check 4
 * is what OpenSSL computes, and what the noble path computes with noble's point arithmetic
 * (noble's own `verify` uses the cofactored equation [8]…, which accepts a few signatures
 * that OpenSSL rejects, so we do not call it).
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign } from 'node:crypto';
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { NmtpError } from '../errors/index.ts';

/** A signing key: the 32-byte RFC 8032 secret seed and its public key. */
export interface SigningKey {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface Ed25519 {
  /** Implementation name, for benchmarks and test titles. */
  readonly name: string;
  /** RFC 8032 §5.1.5: the public key of a 32-byte secret seed. */
  publicKeyFromSeed(seed: Uint8Array): Uint8Array;
  /** RFC 8032 §5.1.6 pure Ed25519 signature (deterministic: same inputs, same 64 bytes). */
  sign(key: SigningKey | Uint8Array, message: Uint8Array): Uint8Array;
  /** The strict acceptance rule above. Never throws on hostile input: returns false. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

// ---------------------------------------------------------------------------------------
// Shared strict pre-checks (rules 1–3), identical for both implementations.

/** L = 2^252 + 27742317777372353535851937790883648493, the prime group order. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
/** p = 2^255 - 19, the field prime. */
const P = (1n << 255n) - 19n;

function bytesToBigLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

/** The canonical encodings of the eight points of order dividing 8 (RFC 8032 curve). */
const SMALL_ORDER_HEX = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000', // identity (order 1)
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // (0, -1), order 2
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4 (x<0)
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
]);

/**
 * Rule 3 for a 32-byte point encoding: canonical, and (for public keys) not small-order.
 * "A public key MUST be a canonical point encoding and MUST NOT be a point of small order."
 */
export function isAcceptablePublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  if (!isCanonicalPointEncoding(publicKey)) return false;
  return !SMALL_ORDER_HEX.has(Buffer.from(publicKey).toString('hex'));
}

/** y < p, and not (x = 0 with the sign bit set); x = 0 happens exactly for y = ±1. */
export function isCanonicalPointEncoding(enc: Uint8Array): boolean {
  if (enc.length !== 32) return false;
  const sign = (enc[31]! & 0x80) !== 0;
  const yBytes = Uint8Array.from(enc);
  yBytes[31] = yBytes[31]! & 0x7f;
  const y = bytesToBigLE(yBytes);
  if (y >= P) return false;
  if (sign && (y === 1n || y === P - 1n)) return false;
  return true;
}

/** Rule 2: "S, read as a little-endian integer, is less than L" (§30.5; RFC 8032 §5.1.7). */
function isCanonicalS(signature: Uint8Array): boolean {
  return bytesToBigLE(signature.subarray(32, 64)) < L;
}

/**
 * Rules 1–3, shared. The noble path runs them on every call (it is the slow reference
 * anyway); the native path caches the per-key part (rule 3) together with its KeyObject.
 */
function precheck(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return signature.length === 64 && isAcceptablePublicKey(publicKey) && isCanonicalS(signature);
}

function seedOf(key: SigningKey | Uint8Array): Uint8Array {
  const seed = key instanceof Uint8Array ? key : key.seed;
  if (seed.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH', 'an ed25519 seed is 32 bytes');
  return seed;
}

// ---------------------------------------------------------------------------------------
// node:crypto (OpenSSL)

/** DER prefixes: PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo for id-Ed25519 (RFC 8410). */
export const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
export const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** A small bounded cache: keys in use are few (our own, and a few hundred remote ones). */
class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K, make: () => V): V {
    let v = this.map.get(k);
    if (v === undefined) {
      if (this.map.size >= this.max) this.map.clear(); // crude but bounded; refills quickly
      v = make();
      this.map.set(k, v);
    }
    return v;
  }
}

class NativeEd25519 implements Ed25519 {
  readonly name = 'node:crypto';
  /**
   * Keyed by the seed array object itself, so secret bytes never become map-key strings.
   * Consequence: a seed array must not be mutated after first use (keyPairFromSeed copies
   * the caller's seed into a fresh array for exactly this reason).
   */
  private readonly privateKeys = new WeakMap<Uint8Array, KeyObject>();
  private readonly publicKeys = new BoundedCache<string, KeyObject | null>(4096);

  private privateKey(seed: Uint8Array): KeyObject {
    let k = this.privateKeys.get(seed);
    if (k === undefined) {
      const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
      k = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      der.fill(0);
      this.privateKeys.set(seed, k);
    }
    return k;
  }

  private publicKey(publicKey: Uint8Array): KeyObject | null {
    const id = Buffer.from(publicKey).toString('base64');
    return this.publicKeys.get(id, () => {
      // Pre-checks are per key, so they are cached with the KeyObject (null = refused).
      if (!isAcceptablePublicKey(publicKey)) return null;
      const der = Buffer.concat([SPKI_ED25519_PREFIX, publicKey]);
      return createPublicKey({ key: der, format: 'der', type: 'spki' });
    });
  }

  publicKeyFromSeed(seed: Uint8Array): Uint8Array {
    const der = createPublicKey(this.privateKey(seedOf(seed))).export({
      format: 'der',
      type: 'spki',
    });
    return new Uint8Array(der.subarray(SPKI_ED25519_PREFIX.length));
  }

  sign(key: SigningKey | Uint8Array, message: Uint8Array): Uint8Array {
    return new Uint8Array(cryptoSign(null, message, this.privateKey(seedOf(key))));
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey.length !== 32 || signature.length !== 64 || !isCanonicalS(signature)) {
      return false;
    }
    const keyObject = this.publicKey(publicKey);
    if (keyObject === null) return false;
    try {
      return cryptoVerify(null, message, keyObject, signature);
    } catch {
      return false;
    }
  }
}

// ---------------------------------------------------------------------------------------
// @noble/ed25519

// noble's synchronous API throws until a synchronous SHA-512 is installed; node's is fine
// (hashing is allowed in core, randomness is not).
ed.hashes.sha512 = (m) => {
  const out = new Uint8Array(64);
  out.set(createHash('sha512').update(m).digest());
  return out;
};

class NobleEd25519 implements Ed25519 {
  readonly name = '@noble/ed25519';

  publicKeyFromSeed(seed: Uint8Array): Uint8Array {
    return ed.getPublicKey(seedOf(seed));
  }

  sign(key: SigningKey | Uint8Array, message: Uint8Array): Uint8Array {
    return ed.sign(message, seedOf(key));
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (!precheck(publicKey, signature)) return false;
    try {
      // Strict decoding (zip215 = false): y < p, and x = 0 only with the sign bit clear.
      const A = ed.Point.fromBytes(publicKey, false);
      const rBytes = signature.subarray(0, 32);
      // R must decode strictly (throws otherwise); the final byte comparison then also
      // rejects any non-canonical R, exactly as OpenSSL's re-encode-and-compare does.
      ed.Point.fromBytes(rBytes, false);
      const S = bytesToBigLE(signature.subarray(32, 64));
      const h = createHash('sha512').update(rBytes).update(publicKey).update(message).digest();
      const k = bytesToBigLE(h) % L;
      // Cofactorless check [S]B == R + [k]A, as OpenSSL (and RFC 8032 §5.1.7 step 3's
      // "sufficient, but not required" form) does: compare encodings, like OpenSSL.
      const SB = S === 0n ? ed.Point.ZERO : ed.Point.BASE.multiply(S, false);
      const kA = k === 0n ? ed.Point.ZERO : A.multiply(k, false);
      const rCheck = SB.subtract(kA).toBytes();
      return Buffer.from(rCheck).equals(Buffer.from(rBytes));
    } catch {
      return false;
    }
  }
}

export const nativeEd25519: Ed25519 = new NativeEd25519();
export const nobleEd25519: Ed25519 = new NobleEd25519();

/**
 * The implementation the hot path uses. node:crypto: ~10× faster to sign and ~16× faster to
 * verify than noble on this machine (bench/results-ed25519.md).
 */
export const ed25519: Ed25519 = nativeEd25519;
