/**
 * DKIM signing and ARC sealing of converted messages toward the legacy internet
 * (docs/protocol.md §51.12), over mailauth.
 *
 *   const sign = createLegacySigner(config);   // throws NMTP_ERR_LEGACY_DKIM_KEY at start-up
 *   const out = await sign(legacyBytes, { authResults });   // NMTP_ERR_LEGACY_SIGN_FAILED (temporary)
 */
export {
  SIGNED_FIELDS,
  createLegacySigner,
  signLegacy,
  type LegacySignAlgorithm,
  type LegacySignInput,
  type LegacySigner,
  type LegacySignerConfig,
  type TxtResolver,
} from './sign.ts';
