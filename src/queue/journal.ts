/**
 * The embedded queue's journal: every change of the queue directory (a new entry's message
 * and first state, each later state, a removal) is appended here and made durable by one
 * `fdatasync` shared with every change that arrived meanwhile (group commit), then
 * written to its usual file (msg/<id>.nmtp, state/<id>.json) without an fsync of its own.
 * The files stay what `nmtp-gateway queue` and people read; the journal is what makes them
 * survive a crash, as the mailbox's does for its messages (src/store/journal.ts, whose
 * segment format this uses):
 *
 *     <dir>/journal/<seq>.log   entries: meta = JSON {"op": …, "id": …}, body =
 *                               "message": the message octets (small messages only),
 *                               "file":    nothing: the message was written to its file
 *                                          durably on its own (a large one), so no earlier
 *                                          "message" of the id is written again,
 *                               "state":   the state file's octets,
 *                               "remove":  nothing (the state goes; its message, now an
 *                                          orphan, goes at open).
 *
 * A change counts once its fdatasync returned (`commit` resolves). A segment is sealed when
 * it is large or old enough or the queue idles; a sealed segment is removed (a checkpoint)
 * once every file written from it is durable: one syncfs of the file system
 * (`durable`), then the unlink, made durable before the next segment goes — so the
 * segments left after any crash are always the newest ones, and replaying them in order
 * at open (`replayJournal`) leaves every file at its last committed content.
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import {
  entryHead,
  listSegments,
  retireSegments,
  nextSegmentSeq,
  scanSegment,
  segmentName,
} from '../store/journal.ts';
import { fsyncDir } from '../store/durable.ts';

export type JournalOp = 'message' | 'file' | 'state' | 'remove';

export interface JournalRecord {
  readonly op: JournalOp;
  readonly id: string;
  readonly body: Uint8Array;
}

const OPS: ReadonlySet<string> = new Set<JournalOp>(['message', 'file', 'state', 'remove']);
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const EMPTY = new Uint8Array(0);
const enc = new TextEncoder();

/** The octets of one record (head, meta, body: the body is not copied). */
function encodeRecord(r: JournalRecord): Uint8Array[] {
  const meta = enc.encode(JSON.stringify({ op: r.op, id: r.id }));
  return [entryHead(meta, r.body), meta, r.body];
}

function decodeRecord(meta: Uint8Array, body: Uint8Array): JournalRecord {
  let m: unknown;
  try {
    m = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(meta));
  } catch {
    m = undefined;
  }
  const o = m as { op?: unknown; id?: unknown } | undefined;
  if (
    typeof o?.op !== 'string' ||
    !OPS.has(o.op) ||
    typeof o.id !== 'string' ||
    // The id names files: never a path.
    !ID_RE.test(o.id)
  ) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED', 'queue journal: unknown entry');
  }
  const op = o.op as JournalOp;
  return { op, id: o.id, body: op === 'message' || op === 'state' ? body : EMPTY };
}

/**
 * Replays the segments a crash (or a close that could not checkpoint) left, oldest first,
 * handing each record to `apply`, which writes its file and returns the paths it wrote —
 * but for a "message" that a later "message" or "file" of the same id supersedes (an id
 * used again after a removal: the file holds the newer message, never the older);
 * `durable(paths)` makes them durable; then each segment is removed, oldest first, each
 * removal made durable before the next (a crash here leaves the newest segments, whose
 * replay again gives the same files). A segment that is damaged before its end has its
 * whole entries replayed and is kept aside as `<name>.damaged`, reported through
 * `onDamage`: the entries after the damage are lost, and a person should look.
 */
export async function replayJournal(
  dir: string,
  apply: (r: JournalRecord) => Promise<readonly string[]>,
  durable: (paths: readonly string[]) => Promise<void>,
  onDamage: (e: NmtpError) => void,
): Promise<number> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const segments = listSegments(dir);
  if (segments.length === 0) return 0;
  const records: JournalRecord[] = [];
  const damaged = new Set<string>();
  for (const s of segments) {
    const scan = scanSegment(readFileSync(s.path));
    for (const e of scan.entries) {
      try {
        records.push(decodeRecord(e.meta, e.body));
      } catch (err) {
        onDamage(err as NmtpError);
        damaged.add(s.path);
      }
    }
    if (scan.state === 'damaged') damaged.add(s.path);
  }
  const lastMessage = new Map<string, JournalRecord>();
  for (const r of records) if (r.op === 'message' || r.op === 'file') lastMessage.set(r.id, r);
  const paths = new Set<string>();
  for (const r of records) {
    if (r.op === 'file' || (r.op === 'message' && lastMessage.get(r.id) !== r)) continue;
    for (const p of await apply(r)) paths.add(p);
  }
  await durable([...paths]);
  retireSegments(dir, segments, damaged, onDamage);
  return records.length;
}

