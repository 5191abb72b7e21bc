/**
 * Incremental decoder for framed messages (NMTP/1), in the style of pg-protocol's parser:
 *
 *   const d = new FrameDecoder();
 *   d.push(chunk);                       // as bytes arrive, any split
 *   for (let ev = d.next(); ev !== NEED_MORE && ev !== END; ev = d.next()) handle(ev);
 *   ...
 *   d.finish();                          // at end of input: throws if the message is cut short
 *
 * Why this shape: a message may be far larger than memory (bodies of a GB), and the network
 * hands it over in arbitrary pieces. The decoder therefore never waits for a whole part: it
 * hands out each body as views (subarrays) of the chunks it was given, and buffers only a
 * header line that straddles two chunks — at most one line (limits.maxLineBytes). Bodies are
 * never scanned byte by byte: their length is declared, so they are sliced, and only header
 * lines are searched (with Uint8Array#indexOf, which is native).
 *
 * Errors are NmtpErrors with a FRAME code and the byte offset where the problem was found.
 * next() throws them; after an error every call throws the same error again (the decoder
 * does not try to resynchronise: a framed message with one lie in it is not trusted).
 */
import { createHash, type Hash } from 'node:crypto';
import { NmtpError } from '../errors/index.ts';
import {
  type AddressValidator,
  type ContentType,
  type Field,
  type FrameErrorCode,
  ADDRESS_LIST_FIELDS,
  DEFAULT_CONTENT_TYPE,
  SINGLETON_FIELDS,
  checkFieldValue,
  isMessageNmtp,
  isMultipart,
  parseAddressList,
  parseContentLength,
  parseContentType,
  validateStructuredValue,
} from './fields.ts';
import { type FrameLimits, resolveLimits } from './limits.ts';

/** next() needs more input: push() another chunk (or finish() if there is none). */
export const NEED_MORE: unique symbol = Symbol('NMTP frame decoder: need more input');
/** next() has nothing more to say: the `end` event was already returned. */
export const END: unique symbol = Symbol('NMTP frame decoder: end');

/** Index path of a part: [] is the root, [1, 0] the first child of the root's second child. */
export type PartPath = readonly number[];

export interface VersionEvent {
  readonly type: 'version';
  readonly version: 1;
}
export interface TraceFieldEvent {
  readonly type: 'trace-field';
  readonly name: string;
  readonly value: string;
  /** Offset of the first byte of the field line. */
  readonly offset: number;
}
export interface PartStartEvent {
  readonly type: 'part-start';
  readonly path: PartPath;
  /** Number of containers around the part (root: 0). */
  readonly depth: number;
  /** Header fields in written order, Content-Length included. */
  readonly fields: readonly Field[];
  readonly contentLength: number;
  /** Parsed Content-Type, or text/plain when the part has none. */
  readonly contentType: ContentType;
  /** 'leaf' parts have a body of raw octets; containers have child parts. */
  readonly kind: PartKind;
  /** Offset of the first byte of the part (its first field line). */
  readonly offset: number;
  /** Offset of the first body byte. The part ends at bodyOffset + contentLength + 4. */
  readonly bodyOffset: number;
}
export interface BodyEvent {
  readonly type: 'body';
  readonly path: PartPath;
  /** A view of pushed input (not a copy): copy it if you keep it past the next push. */
  readonly bytes: Uint8Array;
  /** Offset of bytes[0] in the message. */
  readonly offset: number;
}
export interface PartEndEvent {
  readonly type: 'part-end';
  readonly path: PartPath;
  /** Offset just past the part's sentinel. */
  readonly offset: number;
}
export interface EndEvent {
  readonly type: 'end';
  /** SHA-256 over the root part's bytes, first field line through last sentinel byte. */
  readonly contentDigest: Uint8Array;
  /** Length of the whole framed message. */
  readonly totalBytes: number;
}
export type FrameEvent =
  VersionEvent | TraceFieldEvent | PartStartEvent | BodyEvent | PartEndEvent | EndEvent;

export type PartKind = 'leaf' | 'multipart' | 'message';

