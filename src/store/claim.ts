/**
 * One owner per directory: a maildir (its journal) or a queue directory. A second process
 * on the same directory would take the first one's live files for crash leftovers (replay
 * and remove a journal segment, delete a spool file) and answer for work nobody does.
 *
 * On Linux the claim is a kernel lock: a listening socket in the abstract namespace named
 * after the directory's real path. Only one process can hold it, and it goes away with the
 * process (a crash leaves nothing stale to judge). Elsewhere (or if that socket cannot be
 * made) the claim is the owner file alone, created atomically (a complete file linked into
 * place); a claim whose process no longer runs is taken over — that check cannot see across
 * pid namespaces, and two starters taking over one stale claim at the same instant could
 * both win, which the kernel lock rules out. The owner file always names the holder's pid,
 * for people.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  linkSync,
  readFileSync,
  realpathSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { NmtpError, type ErrorCode } from '../core/errors/index.ts';

export interface ClaimOptions {
  /** The owner file (inside the directory). */
  readonly owner: string;
  /** Prefix of the abstract socket's name: one per kind of directory. */
  readonly lockName: string;
  /** The error when another process holds it. */
  readonly code: ErrorCode;
  /** What the holder does with it, for the message: "served", "used". */
  readonly what: string;
}

/** Directories this process has claimed (by real path). */
const claimed = new Set<string>();

/** Claims `dir` (which must exist); returns the release. */
export async function claimDirectory(dir: string, o: ClaimOptions): Promise<() => void> {
  const key = realpathSync(dir);
  // Within one process the pid says nothing: a second claim is refused here.
  if (claimed.has(key)) {
    throw new NmtpError(o.code, `${dir} is ${o.what} by this process`);
  }
  claimed.add(key);
  let lock: Server | undefined;
  try {
    lock = await kernelLock(dir, key, o);
    const releaseFile = claimFile(dir, lock !== undefined, o);
    return () => {
      claimed.delete(key);
      releaseFile();
      lock?.close();
    };
  } catch (e) {
    claimed.delete(key);
    lock?.close();
    throw e;
  }
}

async function kernelLock(dir: string, key: string, o: ClaimOptions): Promise<Server | undefined> {
  if (process.platform !== 'linux') return undefined;
  const name = `\0${o.lockName}-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
  const server = createServer();
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(name, ok);
    });
  } catch (e) {
    server.close();
    if ((e as { code?: string }).code === 'EADDRINUSE') {
      throw new NmtpError(o.code, `${dir} is ${o.what} by another process (${o.owner} names it)`);
    }
    return undefined; // no abstract sockets here: the owner file alone
  }
  // It holds the lock, never the process.
  server.unref();
  return server;
}

/** The owner file with our pid, written whole and then put in place. */
function claimFile(dir: string, locked: boolean, o: ClaimOptions): () => void {
  const owner = o.owner;
  const mine = `${process.pid}\n`;
  const temp = `${owner}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(temp, mine, { mode: 0o600 });
  const release = (): void => {
    try {
      // Only our own claim: never another process's.
      if (readFileSync(owner, 'utf8') === mine) unlinkSync(owner);
    } catch {
      // Gone already.
    }
  };
  try {
    if (locked) {
      // The lock is ours: whatever the file says is stale.
      renameSync(temp, owner);
      return release;
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(temp, owner);
        return release;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EEXIST') throw e;
      }
      const pid = Number(readFileSync(owner, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new NmtpError(o.code, `${dir} is ${o.what} by process ${pid} (${owner})`);
      }
      unlinkSync(owner);
    }
    throw new NmtpError(o.code, `${owner}: could not claim`);
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Renamed into place.
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as { code?: string }).code === 'EPERM';
  }
}
