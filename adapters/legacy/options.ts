/**
 * Options of the framed → legacy converter: what the legacy peer offers (the SMTP
 * extensions decide which encodings are allowed), and the injected sources of randomness.
 */
import { randomBytes } from 'node:crypto';

/** One signature verdict, for the optional Authentication-Results summary (§51.7). */
export interface SignatureVerdict {
  /** The signer domain (`d=`), A-label. */
  readonly domain: string;
  /** The verifier's result for this signature. */
  readonly result: 'pass' | 'fail' | 'neutral' | 'temperror' | 'permerror' | 'none';
  /** The user address (`u=`) of a user-key signature, if any. */
  readonly user?: string;
}

export interface LegacyOptions {
  /** The peer offered SMTPUTF8 (RFC 6531): UTF-8 in addresses and headers (RFC 6532). */
  readonly smtputf8: boolean;
  /** The peer offered 8BITMIME (RFC 6152): 8bit bodies allowed. */
  readonly eightBitMime: boolean;
  /**
   * Random octets for multipart boundaries. Injected so tests are reproducible and so that
   * an adversarial source can be simulated; default node:crypto randomBytes.
   */
  readonly random?: (n: number) => Uint8Array;
  /**
   * Authentication-Results summary of the trace block's signatures (§51.7): the gateway's
   * authserv-id and the verdicts it computed. Without it the signatures are dropped.
   */
  readonly authResults?: {
    readonly authservId: string;
    readonly verdicts: readonly SignatureVerdict[];
  };
  /** Octets per output chunk of a base64/QP body (default 64 KiB of input). */
  readonly chunkSize?: number;
}

export interface ResolvedOptions {
  readonly smtputf8: boolean;
  readonly eightBitMime: boolean;
  readonly random: (n: number) => Uint8Array;
  readonly authResults: LegacyOptions['authResults'];
  readonly chunkSize: number;
}

export function resolveOptions(o: LegacyOptions): ResolvedOptions {
  return {
    smtputf8: o.smtputf8,
    eightBitMime: o.eightBitMime,
    random: o.random ?? ((n) => randomBytes(n)),
    authResults: o.authResults,
    // A multiple of 57 (one base64 line of 76 characters) so that chunks end on line ends.
    chunkSize: Math.max(57, Math.floor((o.chunkSize ?? 65_536) / 57) * 57),
  };
}
