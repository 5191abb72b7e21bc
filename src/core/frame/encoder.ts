/**
 * Encoder for framed messages (NMTP/1): a tree value in, the exact bytes out.
 *
 * The encoder refuses (NmtpError) anything the decoder would refuse on syntax, so a message
 * it produces always decodes back to the same tree. It does not apply the decoder's size
 * limits: those are the receiver's policy (appendTraceField, which edits a message in
 * place, does check them).
 */
import { createHash } from 'node:crypto';
import { NmtpError } from '../errors/index.ts';
import {
  type AddressValidator,
  type Field,
  ADDRESS_LIST_FIELDS,
  DEFAULT_CONTENT_TYPE,
  SINGLETON_FIELDS,
  fieldNameEquals,
  formatContentLength,
  isMessageNmtp,
  isMultipart,
  parseAddressList,
  parseContentType,
  validateField,
} from './fields.ts';
import { parseFieldLine } from './decoder.ts';
import { type FrameLimits, resolveLimits } from './limits.ts';

/** A part whose body is raw octets. */
export interface LeafPart {
  /** Header fields. A Content-Length field may be given (its value is recomputed in place). */
  readonly fields: readonly Field[];
  readonly body: Uint8Array;
}

/** A multipart/* (any number of children) or message/nmtp (exactly one child) part. */
export interface ContainerPart {
  readonly fields: readonly Field[];
  readonly children: readonly Part[];
}

export type Part = LeafPart | ContainerPart;

/** A whole framed message: the trace block and the root part (the "content"). */
export interface FramedMessage {
  readonly trace: readonly Field[];
  readonly root: Part;
}

/** "version-line = %s"NMTP/1" CRLF" */
export const VERSION_LINE_BYTES: Uint8Array = new TextEncoder().encode('NMTP/1\r\n');
/** "sentinel = CRLF CRLF" — written after every body. */
export const SENTINEL_BYTES: Uint8Array = new TextEncoder().encode('\r\n\r\n');

const utf8 = new TextEncoder();

export function isContainerPart(part: Part): part is ContainerPart {
  return 'children' in part;
}

function invalid(message: string): never {
  throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', message);
}

/** Validates a header block's fields (syntax and the singleton rule). Throws. */
function validateBlock(fields: readonly Field[]): void {
  const seen = new Set<string>();
  for (const f of fields) {
    validateField(f);
    const lower = f.name.toLowerCase();
    if (SINGLETON_FIELDS.has(lower)) {
      if (seen.has(lower)) {
        throw new NmtpError(
          lower === 'content-length'
            ? 'NMTP_ERR_FRAME_LENGTH_DUPLICATE'
            : 'NMTP_ERR_FRAME_DUPLICATE_FIELD',
          `${f.name} occurs twice`,
        );
      }
      seen.add(lower);
    }
  }
}

function blockText(fields: readonly Field[]): string {
  let s = '';
  for (const f of fields) s += `${f.name}: ${f.value}\r\n`;
  return s + '\r\n';
}

/**
 * The header block of a part with a body of `contentLength` octets: the fields, with the
 * Content-Length field's value set (in place if present, else as a new first field), and
 * the empty line. For streaming writers: write this, then exactly `contentLength` body
 * octets, then SENTINEL_BYTES.
 */
export function encodeHeader(fields: readonly Field[], contentLength: number): Uint8Array {
  const value = formatContentLength(contentLength);
  const i = fields.findIndex((f) => fieldNameEquals(f.name, 'Content-Length'));
  const withLength =
    i < 0
      ? [{ name: 'Content-Length', value }, ...fields]
      : fields.map((f, j) => (j === i ? { name: f.name, value } : f));
  validateBlock(withLength);
  return utf8.encode(blockText(withLength));
}

/** The version line and the trace block (with its empty line): everything before the root part. */
export function encodePreamble(trace: readonly Field[]): Uint8Array {
  validateBlock(trace);
  return utf8.encode('NMTP/1\r\n' + blockText(trace));
}

/** Called by writePart with each part's fields, encoded header block and depth. */
type PartHook = (fields: readonly Field[], header: Uint8Array, depth: number) => void;

