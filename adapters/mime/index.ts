/**
 * Legacy RFC 5322/MIME → framed NMTP message (docs/protocol/50-legacy-to-nmtp.md).
 *
 *   const { message, warnings } = await legacyToFramed(bytesOrStream, { gateway, now, ... });
 *
 * Errors are NmtpError with NMTP_ERR_MIME_* codes (src/core/errors/mime.ts); everything
 * the spec repairs is a warning instead.
 */
import type { Field, Part } from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { growingStore, type BodyStore } from './body-store.ts';
import { convertMessageRoot } from './convert.ts';
import { DEFAULT_CONVERT_LIMITS, type ConvertOptions, type ConvertResult } from './options.ts';
import { provenanceFields } from './provenance.ts';
import { legacyAuthResults } from './auth.ts';
import { splitMessage, type SplitContext } from './split.ts';
import { Warnings } from './warnings.ts';

export * from './options.ts';
export type { BodyStore, BodySink } from './body-store.ts';
export { MEMORY_STORE, growingStore } from './body-store.ts';
export { framedPieces } from './framed-stream.ts';

/** The type of the part that carries the original legacy octets (§7.4). */
export const ORIGINAL_TYPE = 'application/x-nmtp-legacy-original';
/** The container type used when the original is carried beside the content (§7.4). */
export const WRAPPER_TYPE = 'multipart/x-nmtp-legacy';

/** RFC 5322 message header names that stay on the root when the content is wrapped. */
const CONTENT_FIELD = /^content-/i;

export async function legacyToFramed(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  opts: ConvertOptions,
  store?: BodyStore,
): Promise<ConvertResult> {
  const limits = { ...DEFAULT_CONVERT_LIMITS, ...opts.limits };
  // No body can exceed the message limit, so that bounds each buffer's reservation.
  store ??= growingStore(limits.maxMessageBytes);
  // The original octets are needed whole for authentication and for carrying them.
  const needOriginal = opts.carryOriginal === true || opts.auth !== undefined;
  const ctx: SplitContext = {
    limits,
    store,
    parts: 0,
    bytes: 0,
    original: needOriginal ? store.create() : undefined,
  };
  const w = new Warnings();
  const tree = await splitMessage(input, ctx, 0);
  const { part, messageId } = await convertMessageRoot(tree, ctx, w, true);
  const original = ctx.original?.take();

  let auth: string[] = [];
  if (opts.auth !== undefined && original !== undefined) {
    try {
      auth = await legacyAuthResults(original, opts.auth, opts.envelope, opts.gateway);
    } catch (e) {
      // §7.3: a failure to evaluate is recorded as temperror, never as a pass or a crash.
      w.add('auth-failed', `authentication not evaluated: ${String((e as Error).message ?? e)}`);
      auth = ['spf=temperror', 'dkim=temperror', 'dmarc=temperror'];
    }
  }
  const prov = provenanceFields(opts, messageId, auth);

  let root: Part;
  if (opts.carryOriginal === true && original !== undefined) {
    // §7.4: message fields stay on the root; the converted content becomes the first
    // child, the original octets the second.
    const message = part.fields.filter((f) => !CONTENT_FIELD.test(f.name));
    const content = part.fields.filter((f) => CONTENT_FIELD.test(f.name));
    const contentPart: Part =
      'children' in part
        ? { fields: content, children: part.children }
        : { fields: content, body: part.body };
    const originalPart: Part = {
      fields: [{ name: 'Content-Type', value: ORIGINAL_TYPE }],
      body: original,
    };
    root = {
      fields: [...message, { name: 'Content-Type', value: WRAPPER_TYPE }, ...prov],
      children: [contentPart, originalPart],
    };
  } else {
    root = { ...part, fields: [...part.fields, ...prov] } as Part;
  }
  if (root.fields.length > 256) {
    throw new NmtpError('NMTP_ERR_MIME_HEADER_TOO_LARGE', 'more than 256 fields on the root part');
  }
  return { message: { trace: [] as Field[], root }, warnings: w.list };
}