export interface DecoderOptions {
  readonly limits?: Partial<FrameLimits>;
  /**
   * Compute the content digest (default true). Random-access helpers turn it off: they do
   * not read the whole message, so there is no digest to give.
   */
  readonly digest?: boolean;
  /**
   * Full address validation for address-list fields (src/core/address/ provides one).
   * Without it only the delimiting syntax is checked. Whatever NmtpError it throws is
   * reported with the field's offset.
   */
  readonly validateAddress?: AddressValidator;
}

/** "version-line = %s"NMTP/1" CRLF" */
const VERSION_LINE = new Uint8Array([0x4e, 0x4d, 0x54, 0x50, 0x2f, 0x31, 0x0d, 0x0a]);
/** "sentinel = CRLF CRLF ; checked: a lying length is caught" */
const SENTINEL = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a]);
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SP = 0x20;
const EMPTY = new Uint8Array(0);

// fatal: malformed UTF-8 is an error, never U+FFFD. ignoreBOM: a leading U+FEFF is part of
// the value; stripping it would make the decoded value differ from the signed bytes.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const enum State {
  Version,
  Trace,
  Header,
  AfterStart,
  Body,
  Sentinel,
  AfterPart,
  Done,
  Failed,
}

interface OpenPart {
  readonly path: PartPath;
  readonly depth: number;
  readonly kind: PartKind;
  readonly bodyEnd: number;
  /** Children started so far (containers only). */
  children: number;
  /** skipPart() was called: the body (or whole subtree) is passed over without events. */
  skip: boolean;
}

/**
 * Parses one field line (without its CRLF) that starts at `offset`. Exported for the
 * encoder's appendTraceField, which must accept exactly what the decoder accepts.
 */
export function parseFieldLine(line: Uint8Array, offset: number): Field {
  // "field = field-name ":" SP field-value CRLF"; the first ":" ends the name because a
  // name cannot contain one.
  const colon = line.indexOf(COLON);
  if (colon <= 0 || line[colon + 1] !== SP) {
    throw new NmtpError('NMTP_ERR_FRAME_FIELD_SYNTAX', 'expected "name: value"', { offset });
  }
  let name = '';
  for (let i = 0; i < colon; i++) {
    const b = line[i]!;
    // "field-name = 1*( ALPHA / DIGIT / "-" )  ; ASCII, case-insensitive"
    const ok =
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      (b >= 0x30 && b <= 0x39) ||
      b === 0x2d;
    if (!ok) {
      throw new NmtpError('NMTP_ERR_FRAME_FIELD_SYNTAX', 'invalid character in field name', {
        offset: offset + i,
      });
    }
    name += String.fromCharCode(b);
  }
  let value: string;
  try {
    value = utf8.decode(line.subarray(colon + 2));
  } catch {
    throw new NmtpError('NMTP_ERR_FRAME_UTF8', `value of ${name} is not UTF-8`, { offset });
  }
  const code = checkFieldValue(value);
  if (code !== undefined) throw new NmtpError(code, `invalid value of ${name}`, { offset });
  return { name, value };
}

export class FrameDecoder {
  private readonly limits: FrameLimits;
  private readonly hash: Hash | undefined;
  private readonly validateAddress: AddressValidator | undefined;

  // Input: `cur` is the chunk being read, `pos` the next unread byte in it, `base` the
  // message offset of cur[0]. Later chunks wait in `queue` (no copying on push).
  private queue: Uint8Array[] = [];
  private cur: Uint8Array = EMPTY;
  private pos = 0;
  private base = 0;

  private state = State.Version;
  private error: NmtpError | undefined;
  private matched = 0; // bytes of the version line or a sentinel matched so far

  // A header line split across chunks is gathered here; never longer than maxLineBytes.
  private carry: Uint8Array = EMPTY;
  private carryLen = 0;
  private lineStart = 0;

  // The header block being read.
  private blockStart = 0;
  private blockFields: Field[] = [];
  private blockNames = new Set<string>();
  private contentLength: number | undefined;
  private contentType: ContentType | undefined;

