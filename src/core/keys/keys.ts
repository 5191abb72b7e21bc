/**
 * Key material: generation from a seed that the caller supplies (core has no randomness),
 * raw / base64url / PEM encodings for interop with openssl, and fingerprints.
 * docs/protocol.md §40.7–§40.8.
 */
import { createHash } from 'node:crypto';
import { NmtpError } from '../errors/index.ts';
import { fromBase64url, toBase64url } from '../sign/base64url.ts';
import {
  PKCS8_ED25519_PREFIX,
  SPKI_ED25519_PREFIX,
  ed25519,
  isAcceptablePublicKey,
  type SigningKey,
} from '../sign/ed25519.ts';

/**
 * "A key pair is derived from 32 octets of fresh cryptographically secure randomness, the
 * RFC 8032 secret seed" (§40.7). The caller passes the seed (e.g. crypto.randomBytes(32)).
 */
export function keyPairFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH', 'a seed is 32 octets');
  return { seed: Uint8Array.from(seed), publicKey: ed25519.publicKeyFromSeed(seed) };
}

/** Public key → base64url (the form used in p=, k= and fingerprints). */
export function encodePublicKey(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH');
  return toBase64url(publicKey);
}

/** base64url → public key; refuses wrong lengths and weak keys (NMTP_ERR_KEY_WEAK). */
export function decodePublicKey(text: string): Uint8Array {
  const key = fromBase64url(text, 32);
  if (key === undefined) throw new NmtpError('NMTP_ERR_KEY_LENGTH', 'not base64url of 32 octets');
  // "A public key MUST be a canonical point encoding and MUST NOT be a point of small order."
  if (!isAcceptablePublicKey(key)) throw new NmtpError('NMTP_ERR_KEY_WEAK');
  return key;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function unpem(label: string, text: string, prefix: Buffer): Uint8Array {
  const m = new RegExp(
    `^-----BEGIN ${label}-----\\n([A-Za-z0-9+/=\\n]+)-----END ${label}-----\\n?$`,
  ).exec(text);
  if (m === null) throw new NmtpError('NMTP_ERR_KEY_PEM', `not a ${label} PEM block`);
  const der = Buffer.from(m[1]!.replace(/\n/g, ''), 'base64');
  if (der.length !== prefix.length + 32 || !der.subarray(0, prefix.length).equals(prefix)) {
    throw new NmtpError('NMTP_ERR_KEY_PEM', 'not a raw ed25519 key in the RFC 8410 form');
  }
  return new Uint8Array(der.subarray(prefix.length));
}

/** SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), as `openssl pkeyutl -pubin` reads. */
export function publicKeyToPem(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH');
  return pem('PUBLIC KEY', Buffer.concat([SPKI_ED25519_PREFIX, publicKey]));
}
export function publicKeyFromPem(text: string): Uint8Array {
  return unpem('PUBLIC KEY', text, SPKI_ED25519_PREFIX);
}

/** PKCS#8 PEM ("BEGIN PRIVATE KEY"), as `openssl genpkey -algorithm ed25519` writes. */
export function seedToPem(seed: Uint8Array): string {
  if (seed.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH');
  return pem('PRIVATE KEY', Buffer.concat([PKCS8_ED25519_PREFIX, seed]));
}
export function seedFromPem(text: string): Uint8Array {
  return unpem('PRIVATE KEY', text, PKCS8_ED25519_PREFIX);
}

/**
 * "The fingerprint of a public key is the base64url encoding of the full SHA-256 of its 32
 * raw octets, prefixed "SHA256:"" (§40.8). Not truncated: fingerprints are compared by
 * people and by programs, and 43 characters is short enough for both.
 */
export function fingerprint(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new NmtpError('NMTP_ERR_KEY_LENGTH');
  return `SHA256:${toBase64url(createHash('sha256').update(publicKey).digest())}`;
}
