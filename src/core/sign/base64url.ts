/**
 * base64url without padding (RFC 4648 §5), strict: the one encoding of bytes in Signature,
 * Certificate and key records. "base64url = RFC 4648 §5 without padding." (design.md)
 *
 * Strict means the decoder accepts exactly what the encoder produces: no padding, no
 * whitespace, no characters outside [A-Za-z0-9_-], no length ≡ 1 (mod 4), and the unused low
 * bits of the last character must be zero. Otherwise two different strings could decode to
 * the same bytes, and a field could be altered without altering what it means.
 */
const B64URL = /^[A-Za-z0-9_-]*$/;

export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes strict unpadded base64url; returns undefined on any deviation. */
export function fromBase64url(text: string, expectedLength?: number): Uint8Array | undefined {
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, 'base64url'));
  // Canonical check: re-encoding must give the same text (rejects non-zero trailing bits).
  if (toBase64url(bytes) !== text) return undefined;
  if (expectedLength !== undefined && bytes.length !== expectedLength) return undefined;
  return bytes;
}
