/**
 * Incremental NMTP/1 wire decoder and the byte printers (docs/protocol.md
 * §60.3–§60.6), in the style of pg-protocol's parser: the caller pushes whatever bytes
 * arrived and pulls items until NEED_MORE. Nothing is thrown at the caller for bad input:
 * errors are items, carrying a code and the stream offset where they were detected.
 *
 * Memory is bounded by the limits, checked before buffering: a line is never held beyond
 * `maxLine` octets, and chunk bodies are handed out as views of the pushed buffers (never
 * copied, never collected), so a 64 MiB message passes through in pieces.
 */
import { NmtpError } from '../errors/index.ts';
import { DEFAULT_WIRE_LIMITS, type WireLimits } from './limits.ts';
import {
  parseCommandLine,
  parseReplyLine,
  printCommandLine,
  printReplyLine,
  type Command,
  type Reply,
} from './syntax.ts';

export const NEED_MORE: unique symbol = Symbol('NMTP wire: need more input');
export const END: unique symbol = Symbol('NMTP wire: end of stream');

export type WireItem =
  | { readonly kind: 'command'; readonly command: Command; readonly offset: number }
  | { readonly kind: 'reply'; readonly reply: Reply; readonly offset: number }
  /** A chunk header; its body follows as chunk-data items, then chunk-end. */
  | {
      readonly kind: 'chunk';
      readonly size: number;
      readonly last: boolean;
      readonly offset: number;
    }
  /** A view of body octets (valid until the caller mutates what it pushed). */
  | { readonly kind: 'chunk-data'; readonly bytes: Uint8Array; readonly offset: number }
  | { readonly kind: 'chunk-end'; readonly last: boolean; readonly offset: number }
  /**
   * A bad line or chunk. `fatal`: framing is lost (no CRLF within the limit, a chunk that
   * lied, a malformed CHUNK header) and every later next() returns the same error; otherwise
   * the bad line was consumed and decoding continues with the next one.
   */
  | { readonly kind: 'error'; readonly error: NmtpError; readonly fatal: boolean };

/** Which side's stream is decoded: a server reads commands, a client reads replies. */
export type WireRole = 'server' | 'client';

