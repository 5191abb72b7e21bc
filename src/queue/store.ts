/**
 * The queue's directory ("accepted means stored", §60.15, for the sending side):
 *
 *     <dir>/msg/<id>.nmtp     the message, written once: signed NMTP, or for an entry of
 *                             kind 'smtp' the legacy message (src/queue/port.ts)
 *     <dir>/state/<id>.json   the submission's state (src/queue/types.ts), rewritten per change
 *     <dir>/journal/          what makes those two durable (src/queue/journal.ts)
 *     <dir>/tmp/              spool files of messages being received (SEND, SIGN)
 *
 * Every change is first appended to the journal, whose one `fdatasync` covers every change
 * made meanwhile (group commit), and only then written to its file, without an fsync, and
 * not at once: the files are written behind, at most WRITE_BEHIND_MS later, each with the
 * last of the changes it had meanwhile — a message delivered before then never reaches its
 * file at all, and a state changed four times is written once. Until then this process
 * reads the message from memory (`messageSource`); another process reading the files
 * (`nmtp-gateway queue` without the admin listener) sees them at most that much behind. A
 * crash before the journal's checkpoint (one syncfs, then the segment goes; it waits until
 * every file its changes name is written) is undone by the replay at open (`recover`),
 * which writes every file again from the journal. A new entry's message and first state go into the
 * journal together (one change), so a message is durable with its state or not at all.
 * Messages over INLINE_MAX are not copied into the journal: their file is written with its
 * own fsync and directory fsync first (`writeDurable`, the directory fsync shared with
 * concurrent writers), then the state is journaled. So after a crash, a message without a
 * state file belongs to a submission whose id nobody was given, and is removed on start; a
 * state file always has its message (until every recipient is final, when the message is
 * removed and the state stays for STATUS).
 */
import { constants, writeFile as writeFileCb } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import { fsyncDirShared, fsyncExisting, syncFileSystem, writeDurable } from '../store/durable.ts';
import { QueueJournal, replayJournal, type Held, type JournalRecord } from './journal.ts';
import type { QueuedSubmission } from './types.ts';
import type { MessageSource } from '../client/source.ts';
import type { EntryKind } from './port.ts';
import { entryBytesSource, entryFileSource } from './source.ts';

/** Larger messages are not copied into the journal (as the mailbox's 256 KiB). */
export const INLINE_MAX = 256 * 1024;
const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** How long a file's new content may wait in memory (the journal holds it meanwhile). */
export const WRITE_BEHIND_MS = 500;
/** Octets waiting that start the writing at once (a burst of large messages). */
const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;
/** Files written at the same time (the thread pool has four threads). */
const WRITE_BEHIND_PARALLEL = 8;

/** One journaled change: released once every file it names is written (or superseded). */
interface Change {
  readonly held: Held;
  left: number;
  ok: boolean;
}

/** A file's content to come: `body` undefined removes it. */
interface Behind {
  body: Uint8Array | undefined;
  /** The file did not exist before this content (a new entry's message). */
  readonly fresh: boolean;
  readonly changes: Change[];
  /**
   * When it is written at the latest (performance.now() ms): WRITE_BEHIND_MS after its
   * first waiting content; later contents keep it (and its place in the map's order, which
   * is therefore the order of `due`).
   */
  readonly due: number;
}

/** Files due this close to the first one due are written in its batch (fewer wake-ups). */
const WRITE_BEHIND_SLACK_MS = 50;

function settle(changes: readonly Change[], ok: boolean): void {
  for (const c of changes) {
    if (!ok) c.ok = false;
    if (--c.left === 0) c.held.release(c.ok);
  }
}

