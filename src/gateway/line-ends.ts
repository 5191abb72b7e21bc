/**
 * The strict line-end check over SMTP octets: a bare LF (an LF not preceded by CR), a bare
 * CR (a CR not followed by LF) and NUL are faults. SMTP smuggling (CVE-2023-51764 class)
 * lives in the gap between MTAs that take "\n" or "\r" as a line end and MTAs that do not:
 * RFC 5321 §2.3.8 "lines consist of zero or more data characters terminated by the
 * sequence ASCII character "CR" (hex value 0D) followed immediately by ASCII character "LF"
 * (hex value 0A)", and §4.1.4 "SMTP client implementations MUST NOT transmit these
 * characters except when they are intended as line terminators". NUL is refused with them:
 * it is not text in 7BIT or 8BITMIME (RFC 6152 §2) and truncates C strings downstream.
 *
 * Incremental: input may be split anywhere. A chunk ending in CR is not an error but a
 * state (`pendingCr`): only the next octet, or the end of input, decides. Pure: no I/O.
 * Used by the listener adapter (adapters/smtp-listener) on command lines and DATA, and by
 * smtp-in (src/gateway/smtp-in.ts) on the message it is given.
 */

export type LineEndFault = 'bare LF' | 'bare CR' | 'NUL';

export interface LineEndState {
  /** Octets consumed so far (the offset of the next octet). */
  readonly offset: number;
  /** The last octet consumed was a CR whose LF has not been seen yet: need more input. */
  readonly pendingCr: boolean;
}

export type LineEndResult =
  | { readonly ok: true; readonly state: LineEndState }
  /** `offset`: of the offending octet (for a bare CR: of the CR itself). */
  | { readonly ok: false; readonly fault: LineEndFault; readonly offset: number };

export const LINE_ENDS_START: LineEndState = { offset: 0, pendingCr: false };

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/** Scans one more chunk; the first fault wins (lowest offset). */
export function scanLineEnds(state: LineEndState, chunk: Uint8Array): LineEndResult {
  const n = chunk.length;
  if (n === 0) return { ok: true, state };
  const at = (i: number): number => state.offset + i;
  if (state.pendingCr && chunk[0] !== LF) {
    return { ok: false, fault: 'bare CR', offset: state.offset - 1 };
  }
  // indexOf is memchr-fast: the common case (CRLF text) touches each CR and LF once.
  let fault: { fault: LineEndFault; offset: number } | undefined;
  const nul = chunk.indexOf(NUL);
  if (nul >= 0) fault = { fault: 'NUL', offset: at(nul) };
  const limit = nul >= 0 ? nul : n;
  for (let i = chunk.indexOf(LF, state.pendingCr ? 1 : 0); i >= 0 && i < limit;) {
    if (chunk[i - 1] !== CR) {
      fault = { fault: 'bare LF', offset: at(i) };
      break;
    }
    i = chunk.indexOf(LF, i + 1);
  }
  const crLimit = fault === undefined ? n : fault.offset - state.offset;
  for (let i = chunk.indexOf(CR); i >= 0 && i < crLimit;) {
    // A CR in the last position waits for the next chunk.
    if (i + 1 < n && chunk[i + 1] !== LF) {
      fault = { fault: 'bare CR', offset: at(i) };
      break;
    }
    i = chunk.indexOf(CR, i + 1);
  }
  if (fault !== undefined) return { ok: false, ...fault };
  return { ok: true, state: { offset: state.offset + n, pendingCr: chunk[n - 1] === CR } };
}

/**
 * Line lengths over CRLF text, at memchr speed (one `indexOf` per line): where the first
 * line longer than `max` octets (its CRLF excluded) has its octet number `max` + 1, or -1,
 * and how long the chunk's last, unfinished line is so far. `carried` is that length from
 * the previous chunk (its CR, if it ended in one, not counted); `limit` an offset where the
 * caller found a line-end fault (scanLineEnds): no line end at or past it is trusted. A CR
 * that ends the chunk is not counted (its LF may start the next one).
 */
export function longLine(
  chunk: Uint8Array,
  max: number,
  carried = 0,
  limit = chunk.length,
): { readonly at: number; readonly line: number } {
  const n = chunk.length;
  let start = -carried;
  for (let lf = chunk.indexOf(LF); lf !== -1 && lf < limit; lf = chunk.indexOf(LF, start)) {
    // At 0 the CR (if any) ended the previous chunk and was not counted there.
    const len = lf - start - (lf > 0 && chunk[lf - 1] === CR ? 1 : 0);
    if (len > max) return { at: start + max, line: len };
    start = lf + 1;
  }
  const line = n - start - (n > 0 && chunk[n - 1] === CR ? 1 : 0);
  return { at: line > max ? start + max : -1, line };
}

