/**
 * Multipart boundaries (docs/protocol.md §51.6). RFC 2046 §5.1.1: "the
 * boundary delimiter MUST NOT appear inside any of the encapsulated parts".
 */
import { NmtpError } from '../../src/core/errors/index.ts';

/** What a candidate must not occur in: header text, unencoded bodies, inner boundaries. */
export type BoundaryScope = readonly (Uint8Array | string)[];

/** Attempts before giving up: with 144 random bits a second attempt is already unheard of. */
const ATTEMPTS = 8;

/**
 * "=_" cannot occur in quoted-printable ("=" is always followed by two hex digits or a line
 * end) nor in base64 ("=" is only final padding, followed by "=" or a line end), so
 * encoded bodies need no scan; 18 random octets (base64url) make a collision with the rest
 * improbable, and the scan makes it impossible.
 */
export function makeBoundary(random: (n: number) => Uint8Array): string {
  return `=_NMTP_${Buffer.from(random(18)).toString('base64url')}`;
}

/**
 * Picks a boundary absent from everything in the scope; `scopeFor` is called with each
 * candidate (the part's own header holds the boundary, so it is rebuilt per candidate).
 */
export function chooseBoundary(
  random: (n: number) => Uint8Array,
  scopeFor: (candidate: string) => BoundaryScope,
): string {
  for (let i = 0; i < ATTEMPTS; i++) {
    const candidate = makeBoundary(random);
    const needle = Buffer.from(candidate, 'latin1');
    const clash = scopeFor(candidate).some((x) =>
      typeof x === 'string'
        ? x.includes(candidate) || (x.startsWith('=_NMTP_') && candidate.includes(x))
        : Buffer.from(x.buffer, x.byteOffset, x.byteLength).indexOf(needle) >= 0,
    );
    if (!clash) return candidate;
  }
  throw new NmtpError('NMTP_ERR_LEGACY_BOUNDARY', `no free boundary after ${ATTEMPTS} attempts`);
}