/** What a committed change holds until its files are written (the checkpoint waits). */
export interface Held {
  /** `ok = false`: a file could not be written; the segment is kept for the next open. */
  release(ok: boolean): void;
}

interface Segment {
  readonly path: string;
  /** Committed changes whose files are not written yet. */
  holds: number;
  /** A change whose file could not be written: the segment stays until the next open. */
  failed: boolean;
  /** The files its changes write (for a checkpoint without syncfs). */
  readonly paths: Set<string>;
}

interface Waiting {
  readonly bufs: Uint8Array[];
  readonly size: number;
  readonly paths: readonly string[];
  readonly resolve: (h: Held) => void;
  readonly reject: (e: unknown) => void;
}

export interface QueueJournalOptions {
  /** The journal directory (recovered already: `replayJournal`). */
  readonly dir: string;
  /** Makes every file written so far durable (the checkpoint's syncfs); `paths` are theirs. */
  readonly durable: (paths: readonly string[]) => Promise<void>;
  readonly onError: (e: unknown) => void;
  readonly segmentBytes?: number;
  readonly segmentMs?: number;
  readonly idleMs?: number;
}

/** As the mailbox's writer (src/server/mailbox-writer.worker.ts). */
export const SEGMENT_BYTES = 8 * 1024 * 1024;
export const SEGMENT_MS = 2000;
export const IDLE_MS = 500;