/** `scanLineEnds` and `longLine` over one chunk, from one pass where it is clean. */
export interface LineScan {
  readonly ends: LineEndResult;
  /** `longLine(chunk, max, carried, limit)`, `limit` the line-end fault's offset if any. */
  readonly long: { readonly at: number; readonly line: number };
}

/**
 * What `scanLineEnds(state, chunk)` and then `longLine(chunk, max, carried, limit)` give,
 * `limit` being the offset of the line-end fault in the chunk (or its length): the outgoing
 * guard's and the converter's question. A clean chunk (the common case) is read in one
 * pass of two `indexOf` per line instead of three; a chunk with a fault is handed to the
 * two functions themselves, so every verdict and offset stays theirs
 * (test/gateway/line-ends.test.ts checks the two ways agree on any input).
 */
export function scanLines(
  state: LineEndState,
  chunk: Uint8Array,
  max: number,
  carried = 0,
): LineScan {
  const clean = cleanLines(state, chunk, max, carried);
  if (clean !== undefined) return clean;
  const ends = scanLineEnds(state, chunk);
  const limit = ends.ok ? chunk.length : Math.max(0, ends.offset - state.offset);
  return { ends, long: longLine(chunk, max, carried, limit) };
}

/** `scanLines` of a chunk with no line-end fault, else undefined. */
function cleanLines(
  state: LineEndState,
  chunk: Uint8Array,
  max: number,
  carried: number,
): LineScan | undefined {
  const n = chunk.length;
  if (n === 0 || chunk.indexOf(NUL) !== -1) return undefined;
  if (state.pendingCr && chunk[0] !== LF) return undefined;
  let start = -carried;
  // As longLine: the first line longer than `max`, with its own length.
  let long: { at: number; line: number } | undefined;
  let cr = chunk.indexOf(CR);
  for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
    if (lf === 0) {
      // The LF of a CR that ended the previous chunk (not counted there), else bare.
      if (!state.pendingCr) return undefined;
    } else {
      // Every CR before this LF must be the one just before it.
      if (chunk[lf - 1] !== CR || cr !== lf - 1) return undefined;
      cr = chunk.indexOf(CR, lf + 1);
    }
    const len = lf - start - (lf > 0 ? 1 : 0);
    if (long === undefined && len > max) long = { at: start + max, line: len };
    start = lf + 1;
  }
  // A CR left after the last LF may only be the chunk's last octet (its LF comes next).
  if (cr !== -1 && cr !== n - 1) return undefined;
  const line = n - start - (chunk[n - 1] === CR ? 1 : 0);
  return {
    ends: { ok: true, state: { offset: state.offset + n, pendingCr: chunk[n - 1] === CR } },
    long: long ?? { at: line > max ? start + max : -1, line },
  };
}

/** The end of input: a CR still waiting for its LF is a bare CR. */
export function finishLineEnds(state: LineEndState): LineEndResult {
  return state.pendingCr
    ? { ok: false, fault: 'bare CR', offset: state.offset - 1 }
    : { ok: true, state };
}

/** A whole buffer at once (tests, small inputs). */
export function findLineEndFault(
  bytes: Uint8Array,
): { readonly fault: LineEndFault; readonly offset: number } | undefined {
  const r = scanLineEnds(LINE_ENDS_START, bytes);
  const f = r.ok ? finishLineEnds(r.state) : r;
  return f.ok ? undefined : { fault: f.fault, offset: f.offset };
}

/**
 * The same check as an object for stream loops: `push` each chunk, then `end`. Both return
 * the first fault (and keep returning it: a fault is final), or `undefined` while clean.
 */
export class LineEndScanner {
  private state: LineEndState = LINE_ENDS_START;
  private found: { readonly fault: LineEndFault; readonly offset: number } | undefined;

  push(chunk: Uint8Array): LineEndFault | undefined {
    if (this.found === undefined) {
      const r = scanLineEnds(this.state, chunk);
      if (r.ok) this.state = r.state;
      else this.found = { fault: r.fault, offset: r.offset };
    }
    return this.found?.fault;
  }

  end(): LineEndFault | undefined {
    if (this.found === undefined) {
      const r = finishLineEnds(this.state);
      if (!r.ok) this.found = { fault: r.fault, offset: r.offset };
    }
    return this.found?.fault;
  }

  /** Offset of the first fault, once found. */
  get faultOffset(): number | undefined {
    return this.found?.offset;
  }

  /** True while the last octet is a CR waiting for its LF. */
  get pendingCr(): boolean {
    return this.state.pendingCr;
  }
}
