/**
 * Framed NMTP message → RFC 5322/MIME message for a legacy (SMTP) peer.
 * Spec: docs/protocol.md §51.
 *
 *   framedToLegacy(message, { smtputf8, eightBitMime })       → Uint8Array
 *   framedToLegacyChunks(message, { smtputf8, eightBitMime }) → Iterable<Uint8Array>
 *
 * Both check and plan the whole message first and throw NmtpError (NMTP_ERR_LEGACY_*,
 * or a frame/address code for a malformed input) before producing any octet.
 */
import type { FramedMessage } from '../../src/core/frame/index.ts';
import { emitPart } from './emit.ts';
import { resolveOptions, type LegacyOptions } from './options.ts';
import { planPart } from './plan.ts';
import { traceHeaderFields } from './trace.ts';
import { unwrapCarriedOriginal } from './unwrap.ts';

export type { LegacyOptions, SignatureVerdict } from './options.ts';
export { authResultsValue } from './trace.ts';

/**
 * The legacy message as chunks, for streaming to an SMTP client (e.g. stream.Readable.from).
 * Memory: bodies sent unencoded are views of the input; a base64 or quoted-printable body
 * is encoded one chunk (options.chunkSize, default 64 KiB of input) at a time.
 */
export function framedToLegacyChunks(
  message: FramedMessage,
  options: LegacyOptions,
): Iterable<Uint8Array> {
  const opts = resolveOptions(options);
  const plan = planPart(unwrapCarriedOriginal(message.root), opts, {
    top: true,
    messageRoot: true,
    prefix: traceHeaderFields(message.trace, opts),
  });
  return { [Symbol.iterator]: () => emitPart(plan, opts.chunkSize, true) };
}

/**
 * The legacy message in one buffer. Memory: the whole output (a base64 attachment is 4/3
 * of its size plus 2 octets per 76) on top of the input; prefer framedToLegacyChunks for
 * large messages.
 */
export function framedToLegacy(message: FramedMessage, options: LegacyOptions): Uint8Array {
  return Buffer.concat([...framedToLegacyChunks(message, options)]);
}
