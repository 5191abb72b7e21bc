/**
 * An append-only journal with group commit: many entries, one `fdatasync`. What a message
 * store needs to say "accepted means stored" at the cost of one flush for every message
 * that arrived while the previous flush ran, instead of a file, its fsync, a rename and a
 * directory fsync per message (docs/performance.md).
 *
 * A journal is a directory of segments `<seq>.log` (seq: 16 decimal digits, so names sort
 * in order). A segment is a sequence of entries:
 *
 *     entry  = magic meta-len body-len crc meta body
 *     magic  = %x4E %x4A %x31 %x0A          ; "NJ1" LF
 *     meta-len, body-len, crc = 4 octets each, unsigned, big-endian
 *     crc    = CRC-32 (ISO-HDLC, zlib's) over meta then body
 *
 * An entry counts once its `fdatasync` returned. A crash can leave a torn last entry (it
 * was never acknowledged, so it is dropped); damage anywhere else is reported, never
 * guessed around.
 *
 * This module has the format (pure) and a synchronous writer: the writer runs in a worker
 * thread (src/server/mailbox-writer.worker.ts), where blocking calls cost the event loop
 * of the sessions nothing, and the startup recovery is synchronous by design.
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writevSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { NmtpError } from '../core/errors/index.ts';

const MAGIC = Uint8Array.of(0x4e, 0x4a, 0x31, 0x0a);
export const ENTRY_HEAD = 16;
/** Limits checked before anything is allocated for an entry read back. */
export const MAX_META = 1 << 20;
export const MAX_BODY = 64 * 1024 * 1024;

export interface Entry {
  readonly meta: Uint8Array;
  readonly body: Uint8Array;
}

/** The entry's octets: a head to write before `meta` and `body` (no copy of either). */
export function entryHead(meta: Uint8Array, body: Uint8Array): Uint8Array {
  if (meta.length > MAX_META || body.length > MAX_BODY) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'journal entry over the limits');
  }
  const head = new Uint8Array(ENTRY_HEAD);
  const v = new DataView(head.buffer);
  head.set(MAGIC, 0);
  v.setUint32(4, meta.length);
  v.setUint32(8, body.length);
  v.setUint32(12, entryCrc(meta, body));
  return head;
}

/**
 * CRC-32 of meta then body. Node 20's zlib.crc32 returns 0 for an empty input whose
 * buffer is empty, whatever the running value: an empty part is skipped, not fed.
 */
function entryCrc(meta: Uint8Array, body: Uint8Array): number {
  const m = meta.length === 0 ? 0 : crc32(meta);
  return body.length === 0 ? m : crc32(body, m);
}

export interface Scan {
  readonly entries: Entry[];
  /**
   * `clean`: every octet is in a whole entry. `torn`: the segment ends inside an entry (a
   * crash during the write: that entry was never acknowledged). `damaged`: an entry
   * before the end does not check out (bad magic, lengths over the limits, CRC).
   */
  readonly state: 'clean' | 'torn' | 'damaged';
  /** Octets of whole, checked entries from the start. */
  readonly end: number;
}

/** Reads back a segment's entries; never throws on content. */
export function scanSegment(bytes: Uint8Array): Scan {
  const entries: Entry[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    // A power cut during a write can leave the file longer than what reached the disk,
    // the rest reading as zeros: a torn write (never acknowledged), not damage.
    if (bytes[at] === 0 && bytes.subarray(at).every((b) => b === 0)) {
      return { entries, state: 'torn', end: at };
    }
    if (bytes.length - at < ENTRY_HEAD)
      return { entries, state: tornOrDamaged(bytes, at), end: at };
    if (!MAGIC.every((b, i) => bytes[at + i] === b)) return { entries, state: 'damaged', end: at };
    const metaLen = v.getUint32(at + 4);
    const bodyLen = v.getUint32(at + 8);
    if (metaLen > MAX_META || bodyLen > MAX_BODY) return { entries, state: 'damaged', end: at };
    const start = at + ENTRY_HEAD;
    const stop = start + metaLen + bodyLen;
    if (stop > bytes.length) return { entries, state: 'torn', end: at };
    const meta = bytes.subarray(start, start + metaLen);
    const body = bytes.subarray(start + metaLen, stop);
    if (entryCrc(meta, body) !== v.getUint32(at + 12)) {
      // A bad CRC on the last entry is a torn write (its octets only partly reached the
      // disk); anywhere else it is damage.
      return { entries, state: stop === bytes.length ? 'torn' : 'damaged', end: at };
    }
    entries.push({ meta, body });
    at = stop;
  }
  return { entries, state: 'clean', end: at };
}

/** A short tail is torn if it is a prefix of a head (it could have become one). */
function tornOrDamaged(bytes: Uint8Array, at: number): 'torn' | 'damaged' {
  const n = Math.min(MAGIC.length, bytes.length - at);
  for (let i = 0; i < n; i++) if (bytes[at + i] !== MAGIC[i]) return 'damaged';
  return 'torn';
}

const SEGMENT_RE = /^(\d{16})\.log$/;
/** Segments and the damaged ones kept aside: a new writer numbers after both. */
const ANY_SEGMENT_RE = /^(\d{16})\.log(?:\.damaged)?$/;
export const segmentName = (seq: number): string => `${String(seq).padStart(16, '0')}.log`;

