/**
 * Incremental Content-Transfer-Encoding decoders: raw body chunks in, decoded octets out,
 * so an encoded attachment never sits in memory beside its decoded form (spec §50.5.1).
 */

export interface CteDecoder {
  /**
   * Decodes as much of `chunk` as is complete; keeps an incomplete tail for later. The
   * result is owned by the caller (never a view into `chunk`).
   */
  write(chunk: Uint8Array): Uint8Array;
  /** Flushes the tail. */
  end(): Uint8Array;
  /** Set when the input was not valid for the encoding (it was still decoded leniently). */
  readonly damaged: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * 7bit, 8bit, binary and unknown encodings: the octets are the content. Copied, because
 * the splitter's chunks may be views into buffers it reuses; every decoder returns octets
 * the caller owns, so the body store never copies again.
 */
class Identity implements CteDecoder {
  readonly damaged = false;
  write(chunk: Uint8Array): Uint8Array {
    return chunk.slice();
  }
  end(): Uint8Array {
    return EMPTY;
  }
}

// base64 alphabet (RFC 4648 §4) as a lookup table; -1 for everything else.
const B64 = new Int8Array(256).fill(-1);
for (const [i, c] of [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
].entries()) {
  B64[c.charCodeAt(0)] = i;
}

/**
 * RFC 2045 §6.8: "All line breaks or other characters not found in Table 1 must be
 * ignored by decoding software." Decoding stops at the first "=" (padding ends the data;
 * RFC 2045: "any characters following ... '=' ... should be ignored" is not said, but
 * Python and libmime both stop there too, so the three agree).
 */
/** Chunks at least this long may take the native path (its output is then never pooled). */
const NATIVE_MIN = 8192;
/**
 * The native path works on pieces of about this size, cut after a line break: the strings
 * it makes stay small enough for V8's young generation, so they are freed at once (a
 * 256 KiB string would wait for a full collection and raise the peak memory).
 */
const NATIVE_PIECE = 32 * 1024;
const ALPHABET_AND_LINES = /^[A-Za-z0-9+/\r\n]*$/;

class Base64 implements CteDecoder {
  damaged = false;
  private quad = 0;
  private n = 0;
  private done = false;
  write(chunk: Uint8Array): Uint8Array {
    if (chunk.length < NATIVE_MIN) return this.loop(chunk);
    const outs: Uint8Array[] = [];
    let total = 0;
    for (let pos = 0; pos < chunk.length;) {
      let end = Math.min(chunk.length, pos + NATIVE_PIECE);
      if (end < chunk.length) {
        const lf = chunk.indexOf(0x0a, end);
        end = lf < 0 ? chunk.length : lf + 1;
      }
      const out = this.piece(chunk.subarray(pos, end));
      outs.push(out);
      total += out.length;
      pos = end;
    }
    if (outs.length === 1) return outs[0]!;
    const all = new Uint8Array(total);
    let o = 0;
    for (const out of outs) {
      all.set(out, o);
      o += out.length;
    }
    return all;
  }
  /**
   * The common case, a clean run of base64 lines, is decoded by Node's native decoder,
   * several times faster than the loop below. It gives the same octets: only alphabet
   * characters and line breaks, whole quads, no padding (the piece with "=" takes the loop).
   */
  private piece(chunk: Uint8Array): Uint8Array {
    if (!this.done && this.n === 0) {
      const s = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('latin1');
      if (ALPHABET_AND_LINES.test(s)) {
        const clean = s.replace(/[\r\n]+/g, '');
        const whole = clean.length - (clean.length % 4);
        const decoded = Buffer.from(clean.slice(0, whole), 'base64');
        // A small result may be a slice of Node's shared pool: copied out, so that a body
        // never keeps (or exposes) a pool buffer.
        const head = decoded.length < 4096 ? new Uint8Array(decoded) : decoded;
        if (whole === clean.length) return head;
        const tail = this.loop(Buffer.from(clean.slice(whole), 'latin1'));
        const out = new Uint8Array(head.length + tail.length);
        out.set(head, 0);
        out.set(tail, head.length);
        return out;
      }
    }
    return this.loop(chunk);
  }
  private loop(chunk: Uint8Array): Uint8Array {
    const out = new Uint8Array(Math.ceil((chunk.length * 3) / 4) + 3);
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.done) {
        if (c !== 0x3d && c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09) this.damaged = true;
        continue;
      }
      const v = B64[c]!;
      if (v < 0) {
        if (c === 0x3d) this.done = true;
        else if (c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09) this.damaged = true;
        continue;
      }
      this.quad = (this.quad << 6) | v;
      if (++this.n === 4) {
        out[o++] = (this.quad >> 16) & 0xff;
        out[o++] = (this.quad >> 8) & 0xff;
        out[o++] = this.quad & 0xff;
        this.quad = 0;
        this.n = 0;
      }
    }
    return out.subarray(0, o);
  }
  end(): Uint8Array {
    // A trailing group of 2 or 3 symbols carries 1 or 2 octets; a single symbol none.
    const n = this.n;
    this.n = 0;
    if (n === 2) return Uint8Array.of((this.quad >> 4) & 0xff);
    if (n === 3) return Uint8Array.of((this.quad >> 10) & 0xff, (this.quad >> 2) & 0xff);
    if (n === 1) this.damaged = true;
    return EMPTY;
  }
}