const CR = 0x0d;
const LF = 0x0a;
const CHUNK_RE = /^CHUNK (0|[1-9][0-9]*)( LAST)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class WireDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** Stream offset of buf[0]. */
  private base = 0;
  /** Where to resume the search for LF (so slow peers cost O(n), not O(n²)). */
  private scanned = 0;
  private bodyLeft = 0;
  private inBody = false;
  private inSentinel = false;
  private last = false;
  private failed: NmtpError | undefined;
  private ended = false;
  readonly limits: WireLimits;

  constructor(
    readonly role: WireRole,
    limits: Partial<WireLimits> = {},
  ) {
    this.limits = { ...DEFAULT_WIRE_LIMITS, ...limits };
  }

  /** Offset in the stream of the next unread octet. */
  get offset(): number {
    return this.base + this.pos;
  }

  push(bytes: Uint8Array): void {
    if (this.pos < this.buf.length) {
      // Only a partial line or sentinel (≤ maxLine octets) is ever carried over: chunk
      // bodies are handed out as views as soon as they arrive.
      const rest = this.buf.subarray(this.pos);
      const joined = new Uint8Array(rest.length + bytes.length);
      joined.set(rest, 0);
      joined.set(bytes, rest.length);
      this.scanned -= this.pos;
      this.base += this.pos;
      this.buf = joined;
    } else {
      this.base += this.buf.length;
      this.scanned = 0;
      this.buf = bytes;
    }
    this.pos = 0;
  }

  /** The peer closed its side: what is left must be nothing. */
  end(): void {
    this.ended = true;
  }

  next(): WireItem | typeof NEED_MORE | typeof END {
    if (this.failed) return { kind: 'error', error: this.failed, fatal: true };
    const item = this.step();
    if (item === NEED_MORE && this.ended) {
      if (this.pos === this.buf.length && !this.inBody && !this.inSentinel) return END;
      return this.fail(
        'NMTP_ERR_WIRE_TRUNCATED',
        'stream ended inside a line or chunk',
        this.offset,
      );
    }
    return item;
  }

  private fail(code: NmtpError['code'], why: string, offset: number): WireItem {
    this.failed = new NmtpError(code, why, { offset });
    return { kind: 'error', error: this.failed, fatal: true };
  }

  private step(): WireItem | typeof NEED_MORE {
    const avail = this.buf.length - this.pos;
    if (this.inBody) {
      if (avail === 0) return NEED_MORE;
      const take = Math.min(avail, this.bodyLeft);
      const offset = this.offset;
      const bytes = this.buf.subarray(this.pos, this.pos + take);
      this.pos += take;
      this.bodyLeft -= take;
      if (this.bodyLeft === 0) {
        this.inBody = false;
        this.inSentinel = true;
      }
      return { kind: 'chunk-data', bytes, offset };
    }
    if (this.inSentinel) {
      // "The chunk body MUST be followed by CRLF; a receiver that finds anything else
      // knows the size lied and MUST treat it as a framing error" (§60.5).
      if (avail >= 1 && this.buf[this.pos] !== CR) return this.lie();
      if (avail < 2) return NEED_MORE;
      if (this.buf[this.pos + 1] !== LF) return this.lie();
      const offset = this.offset;
      this.pos += 2;
      this.inSentinel = false;
      return { kind: 'chunk-end', last: this.last, offset };
    }
    return this.line();
  }

  private lie(): WireItem {
    return this.fail(
      'NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH',
      'chunk body not followed by CRLF',
      this.offset,
    );
  }

  private line(): WireItem | typeof NEED_MORE {
    const { maxLine } = this.limits;
    const start = this.pos;
    const offset = this.offset;
    // "A line, including its CRLF, MUST NOT exceed 2048 octets" (§60.3): look for LF only
    // within the first maxLine octets; never buffer more than that waiting for one.
    const window = Math.min(this.buf.length, start + maxLine);
    let lf = -1;
    for (let i = Math.max(start, this.scanned); i < window; i++) {
      if (this.buf[i] === LF) {
        lf = i;
        break;
      }
    }
    if (lf < 0) {
      this.scanned = window;
      if (window - start >= maxLine) {
        return this.fail('NMTP_ERR_WIRE_LINE_TOO_LONG', `no CRLF within ${maxLine} octets`, offset);
      }
      return NEED_MORE;
    }
    const octets = lf - start + 1;
    // "Lines end in CRLF; a CR or LF anywhere else is an error" (§60.3).
    if (lf === start || this.buf[lf - 1] !== CR) {
      return this.fail('NMTP_ERR_WIRE_BARE_LF', 'line ends in a bare LF', this.base + lf);
    }
    const body = this.buf.subarray(start, lf - 1);
    const cr = body.indexOf(CR);
    if (cr >= 0) return this.fail('NMTP_ERR_WIRE_BARE_LF', 'CR inside a line', offset + cr);
    this.pos = lf + 1;
    this.scanned = this.pos;
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      // The line is consumed: the next one still starts after its CRLF.
      const error = new NmtpError('NMTP_ERR_WIRE_INVALID_UTF8', 'line is not UTF-8', { offset });
      return { kind: 'error', error, fatal: false };
    }
    if (text === 'CHUNK' || text.startsWith('CHUNK ')) return this.chunkHeader(text, offset);
    try {
      if (this.role === 'server') {
        return { kind: 'command', command: parseCommandLine(text, octets, offset), offset };
      }
      return { kind: 'reply', reply: parseReplyLine(text, offset), offset };
    } catch (e) {
      if (e instanceof NmtpError) return { kind: 'error', error: e, fatal: false };
      throw e;
    }
  }

  private chunkHeader(text: string, offset: number): WireItem {
    const m = CHUNK_RE.exec(text);
    if (m === null || m[1]!.length > 15) {
      return this.fail('NMTP_ERR_WIRE_CHUNK_SIZE', 'malformed CHUNK header', offset);
    }
    const size = Number(m[1]);
    // "A chunk MUST NOT declare more than 1 MiB" — refused before reading one body octet.
    if (size > this.limits.maxChunk) {
      return this.fail(
        'NMTP_ERR_WIRE_CHUNK_TOO_LARGE',
        `chunk of ${size} octets > ${this.limits.maxChunk}`,
        offset,
      );
    }
    this.last = m[2] !== undefined;
    this.bodyLeft = size;
    this.inBody = size > 0;
    this.inSentinel = size === 0;
    return { kind: 'chunk', size, last: this.last, offset };
  }
}

// --- printers -----------------------------------------------------------------------------

// Buffer.from: a short line encodes several times faster than with TextEncoder (measured
// ~0.2 µs against ~1.3 µs for a reply line), and every reply and command goes through it.
const enc = { encode: (s: string): Uint8Array => Buffer.from(s, 'utf8') };

export function encodeCommand(c: Command): Uint8Array {
  return enc.encode(`${printCommandLine(c)}\r\n`);
}

export function encodeReply(r: Reply): Uint8Array {
  return enc.encode(`${printReplyLine(r)}\r\n`);
}

/** `CHUNK <n> [LAST]` CRLF, the n octets, CRLF (§60.5). */
export function encodeChunk(bytes: Uint8Array, last: boolean): Uint8Array {
  const head = enc.encode(`CHUNK ${bytes.length}${last ? ' LAST' : ''}\r\n`);
  const out = new Uint8Array(head.length + bytes.length + 2);
  out.set(head, 0);
  out.set(bytes, head.length);
  out.set([CR, LF], head.length + bytes.length);
  return out;
}

/** Splits a payload into chunks of at most `max` octets, the last one marked LAST. */
export function encodeChunks(bytes: Uint8Array, max = DEFAULT_WIRE_LIMITS.maxChunk): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length || out.length === 0; i += max) {
    const piece = bytes.subarray(i, Math.min(bytes.length, i + max));
    out.push(encodeChunk(piece, i + max >= bytes.length));
  }
  return out;
}