/** The writing end: group commit on the main thread's event loop, fsyncs on the thread pool. */
export class QueueJournal {
  /** Counted for tests and measurements: fdatasyncs, changes committed, segments removed. */
  readonly stats = { syncs: 0, commits: 0, checkpoints: 0 };
  private seq: number;
  private handle: FileHandle | undefined;
  private current: Segment | undefined;
  private size = 0;
  private startedAt = 0;
  private pending: Waiting[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private readonly sealed: Segment[] = [];
  private checkpointing: Promise<void> | undefined;
  private checkpointAgain = false;
  private idle: NodeJS.Timeout | undefined;
  private dead = false;
  /** abandon(): a killed process removes nothing either (the next open replays). */
  private abandoned = false;
  private reportedFailure = false;

  constructor(private readonly o: QueueJournalOptions) {
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    this.seq = nextSegmentSeq(o.dir);
  }

  /**
   * Appends the records as one change and resolves when they are durable (with the other
   * changes of the same moment: one fdatasync). The caller writes their files next and
   * then releases what it holds, always.
   */
  commit(records: readonly JournalRecord[], paths: readonly string[]): Promise<Held> {
    if (this.dead) {
      return Promise.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue is closed'));
    }
    let bufs: Uint8Array[];
    try {
      bufs = records.flatMap(encodeRecord);
    } catch (e) {
      return Promise.reject(e);
    }
    let size = 0;
    for (const b of bufs) size += b.length;
    return new Promise<Held>((resolve, reject) => {
      this.pending.push({ bufs, size, paths, resolve, reject });
      this.schedule();
    });
  }

  /** Writes what is pending, seals the segment and removes what can be removed. */
  async close(): Promise<void> {
    await this.drain();
    this.dead = true;
    clearTimeout(this.idle);
    await this.seal();
    // Segments whose files are still being written (a change that raced the close) stay:
    // the next open replays them.
    await this.checkpoint();
  }

  /** As a killed process: nothing more is written, nothing is removed. */
  abandon(): void {
    this.dead = true;
    this.abandoned = true;
    clearTimeout(this.idle);
    for (const w of this.pending.splice(0)) {
      w.reject(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue is closed'));
    }
    const h = this.handle;
    this.handle = undefined;
    this.current = undefined;
    // After a flush in progress (it holds its own reference).
    void (this.flushing ?? Promise.resolve()).then(() => h?.close()).catch(() => undefined);
  }

  private async drain(): Promise<void> {
    while (this.scheduled || this.flushing !== undefined || this.pending.length > 0) {
      if (this.flushing !== undefined) await this.flushing;
      else await new Promise<void>((r) => setImmediate(r));
      if (!this.scheduled && this.flushing === undefined && this.pending.length > 0) {
        this.schedule();
      }
    }
  }

  /** The first flush waits for the end of this turn: the changes made in it share it. */
  private schedule(): void {
    if (this.scheduled || this.flushing !== undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.flushing !== undefined) return;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0 && !this.dead) this.schedule();
        else this.armIdle();
      });
    });
  }

  /** Group commit: while one fdatasync runs, changes gather; the next one covers them all. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0 && !this.dead) {
      const batch = this.pending;
      this.pending = [];
      let seg: Segment;
      try {
        seg = await this.segment();
        const h = this.handle!;
        await writeAll(
          h,
          batch.flatMap((w) => w.bufs),
          batch.reduce((n, w) => n + w.size, 0),
        );
        await h.datasync();
        this.stats.syncs++;
      } catch (e) {
        for (const w of batch) w.reject(e);
        // A failed write may have left part of an entry: nothing is appended after it
        // (it reads as a torn end, never as damage before later entries).
        await this.seal();
        continue;
      }
      for (const w of batch) {
        this.size += w.size;
        seg.holds++;
        for (const p of w.paths) seg.paths.add(p);
        this.stats.commits++;
        w.resolve(this.held(seg));
      }
      const sm = this.o.segmentMs ?? SEGMENT_MS;
      if (
        this.size >= (this.o.segmentBytes ?? SEGMENT_BYTES) ||
        Date.now() - this.startedAt >= sm
      ) {
        await this.seal();
      }
    }
  }

  /** The open segment; a new one's name is durable before any entry in it counts. */
  private async segment(): Promise<Segment> {
    if (this.handle !== undefined && this.current !== undefined) return this.current;
    const path = join(this.o.dir, segmentName(this.seq++));
    const h = await open(path, 'wx', 0o600);
    try {
      await fsyncDir(this.o.dir);
    } catch (e) {
      await h.close().catch(() => undefined);
      throw e;
    }
    this.handle = h;
    this.current = { path, holds: 0, failed: false, paths: new Set() };
    this.size = 0;
    this.startedAt = Date.now();
    return this.current;
  }

  private held(seg: Segment): Held {
    let done = false;
    return {
      release: (ok) => {
        if (done) return;
        done = true;
        if (!ok) {
          seg.failed = true;
          if (!this.reportedFailure) {
            this.reportedFailure = true;
            this.o.onError(
              new NmtpError(
                'NMTP_ERR_TRANSPORT_LOCAL',
                `queue journal ${seg.path}: a file could not be written; the journal is kept until the next start replays it`,
              ),
            );
          }
        }
        seg.holds--;
        if (seg.holds === 0) this.checkpointSoon();
      },
    };
  }

  /** No more entries into the current segment; it is removed once its files are durable. */
  private async seal(): Promise<void> {
    const h = this.handle;
    const seg = this.current;
    this.handle = undefined;
    this.current = undefined;
    if (seg !== undefined) this.sealed.push(seg);
    if (h !== undefined) await h.close().catch((e: unknown) => this.o.onError(e));
    this.checkpointSoon();
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    if (this.dead || this.handle === undefined) return;
    this.idle = setTimeout(() => {
      if (this.dead || this.scheduled || this.flushing !== undefined) return;
      void this.seal();
    }, this.o.idleMs ?? IDLE_MS);
    this.idle.unref();
  }

  private checkpointSoon(): void {
    if (this.checkpointing !== undefined) {
      this.checkpointAgain = true;
      return;
    }
    void this.checkpoint();
  }

  /**
   * Removes sealed segments, oldest first, up to the first whose files are not all written
   * (or could not be); one checkpoint at a time.
   */
  private checkpoint(): Promise<void> {
    this.checkpointing ??= (async () => {
      do {
        this.checkpointAgain = false;
        if (this.abandoned) return;
        const take: Segment[] = [];
        for (const s of this.sealed) {
          if (s.holds > 0 || s.failed) break;
          take.push(s);
        }
        if (take.length === 0) return;
        try {
          const paths = new Set<string>();
          for (const s of take) for (const p of s.paths) paths.add(p);
          await this.o.durable([...paths]);
          for (const s of take) {
            await unlink(s.path).catch((e: NodeJS.ErrnoException) => {
              if (e.code !== 'ENOENT') throw e;
            });
            // Before the next one goes: what a crash leaves is always the newest segments.
            await fsyncDir(this.o.dir);
            this.sealed.splice(this.sealed.indexOf(s), 1);
            this.stats.checkpoints++;
          }
        } catch (e) {
          // What was removed stays removed; the rest waits for the next checkpoint.
          this.o.onError(e);
          return;
        }
      } while (this.checkpointAgain);
    })().finally(() => {
      this.checkpointing = undefined;
    });
    return this.checkpointing;
  }
}

/** writev may write less than asked: goes on from where it stopped. */
async function writeAll(h: FileHandle, bufs: Uint8Array[], total: number): Promise<void> {
  let done = 0;
  let rest = bufs;
  while (done < total) {
    const { bytesWritten } = await h.writev(rest);
    done += bytesWritten;
    if (done >= total) break;
    let skip = bytesWritten;
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}