const hex = (c: number): number =>
  c >= 0x30 && c <= 0x39
    ? c - 0x30
    : c >= 0x41 && c <= 0x46
      ? c - 55
      : c >= 0x61 && c <= 0x66
        ? c - 87
        : -1;

/**
 * Quoted-printable (RFC 2045 §6.7), line by line. "=" CRLF (or bare LF) is a soft line
 * break; "=XX" an octet (lower-case hex accepted, as Python does); an "=" not followed by
 * two hex digits is kept literally (§6.7 note (2): "the '=' should be interpreted as if it
 * were not present" is ambiguous; literal keeps the text and matches Python). Trailing
 * whitespace is kept, as Python's decoder keeps it, so both agree octet for octet.
 */
class QuotedPrintable implements CteDecoder {
  damaged = false;
  private tail: Uint8Array = EMPTY;
  write(chunk: Uint8Array): Uint8Array {
    const data = this.tail.length === 0 ? chunk : concat(this.tail, chunk);
    // Only whole lines are decoded: a "=" near the end may belong to the next chunk.
    const lastLf = data.lastIndexOf(0x0a);
    if (lastLf < 0) {
      this.tail = data.slice();
      return EMPTY;
    }
    this.tail = data.slice(lastLf + 1);
    return this.decode(data.subarray(0, lastLf + 1));
  }
  end(): Uint8Array {
    const t = this.tail;
    this.tail = EMPTY;
    return this.decode(t);
  }
  private decode(data: Uint8Array): Uint8Array {
    const out = new Uint8Array(data.length);
    let o = 0;
    for (let i = 0; i < data.length; i++) {
      const c = data[i]!;
      if (c !== 0x3d) {
        out[o++] = c;
        continue;
      }
      const a = data[i + 1];
      if (a === 0x0a) {
        i += 1;
        continue;
      }
      if (a === 0x0d && data[i + 2] === 0x0a) {
        i += 2;
        continue;
      }
      if (a === undefined) continue; // "=" at the very end: a soft break without CRLF
      const h = hex(a);
      const l = hex(data[i + 2] ?? -1);
      if (h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        i += 2;
        continue;
      }
      this.damaged = true;
      out[o++] = c;
    }
    return out.subarray(0, o);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length);
  r.set(a, 0);
  r.set(b, a.length);
  return r;
}

/** The decoder for a Content-Transfer-Encoding value (case-insensitive, trimmed). */
export function cteDecoder(encoding: string): CteDecoder {
  switch (encoding.trim().toLowerCase()) {
    case 'base64':
      return new Base64();
    case 'quoted-printable':
      return new QuotedPrintable();
    default:
      // 7bit / 8bit / binary, and unknown values: RFC 2045 §6.4 says an unrecognized
      // encoding must be treated as application/octet-stream; we keep the octets and the
      // declared type instead, with a warning, because the corpus is full of "7-bit",
      // "8bits", "plain" that mean identity.
      return new Identity();
  }
}

/** True for the encodings RFC 2045 defines (others get a warning). */
export function isKnownCte(encoding: string): boolean {
  return ['7bit', '8bit', 'binary', 'base64', 'quoted-printable'].includes(
    encoding.trim().toLowerCase(),
  );
}
