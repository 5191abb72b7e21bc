/**
 * smtp-server's DATA reader with a fast path. Its `_feedDataStream` (smtp-server 3.21)
 * finds the end of the data (CRLF "." CRLF) and the escape dots by testing every octet in
 * JavaScript: the largest single function of the gateway's event loop at 100 KB (5.7 %,
 * perf). One search for LF "." (memchr speed) finds the first line that starts with a dot;
 * every octet before it is passed on exactly as smtp-server passes such octets (a chunk
 * with no such line: joined to the last 4 octets kept from the chunk before, all but its
 * own last 4 octets written to the data stream, those kept), and smtp-server's own code
 * reads from that line on — the terminator, an escape dot — as it does a first chunk that
 * starts with a dot. So what decides where the data ends (the SMTP smuggling boundary) is
 * still smtp-server's, and the octets it scans one by one are a few per message instead of
 * all of them. test/adapters/smtp-listener/data-feed.test.ts feeds random data, split
 * anywhere, to both and finds the same stream.
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
  /** Counts `out` and writes it to the data stream as smtp-server does; then `next`. */
  const emit = (self: SMTPStream, out: Buffer, next: () => void): void => {
    self._countDataBytes(out.length);
    const stream = self._dataStream;
    // As smtp-server: a stream the handler destroys never drains, it only closes.
    const wait = stream === null || !stream.writable ? undefined : writeOrWait(stream, out);
    if (wait === undefined) next();
    else void wait.then(next);
  };
  p._feedDataStream = function (this: SMTPStream, chunk: Buffer, done: Done): void {
    const last = this._lastBytes;
    const data = last && last.length > 0 ? Buffer.concat([last, chunk]) : chunk;
    const len = data.length;
    // At the start of the data only a first octet "." is special to smtp-server (the
    // terminator ".\r\n" or an escape dot "..", both tested on the first octets); a
    // first chunk that starts otherwise is scanned as any other. Counting the octets
    // written (_countDataBytes) clears _atDataStart, as in smtp-server; a chunk of at most
    // 4 octets is only kept and leaves it set, as there.
    if (this._atDataStart && data[0] === DOT) {
      this._lastBytes = false;
      feed.call(this, data, done);
      return;
    }
    // smtp-server tests each i in [2, len - 2) for data[i - 1] = LF and data[i] = ".": the
    // LF at 1 ≤ i - 1 < len - 3.
    const lfDot = data.indexOf(LF_DOT, 1);
    if (lfDot !== -1 && lfDot < len - 3) {
      // The first line starting with a dot (the terminator, or an escape dot): everything
      // before the octet ahead of its LF holds none and is passed on here; smtp-server's
      // own code reads the rest, which its scan then meets at the same i = 2 it would have
      // reached in the whole chunk (the octets it compares start at that octet).
      this._lastBytes = false;
      const cut = lfDot - 1;
      if (cut === 0) feed.call(this, data, done);
      else emit(this, data.subarray(0, cut), () => feed.call(this, data.subarray(cut), done));
      return;
    }
    this._lastBytes = len < KEEP ? data : data.subarray(len - KEEP);
    if (len <= KEEP) {
      done();
      return;
    }
    emit(this, data.subarray(0, len - KEEP), done);
  };
}
