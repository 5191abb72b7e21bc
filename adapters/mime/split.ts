/**
 * Streaming MIME split (spec §50.2): @zone-eu/mailsplit finds parts and boundaries and hands
 * over each part's raw header bytes and raw body bytes; we decode the transfer encoding
 * chunk by chunk into a BodySink, so the encoded form of a body is never kept whole.
 *
 * Why mailsplit and not mailparser: mailparser decodes for display and loses the raw
 * octets (header bytes, exact body bytes), which the spec needs to decode charsets itself,
 * to keep a signed part byte-exact and to carry the original. mailsplit rejoins a message
 * byte-identically and streams.
 */
import { Readable } from 'node:stream';
import { Splitter, type MimeNode } from '@zone-eu/mailsplit';
import { NmtpError } from '../../src/core/errors/index.ts';
import { cteDecoder, type CteDecoder } from './cte.ts';
import type { BodySink, BodyStore, SpooledBody } from './body-store.ts';
import type { ConvertLimits } from './options.ts';

export interface LegacyNode {
  /** Preorder index over the whole conversion (nested messages included). */
  readonly index: number;
  readonly depth: number;
  readonly header: Uint8Array;
  /** Lower-case type/subtype; "text/plain" when absent (RFC 2045 §5.2). */
  readonly contentType: string;
  readonly multipart: boolean;
  readonly encoding: string;
  readonly charset: string | undefined;
  readonly filename: string | undefined;
  readonly disposition: string | undefined;
  readonly children: LegacyNode[];
  /**
   * Multipart only: the octets before the first boundary, kept until a child appears. A
   * multipart whose boundary never occurs is converted from this (§50.6.1).
   */
  preamble: BodySink | undefined;
  /** Decoded body (leaves only). */
  body: BodySink | undefined;
  /** Raw (encoded) body length, for warnings. */
  rawBodyBytes: number;
  cteDamaged: boolean;
}

/** Shared across a conversion and its nested messages. */
export interface SplitContext {
  readonly limits: ConvertLimits;
  readonly store: BodyStore;
  parts: number;
  /** Raw octets read, all levels counted once at the top. */
  bytes: number;
  /** Raw copy of the top-level input (only when carrying the original, §50.7.4). */
  original: BodySink | undefined;
  /** Spool store only: placeholder body (empty, by identity) → its spooled octets (§50.8). */
  readonly spooled?: Map<Uint8Array, SpooledBody>;
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'binary');
  throw new NmtpError('NMTP_ERR_MIME_INPUT', 'the input yielded something other than bytes');
}

/** A failing input stream is NMTP_ERR_MIME_INPUT, not a parse error. */
async function* inputErrors(
  source: AsyncIterable<unknown> | Iterable<unknown>,
): AsyncGenerator<unknown> {
  try {
    yield* source;
  } catch (e) {
    if (e instanceof NmtpError) throw e;
    throw new NmtpError(
      'NMTP_ERR_MIME_INPUT',
      `input failed: ${String((e as Error)?.message ?? e)}`,
      {},
      e,
    );
  }
}

/** Feeds input → splitter, enforcing the size limit as octets arrive. */
async function* metered(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  ctx: SplitContext,
  top: boolean,
): AsyncGenerator<Uint8Array> {
  const source: AsyncIterable<unknown> | Iterable<Uint8Array> =
    input instanceof Uint8Array ? [input] : input;
  for await (const raw of inputErrors(source)) {
    const chunk = toBytes(raw);
    if (top) {
      ctx.bytes += chunk.length;
      if (ctx.bytes > ctx.limits.maxMessageBytes) {
        throw new NmtpError(
          'NMTP_ERR_MIME_TOO_LARGE',
          `more than ${ctx.limits.maxMessageBytes} octets`,
        );
      }
      ctx.original?.append(chunk.slice());
    }
    // Large single buffers are fed in slices so the splitter's output (and our decoding)
    // interleave with reading instead of one huge burst.
    for (let o = 0; o < chunk.length; o += 1 << 20) yield chunk.subarray(o, o + (1 << 20));
  }
}

/**
 * Splits one message (the top level, or a message/rfc822 body at `baseDepth`) into a tree.
 * message/rfc822 parts stay leaves here (their decoded body is split again by the
 * converter), so nesting, limits and decoding work the same at every level.
 */
