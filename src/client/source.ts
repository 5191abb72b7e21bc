/**
 * The message a transfer client sends, and its views (docs/protocol.md §60.10.4), from
 * memory or streamed from a file. One pass of the streaming frame decoder over the
 * message gives everything DATA announces (size, content digest, signers) and where each
 * view's octets lie; a view is then a list of byte ranges of the message, sent as chunks
 * of at most 1 MiB read from the file one at a time — a message is never held in memory
 * whole ("backpressure (never buffer a whole message in memory)", issue 4).
 */
import { open, stat } from 'node:fs/promises';
import { parseAddress, validateDisplayName } from '../core/address/index.ts';
import { NmtpError } from '../core/errors/index.ts';
import {
  END as FRAME_END,
  FrameDecoder,
  NEED_MORE as FRAME_NEED_MORE,
  fieldNameEquals,
  type FrameLimits,
} from '../core/frame/index.ts';
import type { View } from '../core/session/index.ts';
import { parseSignatureField, toBase64url } from '../core/sign/index.ts';
import { DEFAULT_WIRE_LIMITS } from '../core/wire/index.ts';

/** What DATA announces about a message (§60.10.4), from the message itself. */
export interface Announcement {
  readonly size: number;
  readonly digest: string;
  readonly signers: readonly string[];
}

/** Where the views of a message lie, from one decoder pass. */
export interface MessageLayout extends Announcement {
  /** End of the version line + trace block (with its empty line): the `signers` view. */
  readonly traceEnd: number;
  /** End of the root part's header block: the `headers` view. */
  readonly headersEnd: number;
  /** The first text/plain leaf in depth-first order, whole; 'root' if the root is it. */
  readonly text?: readonly [number, number] | 'root';
}

/** A message to send: its announcement, and each view as pieces of at most 1 MiB. */
export interface MessageSource {
  readonly size: number;
  /** Decodes (and validates) the message once; later calls return the same layout. */
  layout(): Promise<MessageLayout>;
  /**
   * The octets of `view`, in pieces of at most `max` octets (default 1 MiB), in order. A
   * piece may be overwritten once the next one is asked for: use (or copy) it first.
   */
  pieces(view: View, max?: number): AsyncIterable<Uint8Array>;
  /** Total octets of `view`. */
  viewLength(view: View): Promise<number>;
  /**
   * A source that holds the message in memory: the same as `viewLength` and `pieces`, with
   * nothing to wait for, so a session sends a small message without a promise per piece.
   */
  readonly now?: {
    viewLength(view: View): number;
    /** The pieces `pieces(view, max)` yields, views of the message (never overwritten). */
    pieces(view: View, max?: number): readonly Uint8Array[];
  };
}

/** The byte ranges [start, end) of the message that make up `view` (§60.10.4). */
export function viewRanges(l: MessageLayout, view: View): [number, number][] {
  switch (view) {
    case 'full':
      return [[0, l.size]];
    case 'digest':
      return [];
    case 'signers':
      return [[0, l.traceEnd]];
    case 'headers':
      return [[0, l.headersEnd]];
    case 'text':
      // "the headers view, then the first text/plain leaf part in depth-first order,
      // complete (header block, body, sentinel); if the root part is itself that leaf, the
      // full message" (§60.10.4).
      if (l.text === 'root') return [[0, l.size]];
      return l.text === undefined ? [[0, l.headersEnd]] : [[0, l.headersEnd], [...l.text]];
  }
}

/**
 * A streaming scan: push the message in any pieces, then `finish()` for its layout. Holds
 * no body octets (the decoder hands out views, which are dropped at once).
 */
export class LayoutScanner {
  private readonly d: FrameDecoder;
  private readonly signers: string[] = [];
  private traceEnd = -1;
  private headersEnd = -1;
  private text: readonly [number, number] | 'root' | undefined;
  private result: MessageLayout | undefined;

  constructor(limits?: Partial<FrameLimits>) {
    this.d = new FrameDecoder({
      ...(limits === undefined ? {} : { limits }),
      // The same validation as decodeAndValidate: a message we would not accept, we do not send.
      validateAddress: (address, displayName) => {
        parseAddress(address, { mode: 'wire' });
        if (displayName !== undefined) validateDisplayName(displayName);
      },
    });
  }

  push(bytes: Uint8Array): void {
    this.d.push(bytes);
    this.drain();
  }

  finish(): MessageLayout {
    this.d.finish();
    this.drain();
    if (this.result === undefined) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the message ended before its last part');
    }
    return this.result;
  }

  private drain(): void {
    for (let ev = this.d.next(); ev !== FRAME_NEED_MORE && ev !== FRAME_END; ev = this.d.next()) {
      switch (ev.type) {
        case 'trace-field':
          if (!fieldNameEquals(ev.name, 'Signature')) break;
          try {
            const s = parseSignatureField(ev.value);
            // "the d= domains, or u= users, of the message's signatures" (§60.4).
            const id = s.user ?? s.domain;
            if (!this.signers.includes(id)) this.signers.push(id);
          } catch {
            // An unparseable signature names no signer; the receiver finds out when verifying.
          }
          break;
        case 'part-start': {
          if (ev.depth === 0) {
            this.traceEnd = ev.offset;
            this.headersEnd = ev.bodyOffset;
          }
          const ct = ev.contentType;
          const textPlain =
            ev.kind === 'leaf' &&
            ct.type.toLowerCase() === 'text' &&
            ct.subtype.toLowerCase() === 'plain';
          if (textPlain && this.text === undefined) {
            this.text = ev.depth === 0 ? 'root' : [ev.offset, ev.bodyOffset + ev.contentLength + 4];
          }
          break;
        }
        case 'end':
          this.result = {
            size: ev.totalBytes,
            digest: toBase64url(ev.contentDigest),
            signers: this.signers,
            traceEnd: this.traceEnd,
            headersEnd: this.headersEnd,
            ...(this.text === undefined ? {} : { text: this.text }),
          };
          break;
        default:
          break;
      }
    }
  }
}

