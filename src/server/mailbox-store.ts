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
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import { traceInsertion, type TraceInsertion } from '../core/frame/encoder.ts';
import { RECEIVED_FIELD } from '../core/session/received.ts';
import { claimDirectory } from '../store/claim.ts';
import { fsyncDir, fsyncExisting } from '../store/durable.ts';
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

/**
 * What a held message's cookie stores as its `ref`: the path relative to the maildir
 * (`held/<cookie>.nmtp`), so the maildir may be moved or restored, and a command run from
 * another directory (`nmtp mailbox approve`) finds it.
 */
export const heldRef = (cookie: string): string => `held/${cookie}.nmtp`;

const HELD_NAME_RE = /^[A-Za-z0-9_-]{1,128}\.nmtp$/;

/**
 * The held message a cookie's `ref` names, as a path. Refs written before they were
 * relative to the maildir (absolute, or relative to the server's working directory) are
 * read by their file name, which is the cookie's and lives in held/: an old cookie still
 * finds its message wherever the maildir now is. Undefined for a ref that names no held
 * file (nothing outside held/ is ever opened or removed through a cookie).
 */
export function heldPath(maildir: string, ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  const name = ref.slice(Math.max(ref.lastIndexOf('/'), ref.lastIndexOf('\\')) + 1);
  return HELD_NAME_RE.test(name) ? join(maildir, 'held', name) : undefined;
}

/** What `removeLeftovers` found and removed, by kind (for the start-up log line). */
export interface Leftovers {
  /** Files in tmp/ (all removed): partial or unanswered receptions; `.part` copies are not counted. */
  readonly tmp: number;
  /** `.tmp-*` files of cookie writes a crash interrupted before their rename. */
  readonly cookieTemps: number;
  /** Held messages no live cookie names: written, then a crash before their cookie was; or decided, then a crash before the removal. */
  readonly held: number;
}

/**
 * Start-up recovery of a maildir, by its one serving process (after `claimMaildir`, before
 * any session, so nothing here is in use): every file in tmp/ is a reception, a copy or a
 * held copy that never got its answer (the sender sends again, §60.15), every cookie
 * `.tmp-*` is a write that never got its rename, and a held message whose cookie is
 * missing (the cookie is written after the held file, and only then is the deferral
 * answered) or final (the held file goes after the final state) is needed by no one.
 */
export async function removeLeftovers(maildir: string): Promise<Leftovers> {
  const names = async (d: string): Promise<string[]> =>
    readdir(join(maildir, d)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [] as string[];
      throw e;
    });
  const remove = async (d: string, name: string): Promise<number> => {
    try {
      await unlink(join(maildir, d, name));
      return 1;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
  };
  let tmp = 0;
  for (const n of await names('tmp')) {
    // Copies being written (`.part`) are not counted: every crash while copies are made
    // leaves some, and the journal's replay writes them again (as it always has).
    const removed = await remove('tmp', n);
    if (!n.endsWith('.part')) tmp += removed;
  }
  let cookieTemps = 0;
  const cookies = new Set<string>();
  for (const n of await names('cookies')) {
    if (n.startsWith('.tmp-')) cookieTemps += await remove('cookies', n);
    else if (n.endsWith('.json')) cookies.add(n.slice(0, -'.json'.length));
  }
  let held = 0;
  for (const n of await names('held')) {
    if (!HELD_NAME_RE.test(n)) continue;
    const cookie = n.slice(0, -'.nmtp'.length);
    if (cookies.has(cookie) && (await liveCookie(join(maildir, 'cookies', `${cookie}.json`)))) {
      continue;
    }
    held += await remove('held', n);
  }
  if (held > 0) await fsyncDir(join(maildir, 'held'));
  return { tmp, cookieTemps, held };
}

/** Whether a cookie still waits on its held message (deferred, or wanting a bigger view). */
async function liveCookie(path: string): Promise<boolean> {
  try {
    const c = JSON.parse(await readFile(path, 'utf8')) as { state?: unknown };
    return c.state === 'deferred' || c.state === 'want-view';
  } catch {
    // A cookie that cannot be read keeps its message: a person decides, not the start-up.
    return true;
  }
}

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
export function fsyncFiles(maildir: string, paths: readonly string[]): Promise<void> {
  return fsyncExisting(paths, [join(maildir, 'new')]);
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
