/**
 * smtp-server's DATA reader with a fast path. Its `_feedDataStream` (smtp-server 3.21)
 * finds the end of the data (CRLF "." CRLF) and the escape dots by testing every octet in
 * JavaScript: the largest single function of the gateway's event loop at 100 KB (5.7 %,
 * perf). Most chunks of a message hold no dot at the start of a line (the first chunk of
 * the data, often 64 KiB of it, included when its first octet is not a dot); for those one search for LF "." (memchr speed) says so, and the chunk is
 * passed on exactly as smtp-server passes such a chunk: joined to the last 4 octets kept
 * from the chunk before, all but its own last 4 octets written to the data stream, those
 * kept. Everything else — a first chunk of the data that starts with a dot, any chunk with
 * a line that starts with a dot — goes to smtp-server's own code, unchanged, so what decides where the data
 * ends (the SMTP smuggling boundary) is still smtp-server's. test/adapters/smtp-listener/
 * data-feed.test.ts feeds random data, split anywhere, to both and finds the same stream.
 */
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { writeOrWait } from '../../src/net/write.ts';

const LF_DOT = Buffer.from('\n.');
const DOT = 0x2e;
/** Octets smtp-server keeps back from each chunk (a terminator may straddle chunks). */
const KEEP = 4;

type Done = (err?: Error | null) => void;

export function fastDataFeed(p: SMTPStream): void {
  const feed = p._feedDataStream;
  p._feedDataStream = function (this: SMTPStream, chunk: Buffer, done: Done): void {
    const last = this._lastBytes;
    const data = last && last.length > 0 ? Buffer.concat([last, chunk]) : chunk;
    const len = data.length;
    // smtp-server tests each i in [2, len - 2) for data[i - 1] = LF and data[i] = ".": the
    // LF at 1 ≤ i - 1 < len - 3.
    const lfDot = data.indexOf(LF_DOT, 1);
    // At the start of the data only a first octet "." is special to smtp-server (the
    // terminator ".\r\n" or an escape dot "..", both tested on the first octets); a
    // first chunk that starts otherwise is scanned as any other. Counting the octets
    // written below (_countDataBytes) clears _atDataStart, as in smtp-server; a chunk of
    // at most 4 octets is only kept and leaves it set, as there.
    if ((this._atDataStart && data[0] === DOT) || (lfDot !== -1 && lfDot < len - 3)) {
      this._lastBytes = false;
      feed.call(this, data, done);
      return;
    }
    this._lastBytes = len < KEEP ? data : data.subarray(len - KEEP);
    if (len <= KEEP) {
      done();
      return;
    }
    const out = data.subarray(0, len - KEEP);
    this._countDataBytes(out.length);
    const stream = this._dataStream;
    // As smtp-server: a stream the handler destroys never drains, it only closes.
    const wait = stream === null || !stream.writable ? undefined : writeOrWait(stream, out);
    if (wait === undefined) done();
    else void wait.then(() => done());
  };
}
