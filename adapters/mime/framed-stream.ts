/**
 * The framed bytes of a converted message as a list of pieces (header blocks, body views,
 * sentinels) instead of one buffer: a gateway writes them to the socket in order, so a
 * large body is never copied into an output buffer beside itself (spec §8). The pieces
 * concatenated are exactly encodeMessage(message).
 */
import {
  SENTINEL_BYTES,
  encodeHeader,
  encodePreamble,
  isContainerPart,
  type FramedMessage,
  type Part,
} from '../../src/core/frame/index.ts';

function pieces(part: Part, out: Uint8Array[]): number {
  if (isContainerPart(part)) {
    const inner: Uint8Array[] = [];
    let length = 0;
    for (const child of part.children) length += pieces(child, inner);
    // encodeHeader validates the fields and sets Content-Length, as encodeMessage does.
    const header = encodeHeader(part.fields, length);
    out.push(header);
    for (const p of inner) out.push(p);
    out.push(SENTINEL_BYTES);
    return header.length + length + SENTINEL_BYTES.length;
  }
  const header = encodeHeader(part.fields, part.body.length);
  out.push(header, part.body, SENTINEL_BYTES);
  return header.length + part.body.length + SENTINEL_BYTES.length;
}

/** The message's framed encoding as ordered pieces; bodies are referenced, not copied. */
export function framedPieces(message: FramedMessage): { pieces: Uint8Array[]; length: number } {
  const out: Uint8Array[] = [encodePreamble(message.trace)];
  const length = pieces(message.root, out) + out[0]!.length;
  return { pieces: out, length };
}
