/**
 * cleanup (Postfix's name for the same job): a legacy message as smtp-in received it →
 * converted (adapters/mime, docs/protocol.md §50) and signed by the gateway (§30) → the
 * framed NMTP octets the queue stores. One job, no state, no I/O: smtp-in calls it through
 * this port, and the composition root chooses where it runs — on the event loop
 * (`inlineCleanup`) or on worker threads (`CleanupPool`, src/gateway/cleanup-pool.ts), so
 * that converting and signing do not wait behind the event loop's SMTP sessions, queue and
 * NMTP deliveries (on two CPUs, the event loop is the gateway's bottleneck).
 *
 * Everything a job needs travels with it (time, salt and key included): the same job gives
 * the same octets wherever it runs.
 */
import { legacyToFramed, type ConvertOptions } from '../../adapters/mime/index.ts';
import { encodeAndSign, type SignMessageOptions } from '../core/message/index.ts';

export interface CleanupJob {
  /** The message as received (dot-unstuffed, CRLF). */
  readonly legacy: Uint8Array;
  /** Without `auth` (a resolver is a function: it cannot travel to a thread). */
  readonly convert: Omit<ConvertOptions, 'auth'>;
  /** Without `impl` (the default ed25519), for the same reason. */
  readonly sign: Omit<SignMessageOptions, 'impl'>;
}

export interface Cleanup {
  /** The signed NMTP octets; rejects with the converter's or signer's NmtpError. */
  run(job: CleanupJob): Promise<Uint8Array>;
  close(): Promise<void>;
}

export async function cleanup(job: CleanupJob): Promise<Uint8Array> {
  const { message } = await legacyToFramed(job.legacy, job.convert);
  // Signed as it is encoded: the message is ours, so no decoding it again for the digest
  // (encodeAndSign still refuses what signMessage would).
  return encodeAndSign(message, job.sign);
}

/** On the event loop (tests, `smtp.cleanupThreads: 0`). */
export const inlineCleanup: Cleanup = {
  run: cleanup,
  close: () => Promise.resolve(),
};
