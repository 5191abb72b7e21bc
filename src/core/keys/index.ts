/**
 * Keys (docs/protocol.md section 40): key pairs from a given seed, encodings, fingerprints, DNS
 * domain key and revocation records, user certificates.
 */
export {
  keyPairFromSeed,
  encodePublicKey,
  decodePublicKey,
  publicKeyToPem,
  publicKeyFromPem,
  seedToPem,
  seedFromPem,
  fingerprint,
} from './keys.ts';
export {
  domainKeyName,
  revocationName,
  parseDomainKeyRecord,
  printDomainKeyRecord,
  splitTxt,
  lookupDomainKey,
  isCertificateRevoked,
} from './record.ts';
export type { DomainKeyRecord, TxtAnswer, TxtResolver, KeyLookup } from './record.ts';
export {
  CERT_CONTEXT,
  parseCertificate,
  certificateSignedInput,
  issueCertificate,
  verifyCertificate,
} from './certificate.ts';
export type { CertificateFields, Certificate, CertificateCheck } from './certificate.ts';
