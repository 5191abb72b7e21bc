/**
 * Legacy RFC 5322/MIME → framed NMTP message (docs/protocol.md §50).
 *
 *   const { message, warnings } = await legacyToFramed(bytesOrStream, { gateway, now, ... });
 *
 * Errors are NmtpError with NMTP_ERR_MIME_* codes (src/core/errors/mime.ts); everything
 * the spec repairs is a warning instead.
 */
import type { Field, Part } from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import { tmpdir } from 'node:os';
import {
  growingStore,
  spoolStore,
  type BodySink,
  type BodyStore,
  type SpoolSink,
  type SpooledBody,
} from './body-store.ts';
import { spooledPieces } from './framed-stream.ts';
import { convertMessageRoot } from './convert.ts';
import {
  DEFAULT_CONVERT_LIMITS,
  type ConvertLimits,
  type ConvertOptions,
  type ConvertResult,
  type ConvertWarning,
} from './options.ts';
import { provenanceFields } from './provenance.ts';
import { legacyAuthResults } from './auth.ts';
import { splitMessage, type SplitContext } from './split.ts';
import { Warnings } from './warnings.ts';

export * from './options.ts';
export type { BodyStore, BodySink, SpoolStore, SpoolSink, SpooledBody } from './body-store.ts';
export { MEMORY_STORE, growingStore, spoolStore, DEFAULT_SPILL_THRESHOLD } from './body-store.ts';
export { framedPieces, spooledPieces } from './framed-stream.ts';

/** The type of the part that carries the original legacy octets (§50.7.4). */
export const ORIGINAL_TYPE = 'application/x-nmtp-legacy-original';
/** The container type used when the original is carried beside the content (§50.7.4). */
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
  return convert(input, opts, limits, store, undefined);
}

/** Where and when legacyToFramedFile spills bodies (spec §50.8). */
export interface SpoolOptions {
  /** Directory of the temporary spool file; default os.tmpdir(). */
  readonly spoolDir?: string;
  /** Bodies larger than this many octets are spilled; default 1 MiB. */
  readonly spillThreshold?: number;
}

/** The framed message as a stream of chunks whose large bodies come from a spool file. */
export interface FileConvertResult {
  /**
   * The framed bytes (exactly what encodeMessage would give for legacyToFramed's result),
   * in chunks of at most 256 KiB for spooled bodies. Iterate once; the spool file is
   * removed when the iteration ends, completes or breaks off.
   */
  readonly pieces: AsyncIterable<Uint8Array>;
  /** Total octets of `pieces`. */
  readonly length: number;
  readonly warnings: readonly ConvertWarning[];
  /** Removes the spool file (call it if `pieces` is not iterated); idempotent. */
  dispose(): void;
}

/** The message size limit of the file store when none is configured: 256 MiB. */
export const DEFAULT_FILE_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/**
 * legacyToFramed with bounded memory (§50.8): decoded bodies over the spill threshold go to a
 * temporary file and the framed output streams them back from it, so peak memory does not
 * depend on attachment size (text and message/rfc822 bodies are still read whole, see §50.8).
 * The spool file is removed on failure, and after the output has been iterated.
 */
export async function legacyToFramedFile(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  opts: ConvertOptions,
  spool: SpoolOptions = {},
): Promise<FileConvertResult> {
  const limits = {
    ...DEFAULT_CONVERT_LIMITS,
    maxMessageBytes: DEFAULT_FILE_MAX_MESSAGE_BYTES,
    ...opts.limits,
  };
  const store = spoolStore(spool.spoolDir ?? tmpdir(), spool.spillThreshold);
  const spooled = new Map<Uint8Array, SpooledBody>();
  try {
    const { message, warnings } = await convert(input, opts, limits, store, spooled);
    const { pieces, length } = spooledPieces(message, spooled, store.read);
    async function* stream(): AsyncGenerator<Uint8Array> {
      try {
        yield* pieces;
      } finally {
        store.dispose();
      }
    }
    return { pieces: stream(), length, warnings, dispose: store.dispose };
  } catch (e) {
    store.dispose();
    throw e;
  }
}

async function convert(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  opts: ConvertOptions,
  limits: ConvertLimits,
  store: BodyStore,
  spooled: Map<Uint8Array, SpooledBody> | undefined,
): Promise<ConvertResult> {
  // The original octets are needed whole for authentication and for carrying them.
  const needOriginal = opts.carryOriginal === true || opts.auth !== undefined;
  const ctx: SplitContext = {
    limits,
    store,
    parts: 0,
    bytes: 0,
    original: needOriginal ? store.create() : undefined,
    ...(spooled === undefined ? {} : { spooled }),
  };
  const w = new Warnings();
  const tree = await splitMessage(input, ctx, 0);
  const { part, messageId } = await convertMessageRoot(tree, ctx, w, true);
  // Authentication reads the original whole; carried alone, a spooled original stays on disk.
  const original =
    opts.auth === undefined && spooled !== undefined && ctx.original !== undefined
      ? spoolPlaceholder(ctx.original, spooled)
      : ctx.original?.take();

  let auth: string[] = [];
  if (opts.auth !== undefined && original !== undefined) {
    try {
      auth = await legacyAuthResults(original, opts.auth, opts.envelope, opts.gateway);
    } catch (e) {
      // §50.7.3: a failure to evaluate is recorded as temperror, never as a pass or a crash.
      w.add('auth-failed', `authentication not evaluated: ${String((e as Error).message ?? e)}`);
      auth = ['spf=temperror', 'dkim=temperror', 'dmarc=temperror'];
    }
  }
  const prov = provenanceFields(opts, messageId, auth, w.guesses);

  let root: Part;
  if (opts.carryOriginal === true && original !== undefined) {
    // §50.7.4: message fields stay on the root; the converted content becomes the first
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

/** A spilled sink's octets as an empty placeholder mapped to its file ranges (§50.8). */
function spoolPlaceholder(sink: BodySink, spooled: Map<Uint8Array, SpooledBody>): Uint8Array {
  const ref = (sink as SpoolSink).takeRef();
  if (ref instanceof Uint8Array) return ref;
  const placeholder = new Uint8Array(0);
  spooled.set(placeholder, ref);
  return placeholder;
}