const MAX_CHUNK = DEFAULT_WIRE_LIMITS.maxChunk;
/**
 * A file is sent in 256 KiB chunks (any size up to 1 MiB is allowed, §60.5): smaller pieces
 * keep less in flight in the TLS layer at once, at a negligible cost in chunk headers.
 */
const FILE_PIECE = 256 * 1024;

function total(ranges: readonly [number, number][]): number {
  return ranges.reduce((n, [a, b]) => n + (b - a), 0);
}

/**
 * The sources of messages in memory, by their bytes: a queue or a pool that sends the same
 * Uint8Array again (another recipient, a retry, `pool.run(…, bytes)` per job) decodes it
 * once. The bytes of a message must not change once it is handed to the client (a signed
 * message never does): a change would not be seen by the cached layout.
 */
const byBytes = new WeakMap<Uint8Array, MessageSource>();

/** A message in memory (the existing API: `transferTo(…, bytes)`); one source per array. */
export function bytesSource(message: Uint8Array): MessageSource {
  let s = byBytes.get(message);
  if (s === undefined) {
    s = newBytesSource(message);
    byBytes.set(message, s);
  }
  return s;
}

/** The layout `bytesSource(message).layout()` gives, computed now (throws as it rejects). */
export function messageLayout(message: Uint8Array): MessageLayout {
  const s = new LayoutScanner();
  s.push(message);
  return s.finish();
}

/**
 * Gives `bytesSource(message)` its layout computed elsewhere — by `messageLayout` over the
 * same octets on another thread (the gateway's cleanup) — so the event loop does not
 * decode and hash the message again before sending it.
 */
export function primeLayout(message: Uint8Array, layout: MessageLayout): void {
  if (!byBytes.has(message)) byBytes.set(message, newBytesSource(message, layout));
}

function newBytesSource(message: Uint8Array, known?: MessageLayout): MessageSource {
  let layout: MessageLayout | undefined = known;
  const get = (): MessageLayout => {
    layout ??= messageLayout(message);
    return layout;
  };
  const piecesOf = (view: View, max = MAX_CHUNK): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (const [a, b] of viewRanges(get(), view)) {
      for (let i = a; i < b; i += max) out.push(message.subarray(i, Math.min(b, i + max)));
    }
    return out;
  };
  const lengthOf = (view: View): number => total(viewRanges(get(), view));
  return {
    size: message.length,
    layout: () => Promise.resolve(get()),
    viewLength: (view) => Promise.resolve(lengthOf(view)),
    async *pieces(view, max = MAX_CHUNK) {
      // Ranges are computed when the first piece is asked for, as before.
      yield* piecesOf(view, max);
    },
    now: { viewLength: lengthOf, pieces: piecesOf },
  };
}

/**
 * A message in a file, never read whole: one streaming pass for the layout, then each view
 * read piece by piece into one buffer.
 */
export async function fileSource(path: string): Promise<MessageSource> {
  const size = (await stat(path)).size;
  let layout: Promise<MessageLayout> | undefined;
  const get = (): Promise<MessageLayout> =>
    (layout ??= (async () => {
      const s = new LayoutScanner();
      // One buffer, refilled: the decoder lets go of pushed input once it needs more.
      const buf = new Uint8Array(1 << 16);
      const fh = await open(path, 'r');
      try {
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          s.push(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
      const l = s.finish();
      if (l.size !== size) {
        throw new NmtpError(
          'NMTP_ERR_TRANSPORT_LOCAL',
          `${path}: trailing octets after the message`,
        );
      }
      return l;
    })());
  return {
    size,
    layout: get,
    viewLength: async (view) => total(viewRanges(await get(), view)),
    async *pieces(view, max = FILE_PIECE) {
      const ranges = viewRanges(await get(), view);
      if (ranges.length === 0) return;
      const fh = await open(path, 'r');
      // One buffer for the whole view, refilled piece by piece: the consumer is done with a
      // piece when it asks for the next (the session waits until the socket has taken it).
      const buf = new Uint8Array(Math.min(max, Math.max(...ranges.map(([a, b]) => b - a))));
      try {
        for (const [a, b] of ranges) {
          for (let i = a; i < b;) {
            const want = Math.min(buf.length, b - i);
            const { bytesRead } = await fh.read(buf, 0, want, i);
            if (bytesRead === 0) {
              throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `${path}: shorter than announced`);
            }
            yield buf.subarray(0, bytesRead);
            i += bytesRead;
          }
        }
      } finally {
        await fh.close();
      }
    },
  };
}

/** The announcement of a message in memory (decoded and validated). */
export function announce(message: Uint8Array): Announcement {
  const s = new LayoutScanner();
  s.push(message);
  const { size, digest, signers } = s.finish();
  return { size, digest, signers };
}

/** Octets of a view of a framed message in memory (§60.10.4). */
export function viewOf(message: Uint8Array, view: View): Uint8Array {
  if (view === 'full') return message;
  const s = new LayoutScanner();
  s.push(message);
  const ranges = viewRanges(s.finish(), view);
  const [first] = ranges;
  if (ranges.length === 1 && first![0] === 0 && first![1] === message.length) return message;
  if (ranges.length === 1) return message.subarray(first![0], first![1]);
  const out = new Uint8Array(total(ranges));
  let at = 0;
  for (const [a, b] of ranges) {
    out.set(message.subarray(a, b), at);
    at += b - a;
  }
  return out;
}