/** Appends the encoded part to `out` and returns its length in octets. */
function writePart(part: Part, out: Uint8Array[], depth: number, hook?: PartHook): number {
  if (depth > 10_000) invalid('part tree too deep to encode');
  const ctValue = part.fields.find((f) => fieldNameEquals(f.name, 'Content-Type'))?.value;
  const ct = ctValue === undefined ? DEFAULT_CONTENT_TYPE : parseContentType(ctValue);
  const container = isMultipart(ct) || isMessageNmtp(ct);
  if (isContainerPart(part)) {
    if (!container) invalid(`a part with children needs a container type, not ${ctValue}`);
    if (isMessageNmtp(ct) && part.children.length !== 1) {
      invalid('message/nmtp holds exactly one part');
    }
    const inner: Uint8Array[] = [];
    let length = 0;
    for (const child of part.children) length += writePart(child, inner, depth + 1, hook);
    const header = encodeHeader(part.fields, length);
    hook?.(part.fields, header, depth);
    out.push(header, ...inner, SENTINEL_BYTES);
    return header.length + length + SENTINEL_BYTES.length;
  }
  // A container's body is parsed as parts, so raw octets cannot be labelled as one.
  if (container) invalid(`${ctValue} is a container type: give children, not a body`);
  const header = encodeHeader(part.fields, part.body.length);
  hook?.(part.fields, header, depth);
  out.push(header, part.body, SENTINEL_BYTES);
  return header.length + part.body.length + SENTINEL_BYTES.length;
}

