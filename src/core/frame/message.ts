/**
 * Whole-message helpers on top of the incremental decoder: decode a complete message into
 * a tree value, and find one part by walking declared lengths (random access).
 */
import { type Field } from './fields.ts';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  type DecoderOptions,
  type PartPath,
  type PartStartEvent,
} from './decoder.ts';
import type { ContainerPart, FramedMessage, Part } from './encoder.ts';
import type { FrameLimits } from './limits.ts';

/** A decoded message: the tree value plus what only decoding can tell. */
export interface DecodedMessage extends FramedMessage {
  /** SHA-256 over the root part's bytes (§10.7). */
  readonly contentDigest: Uint8Array;
  readonly totalBytes: number;
}

/**
 * Decodes a complete framed message. Leaf bodies are views into `bytes` (no copies).
 * Fields keep Content-Length where it was written, so encodeMessage(decodeMessage(b))
 * reproduces b exactly. Throws NmtpError (FRAME codes) on any invalid input.
 */
export function decodeMessage(
  bytes: Uint8Array,
  limits?: Partial<FrameLimits>,
  options: Omit<DecoderOptions, 'limits'> = {},
): DecodedMessage {
  const d = new FrameDecoder(limits === undefined ? options : { ...options, limits });
  d.push(bytes);
  const trace: Field[] = [];
  // Open containers, innermost last; each collects its children.
  const open: { fields: readonly Field[]; children: Part[] }[] = [];
  let root: Part | undefined;
  const place = (part: Part): void => {
    const parent = open.at(-1);
    if (parent === undefined) root = part;
    else parent.children.push(part);
  };
  for (;;) {
    const ev = d.next();
    if (ev === NEED_MORE) break;
    if (ev === END) break;
    switch (ev.type) {
      case 'trace-field':
        trace.push({ name: ev.name, value: ev.value });
        break;
      case 'part-start':
        if (ev.kind === 'leaf') {
          // The body is declared, so it is sliced rather than gathered from body events;
          // skipping a leaf still checks its sentinel and hashes it.
          place({
            fields: ev.fields,
            body: bytes.subarray(ev.bodyOffset, ev.bodyOffset + ev.contentLength),
          });
          d.skipPart();
        } else {
          open.push({ fields: ev.fields, children: [] });
        }
        break;
      case 'part-end': {
        // Leaves were placed at their start; a container is placed once complete.
        if (open.length > ev.path.length) {
          const done = open.pop()!;
          place({ fields: done.fields, children: done.children } satisfies ContainerPart);
        }
        break;
      }
      case 'end':
        return { trace, root: root!, contentDigest: ev.contentDigest, totalBytes: ev.totalBytes };
      default:
        break;
    }
  }
  d.finish(); // throws NMTP_ERR_FRAME_TRUNCATED
  throw new Error('unreachable: finish() returned without a complete message');
}

/** Where a part is in a message; its body is bytes.subarray(bodyOffset, bodyOffset + contentLength). */
export type PartLocation = Omit<PartStartEvent, 'type'> & {
  /** Offset just past the part's sentinel. */
  readonly end: number;
};

function locate(
  bytes: Uint8Array,
  limits: Partial<FrameLimits> | undefined,
  decide: (ev: PartStartEvent) => 'found' | 'enter' | 'skip',
): PartLocation | undefined {
  const d = new FrameDecoder(limits === undefined ? { digest: false } : { limits, digest: false });
  d.push(bytes);
  for (;;) {
    const ev = d.next();
    if (ev === NEED_MORE || ev === END || ev.type === 'end') return undefined;
    if (ev.type !== 'part-start') continue;
    const verdict = decide(ev);
    if (verdict === 'found') {
      return {
        path: ev.path,
        depth: ev.depth,
        fields: ev.fields,
        contentLength: ev.contentLength,
        contentType: ev.contentType,
        kind: ev.kind,
        offset: ev.offset,
        bodyOffset: ev.bodyOffset,
        end: ev.bodyOffset + ev.contentLength + 4,
      };
    }
    if (verdict === 'skip') d.skipPart();
  }
}

/**
 * Finds part number `n` in preorder (0 is the root, 1 its first child, ...). Leaf bodies are
 * skipped by their declared lengths, never read; containers are entered because their part
 * count is not declared. Only the bytes before the part are validated. Undefined when the
 * message has fewer parts.
 */
export function locatePart(
  bytes: Uint8Array,
  n: number,
  limits?: Partial<FrameLimits>,
): PartLocation | undefined {
  let seen = -1;
  return locate(bytes, limits, (ev) => {
    if (++seen === n) return 'found';
    return ev.kind === 'leaf' ? 'skip' : 'enter';
  });
}

/**
 * Finds the part at index path `path` ([] is the root). Siblings before it are skipped
 * whole, subtrees included, by their declared lengths. Undefined when there is no such part.
 */
export function locatePath(
  bytes: Uint8Array,
  path: PartPath,
  limits?: Partial<FrameLimits>,
): PartLocation | undefined {
  return locate(bytes, limits, (ev) => {
    if (ev.path.length === path.length && ev.path.every((v, i) => v === path[i])) return 'found';
    const onTheWay = ev.path.length < path.length && ev.path.every((v, i) => v === path[i]);
    return onTheWay ? 'enter' : 'skip';
  });
}
