/**
 * Dot-stuffing of the DATA octets at native speed, with exactly nodemailer's DataStream
 * semantics (nodemailer 10.6, dist/esm/smtp-connection/data-stream.js).
 *
 * DataStream's `_transform` looks at every octet in JavaScript: a bare CR becomes CRLF (and
 * a dot after it is stuffed), a bare LF becomes CRLF, and a dot at the start of a line is
 * doubled (RFC 5321 §4.5.2: "Before sending a line of mail text, the SMTP client checks the
 * first character of the line. If it is a period, one additional period is inserted at the
 * beginning of the line."). The messages smtp-out sends have passed the outgoing guard (no
 * bare CR, bare LF or NUL), so only the last rule ever applies: a chunk whose line ends are
 * all CRLF (checked with the gateway's memchr-speed scan, src/gateway/line-ends.ts) gets a
 * "." after each "\n." LF and, when the chunk opens a line, before its first octet. Any
 * other chunk goes to the instance's own `_transform`, nodemailer's code. Output octets,
 * chunk for chunk, and the counters (inByteCount, outByteCount, lastByte) are DataStream's;
 * test/adapters/smtp-sender/data-stuff.test.ts checks that against DataStream itself.
 *
 * The hook (`DotStuffConnection`) is an SMTPConnection whose `_createSendStream` swaps the
 * `_transform` of the DataStream it returns. In nodemailer 10.6 `_createSendStream` only
 * builds the stream, pipes it to the socket and queues the reply handler; `send` writes the
 * message into it after it returns, so the swap precedes every octet. When the internals are
 * not there any more, the message fails with NMTP_ERR_INTERNAL (temporary, so the queue
 * keeps it) and nothing of it is written: never sent on a path nobody checked.
 */
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { NmtpError } from '../../src/core/errors/index.ts';
import { scanLineEnds } from '../../src/gateway/line-ends.ts';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
/** Shared: only ever copied by Buffer.concat (as DataStream's own inserts). */
const DOT_BUF = Buffer.from('.');
const LF_DOT = Buffer.from('\n.');

/**
 * The stuffed form of `chunk` (non-empty) when its line ends, with the octet before it
 * (`lastByte`: false at the start of the data), are all CRLF: `chunk` itself when nothing
 * is inserted (as DataStream pushes it), else a new buffer. Undefined when some line end is
 * bare (or there is a NUL): then only DataStream's per-octet rules give the right octets.
 */
export function stuffCrlfChunk(chunk: Buffer, lastByte: number | false): Buffer | undefined {
  // A CR ending the previous chunk must be followed by this chunk's LF (else it was bare).
  if (!scanLineEnds({ offset: 0, pendingCr: lastByte === CR }, chunk).ok) return undefined;
  let parts: Buffer[] | undefined;
  let from = 0;
  // DataStream: a dot whose previous octet is LF, or that opens the data, is doubled.
  if (chunk[0] === DOT && (lastByte === LF || lastByte === false)) parts = [DOT_BUF];
  for (let i = chunk.indexOf(LF_DOT); i !== -1; i = chunk.indexOf(LF_DOT, i + 2)) {
    (parts ??= []).push(chunk.subarray(from, i + 1), DOT_BUF);
    from = i + 1;
  }
  if (parts === undefined) return chunk;
  parts.push(chunk.subarray(from));
  return Buffer.concat(parts);
}

/** The parts of nodemailer's DataStream the fast path reads and keeps (10.6 internals). */
interface DataStreamInternals {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  push(chunk: Buffer): boolean;
  _transform(chunk: unknown, encoding: BufferEncoding | 'buffer', done: TransformCallback): void;
}

function isFreshDataStream(s: unknown): s is DataStreamInternals {
  if (!(s instanceof Transform)) return false;
  const d = s as Transform & Partial<DataStreamInternals>;
  return (
    typeof d._transform === 'function' &&
    d._transform !== Transform.prototype._transform &&
    d.inByteCount === 0 &&
    d.outByteCount === 0 &&
    d.lastByte === false
  );
}

let fastChunks = 0;

/** Chunks the native path stuffed so far in this process (tests: the hook is live). */
export function fastStuffedChunks(): number {
  return fastChunks;
}

/**
 * Puts the native path in front of a DataStream that nothing was written to yet; false
 * (and the stream untouched) when `s` is not one.
 */
export function hookDataStream(s: unknown): boolean {
  if (!isFreshDataStream(s)) return false;
  const slow = s._transform;
  s._transform = function (
    this: DataStreamInternals,
    chunk: unknown,
    encoding: BufferEncoding | 'buffer',
    done: TransformCallback,
  ): void {
    // Strings and empty chunks, as chunks with a bare line end: nodemailer's own code.
    if (!Buffer.isBuffer(chunk) || chunk.length === 0)
      return slow.call(this, chunk, encoding, done);
    const out = stuffCrlfChunk(chunk, this.lastByte);
    if (out === undefined) return slow.call(this, chunk, encoding, done);
    fastChunks++;
    // DataStream's order: the counters, the push, then lastByte.
    this.inByteCount += chunk.length;
    this.outByteCount += out.length;
    this.push(out);
    this.lastByte = chunk[chunk.length - 1]!;
    done();
  };
  return true;
}

type SendStreamCallback = (err: Error | null, response?: string) => void;

/** SMTPConnection's DATA-stream factory (10.6 internals, see the module comment). */
interface SendStreamInternals {
  _createSendStream?: (this: SMTPConnection, callback: SendStreamCallback) => unknown;
}

function baseCreateSendStream(): SendStreamInternals['_createSendStream'] {
  const f = (SMTPConnection.prototype as unknown as SendStreamInternals)._createSendStream;
  return typeof f === 'function' ? f : undefined;
}

function internalsChanged(what: string): NmtpError {
  return new NmtpError(
    'NMTP_ERR_INTERNAL',
    `nodemailer internals changed (${what}): the message is not sent without the dot-stuffing hook`,
  );
}

/** nodemailer's SMTPConnection with the native dot-stuffing path on every message. */
export class DotStuffConnection extends SMTPConnection {
  override send(
    envelope: SMTPConnection.Envelope,
    message: string | Buffer | Readable,
    callback: (err: SMTPConnection.SMTPError | null, info: SMTPConnection.SentMessageInfo) => void,
  ): void {
    // Checked before any command: a renamed factory would never reach the override below.
    if (baseCreateSendStream() === undefined) {
      if (typeof message === 'object' && 'destroy' in message) message.destroy();
      return callback(internalsChanged('no SMTPConnection._createSendStream'), undefined as never);
    }
    super.send(envelope, message, callback);
  }

  /** Called by SMTPConnection.send once DATA is accepted; it writes the message after. */
  _createSendStream(callback: SendStreamCallback): unknown {
    const stream = baseCreateSendStream()!.call(this, callback);
    if (hookDataStream(stream)) return stream;
    // Nothing has reached the socket yet: detach, close the connection (it is mid-DATA),
    // fail the message, and give send() a sink for the octets it is about to write.
    (stream as { unpipe?: () => void } | null)?.unpipe?.();
    this.close();
    callback(internalsChanged('the DATA stream is not a fresh DataStream'));
    return new Writable({ write: (_c, _e, next) => next() });
  }
}