function concat(pieces: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Encodes one part (e.g. the root part alone, whose bytes the content digest covers). */
export function encodePart(part: Part): Uint8Array {
  const pieces: Uint8Array[] = [];
  return concat(pieces, writePart(part, pieces, 0));
}

/** Encodes a whole framed message. Throws NmtpError on any field or structure error. */
export function encodeMessage(message: FramedMessage): Uint8Array {
  const preamble = encodePreamble(message.trace);
  const pieces: Uint8Array[] = [preamble];
  const length = writePart(message.root, pieces, 0);
  return concat(pieces, preamble.length + length);
}

/** What `decodeMessage` checks beyond syntax, for `encodeMessageWithDigest` to check too. */
export interface EncodeChecks {
  /** The decoder's limits (default DEFAULT_LIMITS). */
  readonly limits?: Partial<FrameLimits>;
  /** As the decoder's `validateAddress`: every address of every address-list field. */
  readonly validateAddress?: AddressValidator;
}

export interface EncodedMessage {
  readonly bytes: Uint8Array;
  /** SHA-256 over the root part's bytes, as the decoder's `end` event gives it. */
  readonly contentDigest: Uint8Array;
}

/**
 * `encodeMessage`, plus the content digest, and refusing what `decodeMessage(bytes, limits,
 * { validateAddress })` would refuse: the result is what decoding the bytes again would
 * give, without decoding them (a signer needs the digest, and the bytes' validity, of a
 * message it has just built). Refused with the decoder's codes; when a message breaks
 * several rules at once, which one is named may differ from the decoder's choice.
 */
export function encodeMessageWithDigest(
  message: FramedMessage,
  checks: EncodeChecks = {},
): EncodedMessage {
  const L = resolveLimits(checks.limits);
  const validate = checks.validateAddress;
  const block = (fields: readonly Field[], count: number, header: Uint8Array): void => {
    // §10.8: "header line, including its CRLF", "fields per header block", "header block,
    // all field lines and the empty line".
    if (count > L.maxFields) {
      throw new NmtpError('NMTP_ERR_FRAME_TOO_MANY_FIELDS', `more than ${L.maxFields}`);
    }
    if (header.length > L.maxHeaderBytes) {
      throw new NmtpError('NMTP_ERR_FRAME_HEADER_TOO_LARGE', 'header block exceeds a limit');
    }
    for (
      let at = 0, lf = header.indexOf(0x0a);
      lf >= 0;
      at = lf + 1, lf = header.indexOf(0x0a, at)
    ) {
      if (lf - at + 1 > L.maxLineBytes) {
        throw new NmtpError('NMTP_ERR_FRAME_LINE_TOO_LONG', 'header line exceeds a limit');
      }
    }
    if (validate === undefined) return;
    for (const f of fields) {
      if (ADDRESS_LIST_FIELDS.has(f.name.toLowerCase())) parseAddressList(f.value, validate);
    }
  };
  let parts = 0;
  let rootHeader = 0;
  const preamble = encodePreamble(message.trace);
  block(message.trace, message.trace.length, preamble.subarray(VERSION_LINE_BYTES.length));
  const pieces: Uint8Array[] = [preamble];
  const length = writePart(message.root, pieces, 0, (fields, header, depth) => {
    if (depth > L.maxDepth) throw new NmtpError('NMTP_ERR_FRAME_TOO_DEEP', `depth ${depth}`);
    if (++parts > L.maxParts) {
      throw new NmtpError('NMTP_ERR_FRAME_TOO_MANY_PARTS', `more than ${L.maxParts} parts`);
    }
    // Content-Length is a field of the block too (encodeHeader adds it when absent).
    const count = fields.some((f) => fieldNameEquals(f.name, 'Content-Length'))
      ? fields.length
      : fields.length + 1;
    block(fields, count, header);
    if (depth === 0) rootHeader = header.length;
  });
  if (preamble.length + length > L.maxTotalBytes) {
    // As the decoder: a header line past the limit, else the root's declared length.
    if (preamble.length + rootHeader > L.maxTotalBytes) {
      throw new NmtpError('NMTP_ERR_FRAME_TOO_LARGE', 'message exceeds the size limit');
    }
    throw new NmtpError('NMTP_ERR_FRAME_LENGTH_OVER_LIMIT', 'root Content-Length too large');
  }
  const bytes = concat(pieces, preamble.length + length);
  // "SHA-256 (FIPS 180-4) over the root part's octets: from the first octet of its first
  // field line through the last octet of its sentinel" (§10.7): all after the preamble.
  const contentDigest = new Uint8Array(
    createHash('sha256').update(bytes.subarray(preamble.length)).digest(),
  );
  return { bytes, contentDigest };
}

/** Where a trace field goes in a message, and its line (CRLF included). */
export interface TraceInsertion {
  /** The offset of the empty line that ends the trace block: the field goes just before. */
  readonly at: number;
  readonly line: Uint8Array;
}

/**
 * Where `appendTraceField` inserts `field`, after the same checks, given only `head` — a
 * prefix of the message holding at least its whole trace block (so a large message on
 * disk need not be read whole) — and the whole message's length, for the size limit.
 */
export function traceInsertion(
  head: Uint8Array,
  field: Field,
  limits?: Partial<FrameLimits>,
  totalBytes = head.length,
): TraceInsertion {
  const L = resolveLimits(limits);
  validateField(field);
  const line = utf8.encode(`${field.name}: ${field.value}\r\n`);
  for (let i = 0; i < VERSION_LINE_BYTES.length; i++) {
    if (head[i] !== VERSION_LINE_BYTES[i]) {
      throw new NmtpError('NMTP_ERR_FRAME_VERSION', 'expected "NMTP/1" CRLF', { offset: i });
    }
  }
  const lower = field.name.toLowerCase();
  let at = VERSION_LINE_BYTES.length;
  let count = 0;
  for (;;) {
    const lf = head.indexOf(0x0a, at);
    if (lf < 0 || lf - at + 1 > L.maxLineBytes || head[lf - 1] !== 0x0d) {
      throw new NmtpError('NMTP_ERR_FRAME_FIELD_SYNTAX', 'unterminated trace line', {
        offset: at,
      });
    }
    if (lf === at + 1) break; // the empty line ending the trace block
    const existing = parseFieldLine(head.subarray(at, lf - 1), at);
    if (SINGLETON_FIELDS.has(lower) && existing.name.toLowerCase() === lower) {
      throw new NmtpError('NMTP_ERR_FRAME_DUPLICATE_FIELD', `${field.name} already in trace`);
    }
    count++;
    at = lf + 1;
  }
  if (line.length > L.maxLineBytes) {
    throw new NmtpError('NMTP_ERR_FRAME_LINE_TOO_LONG', 'trace field too long');
  }
  if (count + 1 > L.maxFields) {
    throw new NmtpError('NMTP_ERR_FRAME_TOO_MANY_FIELDS', 'trace block full');
  }
  // The trace block runs from after the version line through its empty line.
  if (at + 2 - VERSION_LINE_BYTES.length + line.length > L.maxHeaderBytes) {
    throw new NmtpError('NMTP_ERR_FRAME_HEADER_TOO_LARGE', 'trace block full');
  }
  if (totalBytes + line.length > L.maxTotalBytes) {
    throw new NmtpError('NMTP_ERR_FRAME_TOO_LARGE', 'message would exceed the size limit');
  }
  return { at, line };
}

/**
 * Inserts `field` at the end of the trace block of `message` and returns the new message.
 * Every other byte is unchanged, so the content digest and every existing signature stay
 * valid ("Signatures are appended to the trace block; ... adding one never changes bytes
 * any earlier one covers"). The trace block is checked as the decoder would check it,
 * including the limits, so the result is never a message decoders refuse for its trace.
 */
export function appendTraceField(
  message: Uint8Array,
  field: Field,
  limits?: Partial<FrameLimits>,
): Uint8Array {
  const { at, line } = traceInsertion(message, field, limits);
  const out = new Uint8Array(message.length + line.length);
  out.set(message.subarray(0, at), 0);
  out.set(line, at);
  out.set(message.subarray(at), at + line.length);
  return out;
}
