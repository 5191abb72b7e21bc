/**
 * Signatures (docs/protocol.md section 30): ed25519 implementations, the Signature field,
 * signing and verification over a content digest, and the replay rule.
 */
export {
  ed25519,
  nativeEd25519,
  nobleEd25519,
  isAcceptablePublicKey,
  isCanonicalPointEncoding,
} from './ed25519.ts';
export type { Ed25519, SigningKey } from './ed25519.ts';
export { toBase64url, fromBase64url } from './base64url.ts';
export {
  parseSignatureField,
  printUnsignedPart,
  signedInput,
  SIG_CONTEXT,
  MAX_RECIPIENT_HASHES,
} from './field.ts';
export type { SignatureFields, ParsedSignature } from './field.ts';
export {
  recipientHash,
  signContent,
  verifySignature,
  verifyAll,
  checkReplay,
} from './signature.ts';
export type {
  SignContentInput,
  SignatureStatus,
  SignatureResult,
  VerifyContext,
  ReplayVerdict,
} from './signature.ts';
