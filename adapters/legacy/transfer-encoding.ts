/**
 * Content-Transfer-Encoding: choice per leaf and the streaming encoders
 * (docs/protocol.md §51.5). Bodies are read from the framed message's
 * buffer and encoded a chunk at a time, so only one output chunk exists at once.
 */
import { isAscii } from 'node:buffer';
import { LINE_ENDS_START, scanLines } from '../../src/gateway/line-ends.ts';
import { MAX_LINE } from './fold.ts';

export type TransferEncoding = '7bit' | '8bit' | 'quoted-printable' | 'base64';

/** What the body holds. */
export interface BodyFacts {
  /** An octet ≥ 0x80. */
  readonly eightBit: boolean;
  /** Only CRLF line ends, no NUL, every line ≤ 998 octets: can travel unencoded. */
  readonly lineClean: boolean;
  /** Empty, or ends with CRLF. */
  readonly endsWithLine: boolean;
  /** Octets quoted-printable would escape (non-printable, "=", bare CR/LF). */
  readonly escapes: number;
}

/**
 * The facts of a body, at memchr speed where it counts: a text body's line ends, NULs and
 * line lengths come from the checks smtp-in and the outgoing guard make
 * (src/gateway/line-ends.ts), whether it is 8-bit from `isAscii`, and the count of octets
 * quoted-printable would escape only when `chooseEncoding` reads it (never for a body sent
 * unencoded). `needEscapes` false (non-text parts, which are never quoted-printable) takes
 * `inspectOctets`, which stops at the first octet that rules out sending it unencoded: a
 * binary attachment is then decided in its first few octets instead of a full scan.
 */
export function inspectBody(body: Uint8Array, needEscapes = true, eightBitOk = true): BodyFacts {
  if (!needEscapes) return inspectOctets(body, false, eightBitOk);
  const n = body.length;
  const lines = scanLines(LINE_ENDS_START, body, MAX_LINE);
  // A CR ending the body is bare (finishLineEnds), as findLineEndFault says.
  const lineClean = lines.ends.ok && !lines.ends.state.pendingCr && lines.long.at < 0;
  let escapes: number | undefined;
  return {
    eightBit: !isAscii(body),
    lineClean,
    endsWithLine: n === 0 || (body[n - 2] === 13 && body[n - 1] === 10),
    get escapes(): number {
      return (escapes ??= inspectOctets(body).escapes);
    },
  };
}

/** The same facts, one octet at a time (the reference `inspectBody` is tested against). */
export function inspectOctets(body: Uint8Array, needEscapes = true, eightBitOk = true): BodyFacts {
  let eightBit = false;
  let lineClean = true;
  let escapes = 0;
  let lineLen = 0;
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (b === 13 && body[i + 1] === 10) {
      i++;
      lineLen = 0;
      continue;
    }
    if (b >= 0x80) eightBit = true;
    if (b === 0 || b === 13 || b === 10) lineClean = false;
    if (b >= 0x80 || b === 0x3d || (b < 0x20 && b !== 9) || b === 0x7f) escapes++;
    if (++lineLen > MAX_LINE) lineClean = false;
    if (!needEscapes && (!lineClean || (eightBit && !eightBitOk))) break;
  }
  const n = body.length;
  const endsWithLine = n === 0 || (body[n - 2] === 13 && body[n - 1] === 10);
  return { eightBit, lineClean, endsWithLine, escapes };
}

/** Types RFC 2046 §5.2 forbids to encode: "no encoding other than "7bit", "8bit", or "binary" is permitted". */
export function mustNotEncode(type: string, subtype: string): boolean {
  const t = `${type}/${subtype}`.toLowerCase();
  return t === 'message/rfc822' || t === 'message/partial' || t === 'message/external-body';
}