export async function splitMessage(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  ctx: SplitContext,
  baseDepth: number,
): Promise<LegacyNode> {
  const splitter = new Splitter({
    ignoreEmbedded: true,
    maxHeadSize: ctx.limits.maxHeaderBytes,
    // We count parts ourselves (across nested messages); keep mailsplit's guard above ours.
    maxChildNodes: ctx.limits.maxParts + 2,
  });
  const nodes = new Map<MimeNode, LegacyNode>();
  let root: LegacyNode | undefined;
  let last: LegacyNode | undefined;
  let current: { node: LegacyNode; decoder: CteDecoder; eol: Uint8Array | undefined } | undefined;
  // mailsplit hands the line break that precedes a delimiter to an EMPTY body (the next
  // 'data' chunk then starts with "--" instead of CRLF "--"). RFC 2046 §5.1.1: "the CRLF
  // preceding the boundary delimiter line is conceptually attached to the boundary". So a
  // body's final line break is held back until we know whether a delimiter follows it.
  const release = (): void => {
    if (current?.eol === undefined) return;
    current.node.body!.append(current.decoder.write(current.eol));
    current.eol = undefined;
  };
  const finishCurrent = (): void => {
    if (current === undefined) return;
    release();
    current.node.body!.append(current.decoder.end());
    current.node.cteDamaged = current.decoder.damaged;
    current = undefined;
  };
  let feed: Readable | undefined;
  if (input instanceof Uint8Array && input.length <= 1 << 20) {
    // Small whole inputs skip the stream plumbing (it dominates the cost of a 4 KB
    // message); the same accounting applies.
    if (baseDepth === 0) {
      ctx.bytes += input.length;
      if (ctx.bytes > ctx.limits.maxMessageBytes) {
        throw new NmtpError(
          'NMTP_ERR_MIME_TOO_LARGE',
          `more than ${ctx.limits.maxMessageBytes} octets`,
        );
      }
      ctx.original?.append(input.slice());
    }
    splitter.end(Buffer.from(input.buffer, input.byteOffset, input.length));
  } else {
    feed = Readable.from(metered(input, ctx, baseDepth === 0));
    feed.on('error', (e) => splitter.destroy(e));
    feed.pipe(splitter);
  }
  try {
    for await (const d of splitter as AsyncIterable<{ type: string; value?: Buffer } & MimeNode>) {
      if (d.type === 'node') {
        finishCurrent();
        const parent = d.parentNode === false ? undefined : nodes.get(d.parentNode as MimeNode);
        const depth = parent === undefined ? baseDepth : parent.depth + 1;
        if (depth > ctx.limits.maxDepth) {
          throw new NmtpError(
            'NMTP_ERR_MIME_TOO_DEEP',
            `nesting deeper than ${ctx.limits.maxDepth}`,
          );
        }
        if (++ctx.parts > ctx.limits.maxParts) {
          throw new NmtpError(
            'NMTP_ERR_MIME_TOO_MANY_PARTS',
            `more than ${ctx.limits.maxParts} parts`,
          );
        }
        const multipart = d.multipart !== false;
        const node: LegacyNode = {
          index: ctx.parts - 1,
          depth,
          header: new Uint8Array(d.getHeaders()),
          contentType: d.contentType === false ? 'text/plain' : d.contentType,
          multipart,
          encoding: d.encoding === false ? '' : d.encoding,
          charset: d.charset === false ? undefined : d.charset,
          filename: d.filename === false ? undefined : d.filename,
          disposition: d.disposition === false ? undefined : d.disposition,
          children: [],
          preamble: multipart ? ctx.store.create() : undefined,
          body: multipart ? undefined : ctx.store.create(),
          rawBodyBytes: 0,
          cteDamaged: false,
        };
        nodes.set(d, node);
        if (parent === undefined) root ??= node;
        else {
          parent.children.push(node);
          parent.preamble = undefined; // it has a part: the preamble is not content
        }
        last = node;
        if (!multipart) current = { node, decoder: cteDecoder(node.encoding), eol: undefined };
      } else if (d.type === 'body' && current !== undefined && d.value !== undefined) {
        release();
        const v = d.value;
        current.node.rawBodyBytes += v.length;
        const cut = v.at(-1) === 0x0a ? (v.at(-2) === 0x0d ? 2 : 1) : 0;
        current.node.body!.append(current.decoder.write(v.subarray(0, v.length - cut)));
        if (cut > 0) current.eol = v.slice(v.length - cut);
      } else if (d.type === 'data' && d.value !== undefined) {
        // Only the chunk right after the body can be the delimiter that owns its line break.
        if (current !== undefined) {
          if (d.value[0] === 0x2d && d.value[1] === 0x2d) current.eol = undefined;
          finishCurrent();
        }
        if (last?.preamble !== undefined && last.children.length === 0)
          last.preamble.append(d.value.slice());
      }
      // Other 'data' chunks are boundaries and epilogues: not content (RFC 2046 §5.1.1).
    }
    finishCurrent();
  } catch (e) {
    feed?.destroy();
    splitter.destroy();
    if (e instanceof NmtpError) throw e;
    const err = e as { code?: string; message?: string };
    if (err.code === 'EMAXLEN' && /header/i.test(err.message ?? '')) {
      throw new NmtpError('NMTP_ERR_MIME_HEADER_TOO_LARGE', err.message, {}, e);
    }
    if (err.code === 'EMAXLEN') {
      throw new NmtpError('NMTP_ERR_MIME_TOO_MANY_PARTS', err.message, {}, e);
    }
    throw new NmtpError('NMTP_ERR_MIME_SYNTAX', String(err.message ?? e), {}, e);
  }
  if (root === undefined) {
    // Empty input: mailsplit emits no node. An empty message is a message without
    // header fields and body; the converter then reports the missing From.
    ctx.parts++;
    root = {
      index: ctx.parts - 1,
      depth: baseDepth,
      header: new Uint8Array(0),
      contentType: 'text/plain',
      multipart: false,
      encoding: '',
      charset: undefined,
      filename: undefined,
      disposition: undefined,
      children: [],
      preamble: undefined,
      body: ctx.store.create(),
      rawBodyBytes: 0,
      cteDamaged: false,
    };
  }
  return root;
}
