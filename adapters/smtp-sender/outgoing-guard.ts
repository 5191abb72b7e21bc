/**
 * The last check before octets leave toward the legacy side (docs/protocol.md §51.12):
 * nothing the gateway emits may be read by an SMTP server as the end of DATA followed by a
 * second message (SMTP smuggling, CVE-2023-51764/51765/51766 class). A stock Postfix exempts
 * its mynetworks — the gateway among them — from `smtpd_forbid_bare_newline`, so the gateway
 * is the last line of defence.
 *
 * Refused (NMTP_ERR_GW_UNSAFE_OUTPUT, permanent for the message): a bare CR, a bare LF, a
 * NUL, or a line longer than 998 octets. RFC 5321 §2.3.8: "In addition, the appearance of
 * "bare" "CR" or "LF" characters in text (i.e., either without the other) has a long
 * history of causing problems in mail implementations and applications that use the mail
 * system as a tool. SMTP client implementations MUST NOT transmit these characters except
 * when they are intended as line terminators and then MUST, in that case, transmit them
 * only as a <CRLF> sequence." RFC 5322 §2.1.1: "Each line of characters MUST be no more than
 * 998 characters ... excluding the CRLF." Every converter output meets both
 * (adapters/legacy: fold.ts MAX_LINE, transfer-encoding.ts): a refusal here means a bug
 * upstream, and the message is not sent rather than sent damaged.
 *
 * A line starting with "." is not refused: dot-stuffing (RFC 5321 §4.5.2) is the SMTP
 * client's job, and nodemailer does it (test/adapters/smtp-sender/outgoing-guard.test.ts
 * proves it against a real smtp-server).
 *
 * Streaming: the check keeps its state across chunks, so a CR ending one chunk and the LF
 * starting the next are one CRLF.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { NmtpError } from '../../src/core/errors/index.ts';
import { scanLines, type LineEndFault } from '../../src/gateway/line-ends.ts';

/** RFC 5322 §2.1.1, octets excluding CRLF. */
export const MAX_LINE_OCTETS = 998;

export type UnsafeOutputKind = 'bare-cr' | 'bare-lf' | 'nul' | 'long-line';

function unsafe(kind: UnsafeOutputKind, offset: number): NmtpError {
  const what = {
    'bare-cr': 'a bare CR',
    'bare-lf': 'a bare LF',
    nul: 'a NUL octet',
    'long-line': `a line longer than ${MAX_LINE_OCTETS} octets`,
  }[kind];
  return new NmtpError('NMTP_ERR_GW_UNSAFE_OUTPUT', `outgoing message holds ${what}`, {
    offset,
    kind,
  });
}

const KIND: Record<LineEndFault, UnsafeOutputKind> = {
  'bare CR': 'bare-cr',
  'bare LF': 'bare-lf',
  NUL: 'nul',
};

/** Incremental checker: `update` each chunk in order, then `end`. Each throws on the first fault. */
export class OutgoingCheck {
  /** Octets seen so far. */
  private seen = 0;
  /** Octets of the current line (without its line end). */
  private line = 0;
  /** The previous octet was a CR (its LF may start the next chunk). */
  private cr = false;

  /**
   * Line ends and NUL with smtp-in's own check (src/gateway/line-ends.ts, memchr speed), line
   * lengths up to the first such fault; the fault with the lower offset is thrown (at the
   * same offset the line-end fault: that octet is not line content).
   */
  update(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    const { ends, long } = scanLines(
      { offset: this.seen, pendingCr: this.cr },
      chunk,
      MAX_LINE_OCTETS,
      this.line,
    );
    if (long.at >= 0 && (ends.ok || this.seen + long.at < ends.offset)) {
      throw unsafe('long-line', this.seen + long.at);
    }
    if (!ends.ok) throw unsafe(KIND[ends.fault], ends.offset);
    this.seen += n;
    this.line = long.line;
    this.cr = chunk[n - 1] === 13;
  }

  /** The stream ended: a CR left waiting for its LF is bare. */
  end(): void {
    if (this.cr) throw unsafe('bare-cr', this.seen - 1);
  }

  /** Octets checked so far. */
  get octets(): number {
    return this.seen;
  }
}

/**
 * Checks a whole message, given as one buffer or as its chunks in order (e.g.
 * framedToLegacyChunks). Throws NMTP_ERR_GW_UNSAFE_OUTPUT with `details.offset` and
 * `details.kind`.
 */
export function checkOutgoing(input: Uint8Array | Iterable<Uint8Array>): void {
  const check = new OutgoingCheck();
  if (input instanceof Uint8Array) check.update(input);
  else for (const chunk of input) check.update(chunk);
  check.end();
}

/** The same over an async source (a file read stream): resolves when the whole stream is clean. */
export async function checkOutgoingStream(
  input: AsyncIterable<Uint8Array | string>,
): Promise<void> {
  const check = new OutgoingCheck();
  for await (const chunk of input) {
    check.update(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  }
  check.end();
}

/**
 * A pass-through Transform that checks what flows through it and fails the stream on the
 * first fault. Belt and braces only: a stream that fails half-way may leave an SMTP
 * transaction half-sent, so the sender checks a stored message whole (checkOutgoing or
 * checkOutgoingStream) before MAIL FROM, and uses this where the octets are produced
 * while sending.
 */
export function outgoingGuard(): Transform {
  const check = new OutgoingCheck();
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      try {
        check.update(chunk);
      } catch (err) {
        done(err as Error);
        return;
      }
      done(null, chunk);
    },
    flush(done: TransformCallback): void {
      try {
        check.end();
      } catch (err) {
        done(err as Error);
        return;
      }
      done();
    },
  });
}
