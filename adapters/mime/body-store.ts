/**
 * Where decoded part bodies are kept until the framed encoder, which needs every length up
 * front, writes them (spec §50.8). The interface is small so that a spill-to-file store can
 * replace the in-memory one. `growingStore` keeps bodies in memory (bounded by the
 * configured maximum message size); `spoolStore` spills large bodies to a temporary file so
 * that memory does not depend on attachment size.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NmtpError } from '../../src/core/errors/index.ts';

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

/**
 * A body that was spilled to a spool file: its octets are the concatenation of `ranges`
 * ([offset, length] pairs) of the file at `path`. Nothing of it is in memory.
 */
export interface SpooledBody {
  readonly path: string;
  readonly ranges: readonly (readonly [offset: number, length: number])[];
  readonly length: number;
}

/** The spill-to-file store of one conversion (spec §50.8). `dispose()` removes its file. */
export interface SpoolStore extends BodyStore {
  create(): SpoolSink;
  /** The spool file path, once something was spilled. */
  readonly path: string | undefined;
  /** Reads `length` octets at `offset` of the spool file. */
  read(offset: number, length: number): Uint8Array;
  /** Closes and removes the spool file; safe to call more than once. */
  dispose(): void;
}

export interface SpoolSink extends BodySink {
  /** The octets, once: in memory while under the threshold, else a spool file reference. */
  takeRef(): Uint8Array | SpooledBody;
}

/** Bodies above this many octets go to the spool file by default. */
export const DEFAULT_SPILL_THRESHOLD = 1 << 20;

class Spool {
  fd: number | undefined;
  path: string | undefined;
  end = 0;
  constructor(private readonly dir: string) {}
  /** Appends octets at the end of the file; returns their offset. */
  write(chunk: Uint8Array): number {
    if (this.fd === undefined) {
      // 'wx': never reuse or follow an existing file; 0o600: bodies are private mail.
      const path = join(this.dir, `nmtp-spool-${process.pid}-${randomUUID()}.tmp`);
      this.fd = openSync(path, 'wx+', 0o600);
      this.path = path;
    }
    const at = this.end;
    let done = 0;
    while (done < chunk.length) {
      done += writeSync(this.fd, chunk, done, chunk.length - done, at + done);
    }
    this.end += chunk.length;
    return at;
  }
  read(offset: number, length: number): Uint8Array {
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd!, out, done, length - done, offset + done);
      // Someone truncated our spool file: a local fault, temporary by policy.
      if (n === 0) throw new NmtpError('NMTP_ERR_INTERNAL', 'spool file shorter than expected');
      done += n;
    }
    return out;
  }
  dispose(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } finally {
        this.fd = undefined;
        rmSync(this.path!, { force: true });
      }
    }
  }
}

/** In memory (a chunk list) up to the threshold, then appended to the spool file. */
class SpillSink implements SpoolSink {
  private small: MemorySink | undefined = new MemorySink();
  private ranges: [number, number][] = [];
  length = 0;
  constructor(
    private readonly spool: Spool,
    private readonly threshold: number,
  ) {}
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.length += chunk.length;
    if (this.small !== undefined) {
      if (this.small.length + chunk.length <= this.threshold) {
        this.small.append(chunk);
        return;
      }
      const held = this.small.take();
      this.small = undefined;
      this.put(held);
    }
    this.put(chunk);
  }
  private put(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const at = this.spool.write(chunk);
    const last = this.ranges.at(-1);
    // Other sinks may write in between: a body is a list of ranges, merged when adjacent.
    if (last !== undefined && last[0] + last[1] === at) last[1] += chunk.length;
    else this.ranges.push([at, chunk.length]);
  }
  takeRef(): Uint8Array | SpooledBody {
    if (this.small !== undefined) {
      this.length = 0;
      return this.small.take();
    }
    const ref: SpooledBody = { path: this.spool.path!, ranges: this.ranges, length: this.length };
    this.ranges = [];
    this.length = 0;
    this.small = new MemorySink();
    return ref;
  }
  take(): Uint8Array {
    const ref = this.takeRef();
    if (ref instanceof Uint8Array) return ref;
    // Needed whole (text transcoding, a nested message): read back into memory.
    const out = new Uint8Array(ref.length);
    let o = 0;
    for (const [offset, length] of ref.ranges) {
      out.set(this.spool.read(offset, length), o);
      o += length;
    }
    return out;
  }
}

/**
 * Spill-to-file store: a body stays in memory until it passes `threshold` octets, then it
 * is appended to one spool file in `dir` (created on first use, mode 0600).
 */
export function spoolStore(dir: string, threshold = DEFAULT_SPILL_THRESHOLD): SpoolStore {
  const spool = new Spool(dir);
  return {
    create: () => new SpillSink(spool, threshold),
    get path() {
      return spool.path;
    },
    read: (offset, length) => spool.read(offset, length),
    dispose: () => spool.dispose(),
  };
}
