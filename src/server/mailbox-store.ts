/**
 * How the mailbox stores a small accepted message: one journal entry (src/store/journal.ts)
 * per message, made durable with everyone else's by one `fdatasync` — then the answer —
 * and "materialized" into new/ as the usual `<id>.nmtp` copy per recipient. The journal
 * is what makes the 250 true; the files in new/ are made durable later, in bulk, and only
 * then is the journal segment removed (a checkpoint). After a crash the journal is
 * replayed at startup (`recoverMailbox`), so the files of every acknowledged message are
 * back in new/.
 *
 * Meta of an entry: UTF-8 JSON `{"ids":[…],"fields":[…]}` — one id per accepted
 * recipient and the value of the `Received` trace field its copy gets (§60.8.4); the body
 * is the message's octets as received. (Entries of the earlier `records` shape, from
 * before copies carried their record inside, do not decode: their segment is kept aside
 * as damaged and reported, never deleted.)
 *
 * Materializing runs in the writer's worker thread, after the answer, with synchronous
 * calls: that thread serves no socket, and a synchronous call costs a fraction of the CPU
 * of a promise round trip through the thread pool (measured: 1.29× → 1.55× SMTP's rate
 * at one session, bench/transport.bench.ts). A reader sees the files moments after the
 * answer; `Mailbox.settled()` waits for them.
 */
import { closeSync, mkdirSync, openSync, renameSync, unlinkSync, writevSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import { traceInsertion, type TraceInsertion } from '../core/frame/index.ts';
import { RECEIVED_FIELD } from '../core/session/index.ts';
import { claimDirectory } from '../store/claim.ts';
import { fsyncDir } from '../store/durable.ts';
import { recoverJournal, type Entry } from '../store/journal.ts';

export interface StoredMessage {
  /** One per accepted recipient: its copy is `new/<id>.nmtp`. */
  readonly ids: readonly string[];
  /**
   * The `Received` field value of each id's copy, in the same order (§60.8.4); '' stores
   * the body unchanged.
   */
  readonly fields: readonly string[];
  /** The message as received. */
  readonly body: Uint8Array;
}

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function encodeMeta(m: StoredMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ids: m.ids, fields: m.fields }));
}

/** An entry read back; its meta is checked before any file is named after it. */
export function decodeEntry(e: Entry): StoredMessage {
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(e.meta));
  } catch {
    throw new NmtpError('NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED', 'entry meta is not JSON');
  }
  const { ids, fields } = (meta ?? {}) as { ids?: unknown; fields?: unknown };
  if (
    !Array.isArray(ids) ||
    !Array.isArray(fields) ||
    ids.length !== fields.length ||
    !ids.every((id) => typeof id === 'string' && ID_RE.test(id)) ||
    !fields.every((r) => typeof r === 'string')
  ) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_JOURNAL_DAMAGED', 'entry meta has the wrong shape');
  }
  return { ids: ids as string[], fields: fields as string[], body: e.body };
}

/**
 * Writes each recipient's copy into new/ — the message with that recipient's `Received`
 * field inserted (`withReceived`) — through tmp/ and a rename, so a reader never sees half
 * a file, and returns their paths. Idempotent: a replay writes them whole again.
 * Not durable by itself: the journal entry is, until a checkpoint makes these durable.
 */
export function materialize(maildir: string, m: StoredMessage): string[] {
  const paths: string[] = [];
  for (const [i, id] of m.ids.entries()) {
    const field = m.fields[i]!;
    // An empty field: the copy is the body as received (a store of octets that are not a
    // framed message, e.g. the benchmark's legacy messages with --same-store).
    const { at, line } =
      field === '' ? { at: 0, line: new Uint8Array(0) } : withReceived(m.body, field);
    const part = partName(maildir);
    const fd = openSync(part, 'wx', 0o600);
    let fdOpen = true;
    let renamed = false;
    try {
      writevAll(fd, [m.body.subarray(0, at), line, m.body.subarray(at)]);
      fdOpen = false;
      closeSync(fd);
      const target = join(maildir, 'new', `${id}.nmtp`);
      renameSync(part, target);
      renamed = true;
      paths.push(target);
    } finally {
      // Never close an fd twice: this thread shares the fd table with the main thread,
      // which may have been given the same number meanwhile.
      if (fdOpen) closeSync(fd);
      if (!renamed) unlinkSync(part);
    }
  }
  return paths;
}