/**
 * Chooses the transfer encoding of a leaf.
 * "A body is written unencoded (7bit, or 8bit when the peer offers 8BITMIME) only when it
 * consists of CRLF-terminated lines of at most 998 octets without NUL; otherwise text is
 * quoted-printable when at most one octet in eight needs escaping, and everything else is
 * base64. binary is never used." (§51.5) `top` is the message's own body, which must also end
 * with CRLF to be sent unchanged (SMTP DATA ends with a line).
 */
export function chooseEncoding(
  facts: BodyFacts,
  size: number,
  options: { textual: boolean; eightBitMime: boolean; top: boolean },
): TransferEncoding {
  const identityOk = facts.lineClean && (!options.top || facts.endsWithLine);
  if (identityOk && !facts.eightBit) return '7bit';
  if (identityOk && options.eightBitMime) return '8bit';
  return options.textual && facts.escapes * 8 <= size ? 'quoted-printable' : 'base64';
}

/** base64 in lines of 76 characters, each ending in CRLF (RFC 2045 §6.8). */
export function* base64Lines(body: Uint8Array, chunkSize: number): Generator<Uint8Array> {
  // chunkSize is a multiple of 57 octets (one 76-character line), so chunks end on lines.
  for (let off = 0; off < body.length; off += chunkSize) {
    const n = Math.min(chunkSize, body.length - off);
    // Encode the chunk in one call, then insert CRLFs by copying octets (string slicing per
    // line costs several times more).
    const b64 = Buffer.from(
      Buffer.from(body.buffer, body.byteOffset + off, n).toString('base64'),
      'latin1',
    );
    const out = Buffer.allocUnsafe(b64.length + Math.ceil(b64.length / 76) * 2);
    let w = 0;
    for (let i = 0; i < b64.length; i += 76) {
      w += b64.copy(out, w, i, Math.min(i + 76, b64.length));
      out[w++] = 13;
      out[w++] = 10;
    }
    yield out.subarray(0, w);
  }
}

const HEX = '0123456789ABCDEF';

/**
 * Quoted-printable (RFC 2045 §6.7) of a text body, octet-exact: CRLF pairs are the hard
 * line breaks; bare CR, bare LF, "=", controls and 8-bit octets are escaped; a space or
 * tab before a line end is escaped (rule 3); lines are at most 76 characters with soft
 * breaks. `top`: the message's own body must end with a line, so a body not ending in CRLF
 * ends with a soft break (decodes to nothing).
 */
export function* quotedPrintable(
  body: Uint8Array,
  chunkSize: number,
  top: boolean,
): Generator<Uint8Array> {
  const cap = chunkSize + 256;
  let out = Buffer.allocUnsafe(cap);
  let w = 0;
  let col = 0;
  const put = (s: string): void => {
    if (col + s.length > 75) {
      w += out.write('=\r\n', w, 'latin1');
      col = 0;
    }
    w += out.write(s, w, 'latin1');
    col += s.length;
  };
  for (let i = 0; i < body.length; i++) {
    const b = body[i]!;
    if (b === 13 && body[i + 1] === 10) {
      w += out.write('\r\n', w, 'latin1');
      col = 0;
      i++;
    } else {
      const atLineEnd = i + 1 === body.length || (body[i + 1] === 13 && body[i + 2] === 10);
      const literal =
        (b >= 0x21 && b <= 0x7e && b !== 0x3d) || ((b === 0x20 || b === 0x09) && !atLineEnd);
      // A "." alone at a line start is fine for SMTP (the client dot-stuffs it).
      put(literal ? String.fromCharCode(b) : `=${HEX[b >> 4]!}${HEX[b & 15]!}`);
    }
    if (w >= chunkSize) {
      yield out.subarray(0, w);
      out = Buffer.allocUnsafe(cap);
      w = 0;
    }
  }
  const n = body.length;
  if (top && n > 0 && !(body[n - 2] === 13 && body[n - 1] === 10)) {
    w += out.write('=\r\n', w, 'latin1');
  }
  if (w > 0) yield out.subarray(0, w);
}
