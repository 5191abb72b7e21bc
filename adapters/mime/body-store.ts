/**
 * Where decoded part bodies are kept until the framed encoder, which needs every length up
 * front, writes them (spec §8). The interface is small so that a spill-to-file store can
 * replace the in-memory one; this issue ships the in-memory store, bounded by the
 * configured maximum message size (the whole of what it may hold is counted).
 */
export interface BodySink {
  /** Takes ownership of `chunk` (callers pass octets nobody else will modify). */
  append(chunk: Uint8Array): void;
  /** The octets, once; the sink is empty afterwards. */
  take(): Uint8Array;
  readonly length: number;
}

export interface BodyStore {
  create(): BodySink;
}

class MemorySink implements BodySink {
  private chunks: Uint8Array[] = [];
  length = 0;
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
  take(): Uint8Array {
    const chunks = this.chunks;
    this.chunks = [];
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/**
 * One resizable ArrayBuffer per body, grown in place: resizing commits pages without
 * copying, so a body costs its size once (no chunk list + final concatenation, which
 * briefly held it twice). The reservation is virtual address space, capped by `max`.
 */
class GrowingSink implements BodySink {
  private buf: ArrayBuffer;
  length = 0;
  constructor(max: number) {
    this.buf = new ArrayBuffer(0, { maxByteLength: max });
  }
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const need = this.length + chunk.length;
    if (need > this.buf.maxByteLength) {
      throw new RangeError('body larger than the store allows');
    }
    if (need > this.buf.byteLength) {
      // Grow by at least 1/8 so resizing stays amortised O(1) per octet.
      const grown = Math.max(need, Math.min(this.buf.maxByteLength, this.buf.byteLength * 1.125));
      this.buf.resize(Math.ceil(grown));
    }
    new Uint8Array(this.buf, this.length, chunk.length).set(chunk);
    this.length = need;
  }
  take(): Uint8Array {
    const out = new Uint8Array(this.buf, 0, this.length);
    this.buf = new ArrayBuffer(0);
    this.length = 0;
    return out;
  }
}

export const MEMORY_STORE: BodyStore = { create: () => new MemorySink() };

/** Bodies up to this size stay a chunk list: reserving a resizable buffer costs more. */
const SMALL_BODY = 1 << 20;

/** Chunk list while small; moves into a GrowingSink once it passes SMALL_BODY octets. */
class AdaptiveSink implements BodySink {
  private small: MemorySink | undefined = new MemorySink();
  private large: GrowingSink | undefined;
  constructor(private readonly max: number) {}
  get length(): number {
    return (this.small ?? this.large)!.length;
  }
  append(chunk: Uint8Array): void {
    if (this.small !== undefined && this.small.length + chunk.length > SMALL_BODY) {
      this.large = new GrowingSink(this.max);
      this.large.append(this.small.take());
      this.small = undefined;
    }
    (this.small ?? this.large)!.append(chunk);
  }
  take(): Uint8Array {
    return (this.small ?? this.large)!.take();
  }
}

/** Bodies kept in memory, each at most `max` octets (the message size limit). */
export function growingStore(max: number): BodyStore {
  return { create: () => new AdaptiveSink(max) };
}
