/**
 * The framed bytes of a converted message as a list of pieces (header blocks, body views,
 * sentinels) instead of one buffer: a gateway writes them to the socket in order, so a
 * large body is never copied into an output buffer beside itself (spec §50.8). The pieces
 * concatenated are exactly encodeMessage(message).
 *
 * With the spool store, some leaf bodies are placeholders standing for ranges of the spool
 * file; `spooledPieces` then yields those ranges read back in bounded chunks.
 */
import {
  SENTINEL_BYTES,
  encodeHeader,
  encodePreamble,
  isContainerPart,
  type FramedMessage,
  type Part,
} from '../../src/core/frame/index.ts';
import type { SpooledBody } from './body-store.ts';

type Piece = Uint8Array | SpooledBody;
type Spooled = ReadonlyMap<Uint8Array, SpooledBody>;

function pieces(part: Part, out: Piece[], spooled: Spooled | undefined): number {
  if (isContainerPart(part)) {
    const inner: Piece[] = [];
    let length = 0;
    for (const child of part.children) length += pieces(child, inner, spooled);
    // encodeHeader validates the fields and sets Content-Length, as encodeMessage does.
    const header = encodeHeader(part.fields, length);
    out.push(header);
    for (const p of inner) out.push(p);
    out.push(SENTINEL_BYTES);
    return header.length + length + SENTINEL_BYTES.length;
  }
  const body: Piece = spooled?.get(part.body) ?? part.body;
  const header = encodeHeader(part.fields, body.length);
  out.push(header, body, SENTINEL_BYTES);
  return header.length + body.length + SENTINEL_BYTES.length;
}

/** The message's framed encoding as ordered pieces; bodies are referenced, not copied. */
export function framedPieces(message: FramedMessage): { pieces: Uint8Array[]; length: number } {
  const out: Piece[] = [encodePreamble(message.trace)];
  const length = pieces(message.root, out, undefined) + out[0]!.length;
  return { pieces: out as Uint8Array[], length };
}

/** Octets read from the spool file per chunk. */
const READ_CHUNK = 256 * 1024;

/**
 * Like framedPieces, for a message whose placeholder bodies stand for spooled octets: the
 * total length, and the framed bytes as an iterable that reads spooled ranges back
 * `READ_CHUNK` octets at a time (every header is encoded and validated before the first
 * octet is produced).
 */
export function spooledPieces(
  message: FramedMessage,
  spooled: Spooled,
  read: (offset: number, length: number) => Uint8Array,
): { pieces: Iterable<Uint8Array>; length: number } {
  const out: Piece[] = [encodePreamble(message.trace)];
  const length = pieces(message.root, out, spooled) + out[0]!.length;
  function* chunks(): Generator<Uint8Array> {
    for (const p of out) {
      if (p instanceof Uint8Array) {
        yield p;
        continue;
      }
      for (const [offset, len] of p.ranges) {
        for (let o = 0; o < len; o += READ_CHUNK) {
          yield read(offset + o, Math.min(READ_CHUNK, len - o));
        }
      }
    }
  }
  return { pieces: { [Symbol.iterator]: chunks }, length };
}
