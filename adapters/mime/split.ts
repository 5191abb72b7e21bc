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
import { MimeNode as MimeNodeClass, Splitter, type MimeNode } from '@zone-eu/mailsplit';
import { NmtpError } from '../../src/core/errors/index.ts';
import { cteDecoder, type CteDecoder } from './cte.ts';
import type { BodySink, BodyStore, SpooledBody } from './body-store.ts';
import type { ConvertLimits } from './options.ts';
import { parseHeaderBlock, type HeaderBlock } from './header-block.ts';

export interface LegacyNode {
  /** Preorder index over the whole conversion (nested messages included). */
  readonly index: number;
  readonly depth: number;
  readonly header: Uint8Array;
  /** The header block parsed (§50.3.1), once: the split needs where it ends. */
  readonly block: HeaderBlock;
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
  /**
   * Leaves: the body ends at a delimiter line, or at the missing close-delimiter of an
   * unclosed multipart (§50.2), which owns the line break before it. A nested message split
   * from this body must not give its last line break to a delimiter again.
   */
  delimited: boolean;
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

/**
 * mailsplit with one correction: only a multipart's own boundary splits its body. mailsplit
 * splits any part that carries a boundary= parameter, so a text/html part with a stray
 * boundary= lost its body to children nobody reads. §50.2: "Only the media type decides
 * whether a part is multipart"; for every other part the parameter is ignored.
 */
interface SplitterInternals {
  node: MimeNode & { _boundary: Buffer | false; parseHeaders(): void };
}
class PartSplitter extends Splitter {
  // Called by the Splitter constructor and for every new part.
  newNode(parent?: MimeNode | false): void {
    (Splitter.prototype as unknown as { newNode(p?: MimeNode | false): void }).newNode.call(
      this,
      parent,
    );
    const node = (this as unknown as SplitterInternals).node;
    const parse = node.parseHeaders;
    node.parseHeaders = function (this: typeof node): void {
      parse.call(this);
      if (this.multipart === false) this._boundary = false;
    };
  }
}

/**
 * A delimiter line of `boundary` (RFC 2046 §5.1.1: "--" boundary, "--" for the close
 * delimiter, then only SP / HTAB), line break already removed.
 */
function isDelimiter(line: Uint8Array, boundary: Uint8Array): boolean {
  if (line.length < boundary.length + 2 || line[0] !== 0x2d || line[1] !== 0x2d) return false;
  for (let i = 0; i < boundary.length; i++) if (line[i + 2] !== boundary[i]) return false;
  let i = boundary.length + 2;
  if (line[i] === 0x2d && line[i + 1] === 0x2d) i += 2;
  while (i < line.length && (line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0d)) i++;
  return i === line.length;
}

/**
 * A whole message whose top level is not a multipart needs no splitting: its header block
 * ends at the first empty line and the rest is its body. Parsed with mailsplit's own
 * MimeNode, so every value (type, encoding, charset, file name) is what the splitter would
 * give; undefined (use the splitter) for a multipart, a header block without its empty
 * line, or one over the limit (the splitter reports it). Saves the stream machinery, which
 * is most of the cost of a small message.
 */
function singlePart(
  input: Buffer,
  maxHeaderBytes: number,
): { node: MimeNode; body: Buffer } | undefined {
  let pos = 0;
  let cost = 0;
  for (;;) {
    if (pos >= input.length) return undefined;
    const lf = input.indexOf(0x0a, pos);
    const next = lf < 0 ? input.length : lf + 1;
    const len = next - pos;
    const blank = (len === 1 && lf === pos) || (len === 2 && lf === pos + 1 && input[pos] === 0x0d);
    // mailsplit's count: every header line at least 64 octets (HEADER_LINE_MIN_COST).
    cost += blank ? len : Math.max(len, 64);
    if (cost > maxHeaderBytes) return undefined;
    pos = next;
    if (blank) break;
  }
  const node = new MimeNodeClass(false, {}) as MimeNode & {
    addHeaderChunk(line: Buffer): boolean;
    parseHeaders(): void;
  };
  node.addHeaderChunk(input.subarray(0, pos));
  node.parseHeaders();
  if (node.multipart !== false) return undefined;
  return { node, body: input.subarray(pos) };
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
 *
 * `endTaken`: the input is a nested message whose part a delimiter around it ends (its
 * part's `delimited`). Its end is then that delimiter's, which ends every
 * multipart still open inside it (§50.2 item 6), so no line break is taken a second time
 * for a missing close-delimiter (item 7): the same octets give the same parts with or
 * without the message/rfc822 wrapper, as in Python's one-pass parser.
 */
export async function splitMessage(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  ctx: SplitContext,
  baseDepth: number,
  endTaken = false,
): Promise<LegacyNode> {
  const newSplitter = (): PartSplitter =>
    new PartSplitter({
      ignoreEmbedded: true,
      maxHeadSize: ctx.limits.maxHeaderBytes,
      // We count parts ourselves (across nested messages); keep mailsplit's guard above ours.
      maxChildNodes: ctx.limits.maxParts + 2,
    });
  let splitter: PartSplitter | undefined;
  let single: { node: MimeNode; body: Buffer } | undefined;
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
  // While `last` is a multipart without parts (yet), its lines are kept (§50.6.1): its
  // preamble, its own delimiter lines, its epilogue, up to a delimiter line of an enclosing
  // multipart, which ends it and owns the line break before it (RFC 2046 §5.1.1). The final
  // line break waits in remainderEol until that is known. mailsplit hands these lines over
  // in 'data' chunks that may join lines of several owners, so they are split here.
  const boundaries = new Map<LegacyNode, Uint8Array>();
  const enclosing = new Map<LegacyNode, readonly Uint8Array[]>();
  let remainderEol: Uint8Array | undefined;
  let remainderClosed = false;
  const releaseRemainder = (): void => {
    if (remainderEol !== undefined) last?.preamble?.append(remainderEol);
    remainderEol = undefined;
  };
  const collectRemainder = (chunk: Uint8Array): void => {
    const outer = enclosing.get(last!) ?? [];
    let start = 0;
    while (start < chunk.length && !remainderClosed) {
      const lf = chunk.indexOf(0x0a, start);
      const end = lf < 0 ? chunk.length : lf + 1;
      const cut = lf < 0 ? 0 : chunk[lf - 1] === 0x0d && lf > start ? 2 : 1;
      const line = chunk.subarray(start, end - cut);
      if (outer.some((b) => isDelimiter(line, b))) {
        remainderEol = undefined;
        remainderClosed = true;
        return;
      }
      releaseRemainder();
      last!.preamble!.append(line.slice());
      if (cut > 0) remainderEol = chunk.slice(end - cut, end);
      start = end;
    }
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
    const whole = Buffer.from(input.buffer, input.byteOffset, input.length);
    single = singlePart(whole, ctx.limits.maxHeaderBytes);
    if (single === undefined) {
      splitter = newSplitter();
      splitter.end(whole);
    }
  } else {
    splitter = newSplitter();
    feed = Readable.from(metered(input, ctx, baseDepth === 0));
    feed.on('error', (e) => splitter!.destroy(e));
    feed.pipe(splitter);
  }
  type Item = { type: string; value?: Buffer } & MimeNode;
  const handle = (d: Item): void => {
    if (d.type === 'node') {
      finishCurrent();
      const parent = d.parentNode === false ? undefined : nodes.get(d.parentNode as MimeNode);
      const depth = parent === undefined ? baseDepth : parent.depth + 1;
      if (depth > ctx.limits.maxDepth) {
        throw new NmtpError('NMTP_ERR_MIME_TOO_DEEP', `nesting deeper than ${ctx.limits.maxDepth}`);
      }
      if (++ctx.parts > ctx.limits.maxParts) {
        throw new NmtpError(
          'NMTP_ERR_MIME_TOO_MANY_PARTS',
          `more than ${ctx.limits.maxParts} parts`,
        );
      }
      const multipart = d.multipart !== false;
      // RFC 2046 §5.1.5: in a multipart/digest "the default Content-Type value for a body
      // part is changed from "text/plain" to "message/rfc822"".
      const digestChild =
        parent?.contentType === 'multipart/digest' &&
        (d.headers === false || d.headers.get('Content-Type').length === 0);
      const header = new Uint8Array(d.getHeaders());
      const node: LegacyNode = {
        index: ctx.parts - 1,
        depth,
        header,
        block: parseHeaderBlock(header),
        contentType: digestChild
          ? 'message/rfc822'
          : d.contentType === false
            ? 'text/plain'
            : d.contentType,
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
        delimited: false,
      };
      nodes.set(d, node);
      // §50.3.1: a block whose empty line is missing ends at its first line that no field
      // follows; from there on the "header" octets are the start of the body.
      const at = node.block.bodyAt;
      const prefix = at === undefined ? undefined : node.header.subarray(at);
      if (parent === undefined) root ??= node;
      else {
        parent.children.push(node);
        parent.preamble = undefined; // it has a part: the preamble is not content
      }
      last = node;
      remainderClosed = false;
      remainderEol = undefined;
      if (multipart) {
        const own = (d as unknown as { _boundary: Buffer | false })._boundary;
        if (own !== false) boundaries.set(node, own);
        const above = parent === undefined ? [] : (enclosing.get(parent) ?? []);
        const parentOwn = parent === undefined ? undefined : boundaries.get(parent);
        enclosing.set(node, parentOwn === undefined ? above : [...above, parentOwn]);
      }
      if (!multipart) current = { node, decoder: cteDecoder(node.encoding), eol: undefined };
      if (prefix !== undefined && prefix.length > 0) {
        // The block's own final line break (the one mailsplit read as the empty line)
        // waits like a body's last one: a delimiter right after owns it.
        const cut = prefix.at(-1) === 0x0a ? (prefix.at(-2) === 0x0d ? 2 : 1) : 0;
        const content = prefix.subarray(0, prefix.length - cut);
        const eol = cut > 0 ? prefix.slice(prefix.length - cut) : undefined;
        if (current !== undefined && current.node === node) {
          node.body!.append(current.decoder.write(content));
          current.eol = eol;
        } else if (node.preamble !== undefined) {
          node.preamble.append(content.slice());
          remainderEol = eol;
        }
      }
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
        // Only a delimiter follows a body (with the line break before it, or without it
        // when mailsplit gave that line break to the body).
        current.node.delimited = true;
        if (d.value[0] === 0x2d && d.value[1] === 0x2d) current.eol = undefined;
        finishCurrent();
      }
      if (last?.preamble !== undefined && last.children.length === 0 && !remainderClosed) {
        collectRemainder(d.value);
      }
    }
    // Other 'data' chunks are boundaries and epilogues: not content (RFC 2046 §5.1.1).
  };
  const finish = (): void => {
    // §50.2.5: the input ended inside a multipart (no close-delimiter): the last part's final
    // line break is the missing delimiter's, as if the delimiter had been there.
    // Taken once only: not again when the input's end was already a delimiter's (endTaken).
    if (current !== undefined) {
      current.node.delimited = current.node !== root || endTaken;
      if (current.node !== root && !endTaken) current.eol = undefined;
    }
    finishCurrent();
    if (last !== root && !endTaken) remainderEol = undefined;
    if (last?.preamble !== undefined && last.children.length === 0) releaseRemainder();
  };
  try {
    if (splitter === undefined) {
      // One part, no splitter: the header parsed by mailsplit's own MimeNode, the body whole.
      handle(single!.node as Item);
      if (single!.body.length > 0) handle({ type: 'body', value: single!.body } as Item);
    } else {
      for await (const d of splitter as AsyncIterable<Item>) handle(d);
    }
    finish();
  } catch (e) {
    feed?.destroy();
    splitter?.destroy();
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
      block: parseHeaderBlock(new Uint8Array(0)),
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
      delimited: endTaken,
    };
  }
  return root;
}
