/**
 * The queue's directory ("accepted means stored", §60.15, for the sending side):
 *
 *     <dir>/msg/<id>.nmtp     the message, written once: signed NMTP, or for an entry of
 *                             kind 'smtp' the legacy message (src/queue/port.ts)
 *     <dir>/state/<id>.json   the submission's state (src/queue/types.ts), rewritten per change
 *     <dir>/tmp/              spool files of messages being received (SEND, SIGN)
 *
 * Every write is a whole file: temporary file, fsync, rename, fsync of the directory
 * (src/store/durable.ts), so a file is either its old or its new content. The directory
 * fsync is shared by the writes that happen at the same time (group commit,
 * `fsyncDirShared`): each still returns only after an fsync of its directory that started
 * after its rename, but n entries written meanwhile cost one directory fsync, not n. A submission is
 * written message first, state second, and only then is its id returned: after a crash, a
 * message without a state file belongs to a submission whose id nobody was given, and is
 * removed on start; a state file always has its message (until every recipient is final,
 * when the message is removed and the state stays for STATUS).
 */
import { constants } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { NmtpError } from '../core/errors/index.ts';
import { fsyncDirShared, writeDurable } from '../store/durable.ts';
import type { QueuedSubmission } from './types.ts';

/** "submission id = 1*64( ALPHA / DIGIT / "-" / "_" )" (§60.4): also safe as a file name. */
export const SUBMISSION_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class QueueStore {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<QueueStore> {
    for (const d of ['msg', 'state', 'tmp']) {
      await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
    }
    return new QueueStore(dir);
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

  async readMessage(id: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(this.file('msg', id)));
  }

  async writeState(s: QueuedSubmission): Promise<void> {
    await writeDurable(this.file('state', s.id), `${JSON.stringify(s, null, 1)}\n`, {
      group: true,
    });
  }

  /**
   * Removes the message, without a directory fsync: a removal a crash undoes is harmless.
   * The message goes only once its state no longer needs it — every recipient final (a
   * finished entry's message is never read again, and the observer's recovery observation
   * removes it again), or the state removed first (an orphan, removed by `load`).
   */
  async removeMessage(id: string): Promise<void> {
    try {
      await unlink(this.file('msg', id));
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
    }
  }

  /** Removes the state durably (a deleted entry never comes back). */
  async removeState(id: string): Promise<void> {
    const path = this.file('state', id);
    try {
      await unlink(path);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
      return;
    }
    await fsyncDirShared(join(path, '..'));
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