/** The segments in `dir`, oldest first. */
export function listSegments(dir: string): { seq: number; path: string }[] {
  return readdirSync(dir)
    .map((name) => SEGMENT_RE.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ seq: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.seq - b.seq);
}

/** The number a new segment in `dir` takes: after every segment, damaged ones included. */
export function nextSegmentSeq(dir: string): number {
  let last = 0;
  for (const name of readdirSync(dir)) {
    const m = ANY_SEGMENT_RE.exec(name);
    if (m !== null) last = Math.max(last, Number(m[1]));
  }
  return last + 1;
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replays what a crash left: every segment's entries are handed to `apply` (which must be
 * idempotent: an entry may have been applied before the crash), `durable()` makes what
 * `apply` wrote durable, then the segments are removed. A damaged segment's whole
 * entries are applied too and the segment is kept aside as `<name>.damaged`, and the
 * damage is reported through `onDamage`: nothing acknowledged is thrown away. An entry
 * `apply` refuses as damaged (NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED) is reported the same way
 * and keeps its segment aside too; any other failure of `apply` is thrown.
 */
export async function recoverJournal(
  dir: string,
  apply: (e: Entry) => Promise<void>,
  durable: () => Promise<void>,
  onDamage: (e: NmtpError) => void,
): Promise<number> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const segments = listSegments(dir);
  let n = 0;
  const damaged: string[] = [];
  for (const s of segments) {
    const scan = scanSegment(readFileSync(s.path));
    let refused = false;
    for (const e of scan.entries) {
      try {
        await apply(e);
        n++;
      } catch (err) {
        // An entry that does not make sense is kept aside; any other failure (a full
        // disk) stops the recovery, and with it the start: nothing is set aside unread.
        if (!(err instanceof NmtpError) || err.code !== 'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED') {
          throw err;
        }
        refused = true;
        onDamage(err);
      }
    }
    if (scan.state === 'damaged' || refused) damaged.push(s.path);
  }
  if (segments.length === 0) return 0;
  await durable();
  retireSegments(dir, segments, new Set(damaged), onDamage);
  return n;
}

/**
 * After a replay whose files are durable: each segment goes, oldest first, each removal made
 * durable before the next (a crash here leaves the newest segments, whose replay gives the
 * same files again); a damaged one is kept aside as `<name>.damaged` and reported, for a
 * person to look at. The mailbox's journal and the queue's (src/queue/journal.ts) share it.
 */
export function retireSegments(
  dir: string,
  segments: readonly { readonly path: string }[],
  damaged: ReadonlySet<string>,
  onDamage: (e: NmtpError) => void,
): void {
  for (const s of segments) {
    if (damaged.has(s.path)) {
      renameSync(s.path, `${s.path}.damaged`);
      onDamage(
        new NmtpError(
          'NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED',
          `${s.path}: kept as ${s.path}.damaged; its entries up to the damage were recovered`,
        ),
      );
    } else {
      unlinkSync(s.path);
    }
    fsyncPath(dir);
  }
}

/**
 * The writing end, synchronous (for a worker thread): `append` queues octets, `commit`
 * writes them and `fdatasync`s the segment once. `rotate` starts a new segment (durably:
 * its directory entry is fsync'd) and returns the previous one, which no longer grows.
 */
export class JournalWriter {
  private fd = -1;
  private seq: number;
  private size = 0;
  private pending: Uint8Array[] = [];
  /** When the current segment got its first entry (ms), for age-based rotation. */
  startedAt = 0;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let last = 0;
    for (const name of readdirSync(dir)) {
      const m = ANY_SEGMENT_RE.exec(name);
      if (m !== null) last = Math.max(last, Number(m[1]));
    }
    this.seq = last + 1;
  }

  get bytes(): number {
    return this.size;
  }

  get current(): number {
    return this.seq;
  }

  append(meta: Uint8Array, body: Uint8Array): void {
    this.pending.push(entryHead(meta, body), meta, body);
  }

  /** Writes what was appended and makes it durable; throws on any failure. */
  commit(now: number): void {
    if (this.pending.length === 0) return;
    if (this.fd < 0) this.openSegment(now);
    const bufs = this.pending;
    this.pending = [];
    let total = 0;
    for (const b of bufs) total += b.length;
    // writev may write less than asked (a signal, a full disk): go on from where it stopped.
    let done = 0;
    while (done < total) {
      let skip = done;
      const rest: Uint8Array[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      done += writevSync(this.fd, rest);
    }
    this.size += total;
    fdatasyncSync(this.fd);
  }

  /** Seals the current segment (if it has entries); returns its path. */
  rotate(): string | undefined {
    if (this.fd < 0) return undefined;
    closeSync(this.fd);
    this.fd = -1;
    const sealed = join(this.dir, segmentName(this.seq));
    this.seq++;
    this.size = 0;
    return sealed;
  }

  /** Drops what was appended and not committed (after a failed commit). */
  discardPending(): void {
    this.pending = [];
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private openSegment(now: number): void {
    this.fd = openSync(join(this.dir, segmentName(this.seq)), 'wx', 0o600);
    // The new name must survive a crash before any entry in it counts.
    fsyncPath(this.dir);
    this.size = 0;
    this.startedAt = now;
  }
}