/** "submission id = 1*64( ALPHA / DIGIT / "-" / "_" )" (§60.4): also safe as a file name. */
export const SUBMISSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class QueueStore {
  private journal: QueueJournal | undefined;
  /** Files whose content is journaled but not written yet, by path. */
  private behind = new Map<string, Behind>();
  private behindBytes = 0;
  /** The files being written now (readers still take their content from here). */
  private writing = new Map<string, Behind>();
  private writer: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly dir: string,
    private readonly writeBehindMs: number,
  ) {}

  /** `writeBehindMs`: how long a file's new content may wait in memory (WRITE_BEHIND_MS). */
  static async open(dir: string, writeBehindMs = WRITE_BEHIND_MS): Promise<QueueStore> {
    for (const d of ['msg', 'state', 'tmp', 'journal']) {
      await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
    }
    return new QueueStore(dir, writeBehindMs);
  }

  /**
   * Replays what the journal holds (a crash, or a close that raced a change) into the
   * files, makes them durable and starts the journal. Once, by the directory's owner,
   * before `load`.
   */
  async recover(onError: (e: unknown) => void = () => undefined): Promise<number> {
    const dir = join(this.dir, 'journal');
    const n = await replayJournal(
      dir,
      (r) => this.apply(r),
      (p) => this.durable(p),
      onError,
    );
    this.journal = new QueueJournal({ dir, durable: (p) => this.durable(p), onError });
    return n;
  }

  /** Journal counters (tests, measurements). */
  get journalStats(): QueueJournal['stats'] | undefined {
    return this.journal?.stats;
  }

  /** Writes what is pending and removes the journal segments whose files are durable. */
  async close(): Promise<void> {
    await this.writeBehindNow();
    await this.journal?.close();
    // Changes that raced the journal's close: their files too (the journal kept them).
    await this.writeBehindNow();
  }

  /** As a killed process: nothing more is journaled, nothing removed, nothing written. */
  abandon(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.behind = new Map();
    this.behindBytes = 0;
    this.journal?.abandon();
  }

  /** Every file waiting written now (tests, close). */
  async writeBehindNow(): Promise<void> {
    while (this.writer !== undefined || this.behind.size > 0) {
      if (this.writer !== undefined) await this.writer;
      else this.startWriting(Infinity);
    }
  }

  private writeBehind(): void {
    if (this.behindBytes >= WRITE_BEHIND_BYTES) {
      if (this.writer === undefined) this.startWriting(Infinity);
      return;
    }
    if (this.timer !== undefined || this.writer !== undefined) return;
    const first = this.behind.values().next();
    if (first.done === true) return;
    // Each file waits its own writeBehindMs, not the batch's: a timer for the whole map
    // would write a file changed 10 ms before it fires, and a message delivered 100 ms
    // after its 250 would still be created and unlinked.
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (this.writer === undefined) this.startWriting(performance.now() + WRITE_BEHIND_SLACK_MS);
      },
      Math.max(0, first.value.due - performance.now()),
    );
    this.timer.unref();
  }

  /**
   * Writes every file due by `until` (Infinity: all). One batch at a time: a file's next
   * content is never written while its last one is.
   */
  private startWriting(until: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let batch: Map<string, Behind>;
    if (until === Infinity) {
      batch = this.behind;
      this.behind = new Map();
      this.behindBytes = 0;
    } else {
      batch = new Map();
      // In order of `due`: stop at the first not due yet.
      for (const [path, b] of this.behind) {
        if (b.due > until) break;
        batch.set(path, b);
      }
      for (const [path, b] of batch) {
        this.behind.delete(path);
        this.behindBytes -= b.body?.length ?? 0;
      }
    }
    this.writing = batch;
    const files = [...batch];
    const one = async (): Promise<void> => {
      for (let f = files.pop(); f !== undefined; f = files.pop()) {
        const [path, b] = f;
        let ok = true;
        try {
          if (b.body === undefined) await unlinkIfThere(path);
          else await writeInPlace(path, b.body);
        } catch {
          // The journal keeps the change (its segment is not removed): the next start
          // replays it. The held change reports it once.
          ok = false;
        }
        settle(b.changes, ok);
      }
    };
    this.writer = Promise.all(Array.from({ length: WRITE_BEHIND_PARALLEL }, one)).then(() => {
      this.writer = undefined;
      this.writing = new Map();
      if (this.behind.size > 0) this.writeBehind();
    });
  }

  /** What a reader of the file at `path` gets now: the content waiting, else the file. */
  private waiting(path: string): Behind | undefined {
    return this.behind.get(path) ?? this.writing.get(path);
  }

  /** A record replayed at open: its file written again (idempotent). */
  private async apply(r: JournalRecord): Promise<readonly string[]> {
    switch (r.op) {
      case 'message': {
        const p = this.file('msg', r.id);
        await writeInPlace(p, r.body);
        return [p];
      }
      case 'state': {
        const p = this.file('state', r.id);
        await writeInPlace(p, r.body);
        return [p];
      }
      case 'remove':
        // Its message is an orphan now, removed by `load` (or the message of the id's
        // next entry, written on its own: a "file" record follows).
        await unlinkIfThere(this.file('state', r.id));
        return [];
      case 'file':
        return [];
    }
  }

  /**
   * Every file written so far durable: one syncfs of the queue's file system (coreutils'
   * `sync --file-system`); where that is missing, an fsync of each of `paths` still there
   * and of the directories.
   */
  private durable(paths: readonly string[]): Promise<void> {
    return syncFileSystem(this.dir, () =>
      fsyncExisting(paths, [join(this.dir, 'msg'), join(this.dir, 'state')]),
    );
  }

  /**
   * Journals `records` (durable on return), then leaves `files` to be written behind; the
   * journal keeps the change until they are. A file's body undefined removes it.
   */
  private async journaled(
    records: readonly JournalRecord[],
    files: readonly (readonly [string, Uint8Array | undefined, boolean?])[],
  ): Promise<void> {
    const j = this.journal;
    if (j === undefined) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue store is not recovered');
    }
    const held: Held = await j.commit(
      records,
      files.map(([p]) => p),
    );
    if (files.length === 0) {
      held.release(true);
      return;
    }
    const change: Change = { held, left: files.length, ok: true };
    const due = performance.now() + this.writeBehindMs;
    for (const [path, body, fresh = false] of files) {
      const prev = this.behind.get(path);
      if (prev !== undefined) {
        this.behindBytes -= prev.body?.length ?? 0;
        prev.body = body;
        prev.changes.push(change);
      } else {
        this.behind.set(path, { body, fresh, changes: [change], due });
      }
      this.behindBytes += body?.length ?? 0;
    }
    this.writeBehind();
  }

  /**
   * A new entry: its message and first state, durable together on return (one change of
   * the journal; a large message is written durably on its own first).
   */
  async writeNew(s: QueuedSubmission, message: Uint8Array): Promise<void> {
    if (message.length > INLINE_MAX) {
      await this.writeMessage(s.id, message);
      await this.writeFirstState(s);
      return;
    }
    const msg = this.file('msg', s.id);
    const state = this.file('state', s.id);
    const body = stateOctets(s);
    await this.journaled(
      [
        { op: 'message', id: s.id, body: message },
        { op: 'state', id: s.id, body },
      ],
      [
        [msg, message, true],
        [state, body],
      ],
    );
  }

  get spoolDir(): string {
    return join(this.dir, 'tmp');
  }

  private file(kind: 'msg' | 'state', id: string): string {
    if (!SUBMISSION_ID_RE.test(id)) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_SUBMISSION_UNKNOWN', 'malformed submission id');
    }
    return join(this.dir, kind, kind === 'msg' ? `${id}.nmtp` : `${id}.json`);
  }

  /** A fresh spool file for a message being received. */
  async spool(): Promise<{ path: string; handle: Awaited<ReturnType<typeof open>> }> {
    const path = join(this.spoolDir, `${randomBytes(12).toString('hex')}.spool`);
    return { path, handle: await open(path, 'wx', 0o600) };
  }

  async writeMessage(id: string, bytes: Uint8Array): Promise<void> {
    await writeDurable(this.file('msg', id), bytes, { group: true });
  }

  /**
   * Makes a file written elsewhere the message of `id`, durable on return. On the queue's
   * file system (its tmp/, the submission backend's spool): fsync'd, renamed into msg/,
   * directory fsync'd — no copy. On another file system, where rename cannot move it:
   * copied into msg/ (temporary file, fsync, rename), then the caller's file is removed.
   */
  async adoptMessage(id: string, path: string): Promise<void> {
    const target = this.file('msg', id);
    const h = await open(path, 'r+');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    try {
      await rename(path, target);
    } catch (e) {
      if ((e as { code?: string }).code !== 'EXDEV') throw e;
      const tmp = join(this.dir, 'msg', `.tmp-${randomBytes(8).toString('hex')}`);
      try {
        await copyFile(path, tmp, constants.COPYFILE_EXCL);
        const t = await open(tmp, 'r+');
        try {
          await t.sync();
        } finally {
          await t.close();
        }
        await rename(tmp, target);
      } catch (e2) {
        await unlink(tmp).catch(() => undefined);
        throw e2;
      }
      await fsyncDirShared(join(this.dir, 'msg'));
      await unlink(path).catch(() => undefined);
      return;
    }
    await fsyncDirShared(join(this.dir, 'msg'));
  }

  /** True when the directories can be written (readyz). */
  async writable(): Promise<boolean> {
    try {
      for (const d of ['msg', 'state', 'tmp']) await access(join(this.dir, d), constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  messagePath(id: string): string {
    return this.file('msg', id);
  }

  /** The entry's message as its kind reads it: from memory while its file waits. */
  messageSource(id: string, kind: EntryKind | undefined): Promise<MessageSource> {
    const path = this.file('msg', id);
    const body = this.waiting(path)?.body;
    return body !== undefined
      ? Promise.resolve(entryBytesSource(kind, body))
      : entryFileSource(kind, path);
  }

  async readMessage(id: string): Promise<Uint8Array> {
    const path = this.file('msg', id);
    const body = this.waiting(path)?.body;
    return body ?? new Uint8Array(await readFile(path));
  }

  /**
   * The first state of an entry whose message was written to its file on its own
   * (`writeMessage`, `adoptMessage`): journaled with a "file" record, so that a replay never
   * writes an older message of the same id over it.
   */
  async writeFirstState(s: QueuedSubmission): Promise<void> {
    const path = this.file('state', s.id);
    const body = stateOctets(s);
    await this.journaled(
      [
        { op: 'file', id: s.id, body: EMPTY },
        { op: 'state', id: s.id, body },
      ],
      [[path, body]],
    );
  }

  /** The entry's new state, durable on return (journaled, then its file written). */
  async writeState(s: QueuedSubmission): Promise<void> {
    const path = this.file('state', s.id);
    const body = stateOctets(s);
    await this.journaled([{ op: 'state', id: s.id, body }], [[path, body]]);
  }

  /**
   * Removes the message, without a directory fsync: a removal a crash undoes is harmless.
   * The message goes only once its state no longer needs it — every recipient final (a
   * finished entry's message is never read again, and the observer's recovery observation
   * removes it again), or the state removed first (an orphan, removed by `load`).
   */
  async removeMessage(id: string): Promise<void> {
    const path = this.file('msg', id);
    const b = this.behind.get(path);
    if (b !== undefined) {
      // Never written: its change needs the file no more (the state says every recipient is
      // final, or is gone), and a replay writes it only to have it removed again.
      this.behind.delete(path);
      this.behindBytes -= b.body?.length ?? 0;
      settle(b.changes, true);
      if (b.fresh) return;
    }
    // Being written now: removed after, or it would come back.
    if (this.writing.has(path)) await this.writer;
    await unlinkIfThere(path);
  }

  /**
   * Removes the state durably (a deleted entry never comes back): journaled, so that a
   * replay of earlier changes cannot bring it back either.
   */
  async removeState(id: string): Promise<void> {
    const path = this.file('state', id);
    await this.journaled([{ op: 'remove', id, body: EMPTY }], [[path, undefined]]);
  }

  /**
   * Every submission on disk; removes what a crash left behind (spool and temporary files,
   * messages whose state was never written). A state file that does not parse is reported
   * through `onError` and left in place for a person to look at.
   */
  async load(onError: (e: unknown) => void = () => undefined): Promise<QueuedSubmission[]> {
    for (const n of await readdir(this.spoolDir)) {
      await unlink(join(this.spoolDir, n)).catch(() => undefined);
    }
    const out: QueuedSubmission[] = [];
    const ids = new Set<string>();
    const stateDir = join(this.dir, 'state');
    for (const n of (await readdir(stateDir)).sort()) {
      if (n.startsWith('.tmp-')) {
        await unlink(join(stateDir, n)).catch(() => undefined);
        continue;
      }
      if (!n.endsWith('.json')) continue;
      // Named before parsing: a state file that cannot be read keeps its message.
      ids.add(n.slice(0, -'.json'.length));
      try {
        const s = JSON.parse(await readFile(join(stateDir, n), 'utf8')) as QueuedSubmission;
        if (s.version !== 1 || `${s.id}.json` !== n) throw new Error('not a queue state file');
        out.push(s);
      } catch (e) {
        onError(new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `queue state ${n}: ${String(e)}`));
      }
    }
    const msgDir = join(this.dir, 'msg');
    for (const n of await readdir(msgDir)) {
      const id = n.endsWith('.nmtp') ? n.slice(0, -'.nmtp'.length) : undefined;
      if (id === undefined || !ids.has(id)) await unlink(join(msgDir, n)).catch(() => undefined);
    }
    return out;
  }
}

function stateOctets(s: QueuedSubmission): Uint8Array {
  return enc.encode(`${JSON.stringify(s, null, 1)}\n`);
}

/**
 * The file's new content, in place and without an fsync: the journal already holds it, and
 * a crash that tears it is undone by the replay (nobody else writes these files).
 */
function writeInPlace(path: string, bytes: Uint8Array): Promise<void> {
  // The callback API: one open, write, close on the thread pool, without a FileHandle.
  return new Promise((resolve, reject) => {
    writeFileCb(path, bytes, { mode: 0o600 }, (e) => (e === null ? resolve() : reject(e)));
  });
}

async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
  }
}
