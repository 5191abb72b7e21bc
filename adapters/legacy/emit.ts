/**
 * Emitting a planned tree as legacy octets, one chunk at a time
 * (docs/protocol.md §51.6, §51.8). Leaf bodies that travel unencoded are
 * yielded as views of the framed message's buffer (no copy); encoded bodies are produced a
 * chunk at a time, so memory beyond the input is one chunk.
 */
import type { PlannedPart } from './plan.ts';
import { base64Lines, quotedPrintable } from './transfer-encoding.ts';

const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');

/**
 * `top`: this part's body ends the whole message, which must end with CRLF (a message is
 * lines, RFC 5322 §2.1). Inside a multipart the CRLF before the next delimiter belongs to
 * the delimiter (RFC 2046 §5.1.1), so a body there ends exactly where its octets end.
 */
export function* emitPart(p: PlannedPart, chunkSize: number, top: boolean): Generator<Uint8Array> {
  yield bytes(`${p.header}\r\n`);
  if (p.kind === 'leaf') {
    if (p.encoding === 'base64') yield* base64Lines(p.body, chunkSize);
    else if (p.encoding === 'quoted-printable') yield* quotedPrintable(p.body, chunkSize, top);
    else if (p.body.length > 0) yield p.body;
  } else if (p.kind === 'message') {
    yield* emitPart(p.child, chunkSize, top);
  } else {
    // No preamble: it would be text a reader might show, and nothing needs it.
    let first = true;
    for (const c of p.children) {
      yield bytes(`${first ? '' : '\r\n'}--${p.boundary}\r\n`);
      first = false;
      yield* emitPart(c, chunkSize, false);
    }
    // "An empty multipart (no children) is written with its close delimiter only." (§51.6)
    yield bytes(`${first ? '' : '\r\n'}--${p.boundary}--${top ? '\r\n' : ''}`);
  }
}
