/**
 * The mailbox writer's thread (started by src/server/mailbox-writer.ts). Its loop:
 *
 *   1. take every message that arrived since the last round (they queue while it flushes:
 *      that is the group commit),
 *   2. append them to the journal and `fdatasync` once (blocking: this thread serves no
 *      socket),
 *   3. answer each (the session then answers 250): accepted means in the journal,
 *   4. materialize each into new/ (no fsync: the journal covers them; blocking calls,
 *      cheaper in CPU than the thread pool's promises); messages that arrive meanwhile
 *      wait for the next round's commit, which makes the batches larger under load.
 *
 * A segment is sealed when it reaches SEGMENT_BYTES, is SEGMENT_MS old, or the writer has
 * been idle for IDLE_MS; a sealed segment is removed once the files it produced are
 * durable (a checkpoint: one `syncfs` of the file system holding new/ through coreutils'
 * `sync --file-system`, or, where that is missing, an fsync of every file).
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { fsyncDir, syncFileSystem } from '../store/durable.ts';
import { JournalWriter } from '../store/journal.ts';
import {
  encodeMeta,
  fsyncFiles,
  journalDir,
  materialize,
  type StoredMessage,
} from './mailbox-store.ts';

export type ToWriter =
  | ({ readonly kind: 'store'; readonly n: number } & StoredMessage)
  /** Answered once everything stored before it is in new/. */
  | { readonly kind: 'settle'; readonly n: number }
  | { readonly kind: 'close' };
export type FromWriter =
  | { readonly kind: 'stored'; readonly n: readonly number[] }
  | { readonly kind: 'failed'; readonly n: readonly number[]; readonly message: string }
  | { readonly kind: 'settled'; readonly n: number }
  | { readonly kind: 'warning'; readonly message: string }
  | { readonly kind: 'closed' };

export const SEGMENT_BYTES = 8 * 1024 * 1024;
export const SEGMENT_MS = 2000;
export const IDLE_MS = 500;

type Store = Extract<ToWriter, { kind: 'store' }>;

/** The paths a segment's messages were materialized to. */
interface SegmentFiles {
  readonly paths: string[];
}

const port = parentPort!;
const { maildir } = workerData as { maildir: string };
const journal = new JournalWriter(journalDir(maildir));
const post = (m: FromWriter): void => port.postMessage(m);

let queue: (Store | Extract<ToWriter, { kind: 'settle' }>)[] = [];
let scheduled = false;
let current: SegmentFiles = { paths: [] };
const sealed: { path: string; files: SegmentFiles }[] = [];
/** Committed but not materialized (a failed write): retried; no checkpoint meanwhile. */
const unmaterialized: { m: StoredMessage; files: SegmentFiles }[] = [];
let checkpointing: Promise<void> | undefined;
let idle: NodeJS.Timeout | undefined;
let closing = false;

// The main thread posts its messages in batches, one per turn of its event loop.
port.on('message', (batch: readonly ToWriter[]) => {
  for (const m of batch) {
    if (m.kind === 'close') {
      void close();
      return;
    }
    queue.push(m);
  }
  if (!scheduled) {
    scheduled = true;
    setImmediate(round);
  }
});

function round(): void {
  scheduled = false;
  const items = queue;
  queue = [];
  if (items.length === 0) return;
  const batch = items.filter((m): m is Store => m.kind === 'store');
  if (batch.length > 0) commit(batch);
  // Everything stored before a settle is in new/ once this round is done (retries aside).
  retryUnmaterialized();
  for (const s of items) if (s.kind === 'settle') post({ kind: 'settled', n: s.n });
  if (journal.bytes >= SEGMENT_BYTES || Date.now() - journal.startedAt >= SEGMENT_MS) {
    seal();
    void checkpoint();
  }
  armIdle(IDLE_MS);
}

/**
 * When no message comes for a while: retry what could not be written, seal, checkpoint;
 * and again, backing off, while anything is left (a quiet server still gets its files into
 * new/ and its journal emptied once the disk recovers).
 */
function armIdle(ms: number): void {
  clearTimeout(idle);
  // Closing: the last checkpoint is close()'s, and no timer may keep the thread alive.
  if (closing) return;
  idle = setTimeout(() => {
    retryUnmaterialized();
    seal();
    void checkpoint().then(() => {
      if (unmaterialized.length > 0 || sealed.length > 0) armIdle(Math.min(ms * 2, 30_000));
    });
  }, ms);
}

function commit(batch: readonly Store[]): void {
  try {
    for (const m of batch) journal.append(encodeMeta(m), m.body);
    journal.commit(Date.now());
  } catch (e) {
    // Not acknowledged: the session answers 451 and the sender tries again. What reached
    // the segment stays in it (at worst a duplicate after a replay); a fresh segment
    // starts, so a torn tail is only ever at a segment's end.
    journal.discardPending();
    seal();
    post({ kind: 'failed', n: batch.map((m) => m.n), message: String(e) });
    return;
  }
  post({ kind: 'stored', n: batch.map((m) => m.n) });
  for (const m of batch) startMaterialize(m, current);
}

function startMaterialize(m: StoredMessage, files: SegmentFiles): void {
  try {
    files.paths.push(...materialize(maildir, m));
  } catch (e) {
    // Committed: the message is safe in the journal and will be written again.
    unmaterialized.push({ m, files });
    post({ kind: 'warning', message: `materializing ${m.ids.join(',')}: ${String(e)}` });
  }
}

function retryUnmaterialized(): void {
  for (const u of unmaterialized.splice(0)) startMaterialize(u.m, u.files);
}

function seal(): void {
  const path = journal.rotate();
  if (path !== undefined) sealed.push({ path, files: current });
  current = { paths: [] };
}

/**
 * Removes sealed segments once their files are durable, oldest first, up to the first
 * one with a message not yet in new/; one checkpoint at a time.
 */
function checkpoint(): Promise<void> {
  checkpointing ??= (async () => {
    const blocked = (s: { files: SegmentFiles }): boolean =>
      unmaterialized.some((u) => u.files === s.files);
    let ready = sealed.findIndex(blocked);
    if (ready < 0) ready = sealed.length;
    const take = sealed.slice(0, ready);
    if (take.length === 0) return;
    try {
      await durable(take.flatMap((s) => s.files.paths));
      for (const s of take) {
        // Gone already (an earlier checkpoint that failed after it): done all the same.
        await unlink(s.path).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
        sealed.splice(sealed.indexOf(s), 1);
      }
      await fsyncDir(journalDir(maildir));
    } catch (e) {
      // What was removed stays removed; the rest waits for the next checkpoint.
      post({ kind: 'warning', message: `checkpoint: ${String(e)}` });
    }
  })().finally(() => {
    checkpointing = undefined;
  });
  return checkpointing;
}

/** One syncfs for the file system of new/; an fsync per file where `sync -f` is missing. */
function durable(paths: readonly string[]): Promise<void> {
  return syncFileSystem(join(maildir, 'new'), () => fsyncFiles(maildir, paths));
}

async function close(): Promise<void> {
  closing = true;
  round();
  clearTimeout(idle);
  retryUnmaterialized();
  seal();
  await checkpointing;
  await checkpoint();
  journal.close();
  post({ kind: 'closed' });
  port.close();
}