  private stack: OpenPart[] = [];
  private parts = 0;
  private hashing = false;
  private hashFrom = 0; // index in `cur` from which bytes are not yet hashed

  constructor(options: DecoderOptions = {}) {
    this.limits = resolveLimits(options.limits);
    this.hash = options.digest === false ? undefined : createHash('sha256');
    this.validateAddress = options.validateAddress;
  }

  /**
   * Hands the decoder more input. The chunk is kept by reference (never copied) until
   * next() returns NEED_MORE; only then may the caller reuse its memory.
   */
  push(chunk: Uint8Array): void {
    if (this.error !== undefined) throw this.error;
    if (chunk.length > 0) this.queue.push(chunk);
  }

  /** The error the decoder stopped on, if any. */
  get failure(): NmtpError | undefined {
    return this.error;
  }

  /** Offset of the next unread byte of the message. */
  get offset(): number {
    return this.base + this.pos;
  }

  /**
   * After a `part-start` event (and before the next call to next()), skips that part: its
   * body, or for a container its whole subtree, is passed over without events — but still
   * hashed for the digest and its sentinel still checked. The next event is its part-end.
   * Children of a skipped container are not validated.
   */
  skipPart(): void {
    if (this.error !== undefined) throw this.error;
    const top = this.stack.at(-1);
    if (this.state !== State.AfterStart || top === undefined) {
      throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'skipPart() is only valid after part-start');
    }
    top.skip = true;
  }

  /**
   * Call at end of input, once next() has returned NEED_MORE or END. Throws
   * NMTP_ERR_FRAME_TRUNCATED unless the whole message was decoded, and the pending error
   * if there is one.
   */
  finish(): void {
    if (this.error !== undefined) throw this.error;
    if (this.state === State.Done) {
      if (this.available()) this.fail('NMTP_ERR_FRAME_TRAILING_BYTES', 'bytes after the root part');
      return;
    }
    if (this.available() || this.state === State.AfterStart || this.state === State.AfterPart) {
      // Events are still pending: calling finish() now would misreport a whole message.
      throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', 'finish() before next() ran out of input');
    }
    this.fail(
      'NMTP_ERR_FRAME_TRUNCATED',
      'input ended inside the message',
      this.base + this.cur.length,
    );
  }

  /** The next event, NEED_MORE, or END. Throws NmtpError (always the same one once failed). */
  next(): FrameEvent | typeof NEED_MORE | typeof END {
    if (this.error !== undefined) throw this.error;
    try {
      return this.step();
    } catch (e) {
      if (e instanceof NmtpError) {
        this.error = e;
        this.state = State.Failed;
      }
      throw e;
    }
  }

  // ------------------------------------------------------------------------------------

  /** Enters the error state for good and throws. */
  private fail(code: FrameErrorCode, message: string, offset = this.offset): never {
    this.error = new NmtpError(code, message, { offset });
    this.state = State.Failed;
    throw this.error;
  }

  private available(): boolean {
    return this.pos < this.cur.length || this.queue.length > 0;
  }

  /** Moves to the next queued chunk; false when none is queued. */
  private advance(): boolean {
    const next = this.queue.shift();
    if (next === undefined) return false;
    if (this.hashing) this.hash?.update(this.cur.subarray(this.hashFrom));
    this.base += this.cur.length;
    this.cur = next;
    this.pos = 0;
    this.hashFrom = 0;
    return true;
  }

  private step(): FrameEvent | typeof NEED_MORE | typeof END {
    for (;;) {
      if (this.pos === this.cur.length && this.state !== State.Done) {
        // Pure transitions need no input; everything else waits for bytes.
        if (this.state !== State.AfterStart && this.state !== State.AfterPart) {
          // "A bound of step 2 that is reached is an error found in what arrived, reported
          // without waiting for more input" (§10.9): a header line that is to begin with no
          // room left (B = 0) fails now, at the end of input as with one more octet.
          if ((this.state === State.Trace || this.state === State.Header) && this.carryLen === 0) {
            const container = this.state === State.Header ? this.stack.at(-1) : undefined;
            const { bound, code } = this.lineBound(this.offset, container);
            if (bound <= 0) this.fail(code, 'header line exceeds a limit', this.offset);
          }
          if (!this.advance()) {
            // Hash what was consumed now, so that once NEED_MORE is returned the decoder
            // never reads a pushed chunk again (the caller may reuse its memory).
            if (this.hashing) this.hash?.update(this.cur.subarray(this.hashFrom, this.pos));
            this.hashFrom = this.pos;
            return NEED_MORE;
          }
        }
      }
      switch (this.state) {
        case State.Version: {
          // Compare as bytes arrive, so "NMTP/2" fails at its sixth byte without a line read.
          while (this.pos < this.cur.length && this.matched < VERSION_LINE.length) {
            if (this.cur[this.pos] !== VERSION_LINE[this.matched]) {
              this.fail('NMTP_ERR_FRAME_VERSION', 'expected "NMTP/1" CRLF');
            }
            this.pos++;
            this.matched++;
          }
          if (this.matched < VERSION_LINE.length) continue;
          this.matched = 0;
          this.state = State.Trace;
          this.beginBlock();
          return { type: 'version', version: 1 };
        }
        case State.Trace: {
          const line = this.readLine(undefined);
          if (line === undefined) continue;
          const start = this.lineStart;
          if (line.length === 0) {
            // End of the trace block: the root part (the "content") starts here.
            this.hashing = this.hash !== undefined;
            this.hashFrom = this.pos;
            this.beginPart(undefined);
            continue;
          }
          const field = this.acceptField(line, start);
          return { type: 'trace-field', name: field.name, value: field.value, offset: start };
        }
        case State.Header: {
          const line = this.readLine(this.stack.at(-1));
          if (line === undefined) continue;
          if (line.length > 0) {
            this.acceptField(line, this.lineStart);
            continue;
          }
          return this.startPart();
        }
        case State.AfterStart: {
          const top = this.stack.at(-1)!;
          if (top.kind === 'leaf' || top.skip) {
            this.state = State.Body;
          } else if (this.offset === top.bodyEnd) {
            this.state = State.Sentinel; // an empty multipart
          } else {
            this.beginPart(top);
          }
          continue;
        }
        case State.Body: {
          const top = this.stack.at(-1)!;
          const want = top.bodyEnd - this.offset;
          if (want === 0) {
            this.state = State.Sentinel;
            continue;
          }
          const n = Math.min(want, this.cur.length - this.pos);
          const at = this.offset;
          const bytes = this.cur.subarray(this.pos, this.pos + n);
          this.pos += n;
          if (!top.skip) return { type: 'body', path: top.path, bytes, offset: at };
          continue;
        }
        case State.Sentinel: {
          while (this.pos < this.cur.length && this.matched < SENTINEL.length) {
            if (this.cur[this.pos] !== SENTINEL[this.matched]) {
              // "sentinel = CRLF CRLF ; checked: a lying length is caught"
              this.fail('NMTP_ERR_FRAME_SENTINEL', 'body not followed by CRLF CRLF');
            }
            this.pos++;
            this.matched++;
          }
          if (this.matched < SENTINEL.length) continue;
          this.matched = 0;
          const done = this.stack.pop()!;
          this.state = State.AfterPart;
          return { type: 'part-end', path: done.path, offset: this.offset };
        }
        case State.AfterPart: {
          const parent = this.stack.at(-1);
          if (parent === undefined) return this.endMessage();
          if (this.offset === parent.bodyEnd) {
            this.state = State.Sentinel;
          } else if (parent.kind === 'message') {
            // "`message/nmtp`: body is exactly one child part"
            this.fail('NMTP_ERR_FRAME_CONTAINER_MISMATCH', 'message/nmtp holds more than one part');
          } else {
            this.beginPart(parent);
          }
          continue;
        }
        case State.Done:
          // "Nothing may follow the root part's sentinel (appended content → error)."
          if (this.available())
            this.fail('NMTP_ERR_FRAME_TRAILING_BYTES', 'bytes after the root part');
          return END;
        case State.Failed:
          throw this.error!;
      }
    }
  }

  private beginBlock(): void {
    this.blockStart = this.offset;
    this.blockFields = [];
    this.blockNames = new Set();
    this.contentLength = undefined;
    this.contentType = undefined;
  }

  /** About to read the header of a new part (the root when `parent` is undefined). */
  private beginPart(parent: OpenPart | undefined): void {
    // Depth and count are refused before a byte of the part is read.
    const depth = parent === undefined ? 0 : parent.depth + 1;
    if (depth > this.limits.maxDepth) this.fail('NMTP_ERR_FRAME_TOO_DEEP', `depth ${depth}`);
    if (++this.parts > this.limits.maxParts) {
      this.fail('NMTP_ERR_FRAME_TOO_MANY_PARTS', `more than ${this.limits.maxParts} parts`);
    }
    this.state = State.Header;
    this.beginBlock();
  }

  /**
   * Reads one line, returning its content without CRLF; undefined if the current chunk
   * ended first (the caller advances). The line may not extend past any of: the line
   * limit, the header-block limit, the enclosing container, the total-size limit. The
   * smallest bound decides the error; on a tie, the later one in that list.
   */
  /**
   * B of §10.9 step 2 for a line starting at `start`, and the code of the smallest bound
   * ("on a tie, the later one in that list").
   */
  private lineBound(
    start: number,
    container: OpenPart | undefined,
  ): { bound: number; code: FrameErrorCode } {
    const L = this.limits;
    let bound = L.maxLineBytes;
    let code: FrameErrorCode = 'NMTP_ERR_FRAME_LINE_TOO_LONG';
    const header = this.blockStart + L.maxHeaderBytes - start;
    if (header <= bound) [bound, code] = [header, 'NMTP_ERR_FRAME_HEADER_TOO_LARGE'];
    const total = L.maxTotalBytes - start;
    if (total <= bound) [bound, code] = [total, 'NMTP_ERR_FRAME_TOO_LARGE'];
    if (container !== undefined) {
      const room = container.bodyEnd - start;
      if (room <= bound) [bound, code] = [room, 'NMTP_ERR_FRAME_CONTAINER_MISMATCH'];
    }
    return { bound, code };
  }

  private readLine(container: OpenPart | undefined): Uint8Array | undefined {
    if (this.carryLen === 0) this.lineStart = this.offset;
    const start = this.lineStart;
    const { bound, code } = this.lineBound(start, container);
    // "Limits (configurable; checked BEFORE allocating ...)": search only as far as the
    // bound allows, so a hostile line costs at most `bound` bytes of work and of carry.
    const limit = Math.min(this.cur.length, this.pos + (bound - this.carryLen));
    const found = this.cur.subarray(this.pos, limit).indexOf(LF);
    const lf = found < 0 ? -1 : this.pos + found;
    if (lf < 0) {
      if (limit < this.cur.length || this.carryLen + (limit - this.pos) >= bound) {
        this.fail(code, 'header line exceeds a limit', start + bound);
      }
      this.appendCarry(this.cur.subarray(this.pos));
      this.pos = this.cur.length;
      return undefined;
    }
    let line = this.cur.subarray(this.pos, lf + 1);
    this.pos = lf + 1;
    if (this.carryLen > 0) {
      this.appendCarry(line);
      line = this.carry.subarray(0, this.carryLen);
      this.carryLen = 0;
    }
    // "field = field-name ":" SP field-value CRLF": a bare LF is not a line end.
    if (line.length < 2 || line[line.length - 2] !== CR) {
      this.fail('NMTP_ERR_FRAME_FIELD_SYNTAX', 'line ends in LF without CR', this.offset - 1);
    }
    return line.subarray(0, line.length - 2);
  }

  private appendCarry(bytes: Uint8Array): void {
    if (this.carry.length === 0) this.carry = new Uint8Array(this.limits.maxLineBytes);
    this.carry.set(bytes, this.carryLen);
    this.carryLen += bytes.length;
  }

  /** Validates one field line of the current header block and records it. */
  private acceptField(line: Uint8Array, offset: number): Field {
    if (this.blockFields.length >= this.limits.maxFields) {
      this.fail('NMTP_ERR_FRAME_TOO_MANY_FIELDS', `more than ${this.limits.maxFields}`, offset);
    }
    const field = parseFieldLine(line, offset);
    const lower = field.name.toLowerCase();
    if (SINGLETON_FIELDS.has(lower)) {
      if (this.blockNames.has(lower)) {
        this.fail(
          lower === 'content-length'
            ? 'NMTP_ERR_FRAME_LENGTH_DUPLICATE'
            : 'NMTP_ERR_FRAME_DUPLICATE_FIELD',
          `${field.name} occurs twice`,
          offset,
        );
      }
      this.blockNames.add(lower);
    }
    try {
      if (lower === 'content-length') this.contentLength = parseContentLength(field.value);
      else if (lower === 'content-type') this.contentType = parseContentType(field.value);
      else if (ADDRESS_LIST_FIELDS.has(lower)) parseAddressList(field.value, this.validateAddress);
      else validateStructuredValue(lower, field.value);
    } catch (e) {
      if (e instanceof NmtpError) throw new NmtpError(e.code, e.message, { offset });
      throw e;
    }
    this.blockFields.push(field);
    return field;
  }

  /** The empty line ending a part's header was read: check the part and announce it. */
  private startPart(): PartStartEvent {
    const parent = this.stack.at(-1);
    const bodyOffset = this.offset;
    const length = this.contentLength;
    // "Every part has exactly one `Content-Length` field"
    if (length === undefined) this.fail('NMTP_ERR_FRAME_LENGTH_MISSING', 'no Content-Length');
    const end = bodyOffset + length + SENTINEL.length;
    if (parent !== undefined) {
      // "multipart/*: body is the concatenation of ≥0 child parts ... filling exactly
      // Content-Length octets": a child that would overrun its container is refused now.
      if (end > parent.bodyEnd) {
        this.fail('NMTP_ERR_FRAME_CONTAINER_MISMATCH', 'part overruns its container', bodyOffset);
      }
    } else if (end > this.limits.maxTotalBytes) {
      // "a declared Content-Length exceeding what remains allowed is refused at once"
      this.fail(
        'NMTP_ERR_FRAME_LENGTH_OVER_LIMIT',
        `Content-Length ${length} too large`,
        bodyOffset,
      );
    }
    const contentType = this.contentType ?? DEFAULT_CONTENT_TYPE;
    const kind: PartKind = isMultipart(contentType)
      ? 'multipart'
      : isMessageNmtp(contentType)
        ? 'message'
        : 'leaf';
    if (kind === 'message' && length === 0) {
      this.fail('NMTP_ERR_FRAME_CONTAINER_MISMATCH', 'message/nmtp holds no part', bodyOffset);
    }
    const path = parent === undefined ? [] : [...parent.path, parent.children++];
    const depth = parent === undefined ? 0 : parent.depth + 1;
    this.stack.push({ path, depth, kind, bodyEnd: bodyOffset + length, children: 0, skip: false });
    this.state = State.AfterStart;
    return {
      type: 'part-start',
      path,
      depth,
      fields: this.blockFields,
      contentLength: length,
      contentType,
      kind,
      offset: this.blockStart,
      bodyOffset,
    };
  }

  private endMessage(): EndEvent {
    // "Nothing may follow the root part's sentinel (appended content → error)."
    if (this.available()) this.fail('NMTP_ERR_FRAME_TRAILING_BYTES', 'bytes after the root part');
    let contentDigest: Uint8Array = EMPTY;
    if (this.hash !== undefined) {
      this.hash.update(this.cur.subarray(this.hashFrom, this.pos));
      this.hashing = false;
      contentDigest = new Uint8Array(this.hash.digest());
    }
    this.state = State.Done;
    return { type: 'end', contentDigest, totalBytes: this.offset };
  }
}