/** writev until every octet is written (a short write is legal). */
function writevAll(fd: number, pieces: Uint8Array[]): void {
  let left = pieces.filter((p) => p.length > 0);
  while (left.length > 0) {
    let n = writevSync(fd, left);
    const next: Uint8Array[] = [];
    for (const p of left) {
      if (n >= p.length) n -= p.length;
      else {
        next.push(p.subarray(n));
        n = 0;
      }
    }
    left = next;
  }
}

/**
 * Where `field` (a `Received` value) goes in `message` and its line (§60.8.4): checked as
 * a decoder would check the trace block, so the copy is never a message readers refuse.
 * `head` may be a prefix holding the whole trace block; `total` is the message's length.
 */
export function withReceived(head: Uint8Array, field: string, total = head.length): TraceInsertion {
  return traceInsertion(head, { name: RECEIVED_FIELD, value: field }, undefined, total);
}

/**
 * A fresh temporary name in tmp/ for a copy being written ('wx'): a replay after a crash
 * never writes into a file an earlier attempt already put into new/ under another name.
 * A random prefix per process, then a counter: no CSPRNG call per file.
 */
export function partName(maildir: string): string {
  return join(maildir, 'tmp', `${PART_PREFIX}${(partSeq++).toString(36)}.part`);
}
const PART_PREFIX = randomBytes(9).toString('base64url');
let partSeq = 0;

/** What an interrupted `materialize` leaves in tmp/; removed before a replay. */
export async function removeParts(maildir: string): Promise<void> {
  const dir = join(maildir, 'tmp');
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.endsWith('.part')) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/**
 * fsync of every path that still exists, then new/ — the checkpoint where `sync -f`
 * (one syncfs) is not available. A file a reader already moved out of new/ is skipped: a
 * reader that moves a message (as a mail reader moves new/ to cur/) fsyncs it itself.
 */
export async function fsyncFiles(maildir: string, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    let h;
    try {
      h = await open(p, 'r');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') continue;
      throw e;
    }
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }
  await fsyncDir(join(maildir, 'new'));
}

/**
 * Replays the journal a crash left (see the module comment). A message a reader had
 * already taken out of new/ before the crash comes back: at most one checkpoint interval
 * of messages can be delivered twice, never zero times.
 */
export async function recoverMailbox(
  maildir: string,
  onDamage: (e: NmtpError) => void,
): Promise<number> {
  await removeParts(maildir);
  const written: string[] = [];
  return recoverJournal(
    journalDir(maildir),
    // An entry that does not decode is thrown as damaged: its segment is kept aside.
    (e) => {
      written.push(...materialize(maildir, decodeEntry(e)));
      return Promise.resolve();
    },
    () => fsyncFiles(maildir, written),
    onDamage,
  );
}

export const journalDir = (maildir: string): string => join(maildir, 'journal');

/**
 * One writer per maildir: a second server on the same maildir would replay (and remove)
 * the first one's live journal, and answer 250 for entries in a segment nobody replays.
 * The claim (src/store/claim.ts) is a kernel lock where there is one; `journal/owner`
 * names the holder's pid. Returns the release.
 */
export async function claimMaildir(maildir: string): Promise<() => void> {
  mkdirSync(journalDir(maildir), { recursive: true, mode: 0o700 });
  return claimDirectory(maildir, {
    owner: join(journalDir(maildir), 'owner'),
    lockName: 'nmtp-maildir',
    code: 'NMTP_ERR_TRANSPORT_MAILDIR_IN_USE',
    what: 'served',
  });
}
