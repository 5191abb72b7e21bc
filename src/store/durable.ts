/**
 * Crash-safe small-file writes: a file is either its old content or its new content, never
 * a torn mix, and once `writeDurable` resolves it survives a power cut. The classic
 * sequence: write a temp file in the same directory, fsync it, rename over the target,
 * fsync the directory (the rename itself lives in the directory's data).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * fsync of each of `paths` still there (a file removed since needs nothing), then of each
 * of `dirs`: a checkpoint where one syncfs is not available (`syncFileSystem`).
 */
export async function fsyncExisting(
  paths: readonly string[],
  dirs: readonly string[],
): Promise<void> {
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
  for (const d of dirs) await fsyncDir(d);
}

/**
 * Every file written so far on the file system holding `dir` durable: one syncfs, through
 * coreutils' `sync --file-system` (Node has no binding for it); `fallback` where that
 * command is missing or fails. The journals' checkpoints (the mailbox's, the queue's).
 *
 * The command runs from one small shell started once per thread (`SyncHelper`), not from
 * this process: forking a gateway of a few hundred MB for each checkpoint held its event
 * loop for ≈ 10 ms (page tables copied), three times a second under load.
 */
export function syncFileSystem(dir: string, fallback: () => Promise<void>): Promise<void> {
  // A helper that died (killed, or no `sh`) is replaced by the next checkpoint.
  if (helper === undefined || helper.dead) helper = new SyncHelper();
  return helper.sync(dir).then((ok) => (ok ? undefined : fallback()));
}

let helper: SyncHelper | undefined;

/**
 * `sh` reading one directory per line and answering one line each: 0 when
 * `sync --file-system` succeeded, else 1. Answers come in order (FIFO). It holds the
 * process only while an answer is awaited; it ends with the process (end of its input). If
 * it cannot run or dies, each sync waiting fails over to `fallback`.
 */
class SyncHelper {
  private readonly child: ChildProcess | undefined;
  private readonly waiting: ((ok: boolean) => void)[] = [];
  private buffered = '';
  dead = false;

  constructor() {
    try {
      this.child = spawn(
        'sh',
        [
          '-c',
          'while IFS= read -r d; do if sync --file-system -- "$d"; then echo 0; else echo 1; fi; done',
        ],
        { stdio: ['pipe', 'pipe', 'ignore'] },
      );
    } catch {
      this.dead = true;
      return;
    }
    const c = this.child;
    c.on('error', () => this.die());
    c.on('exit', () => this.die());
    c.stdin!.on('error', () => this.die());
    c.stdout!.setEncoding('utf8');
    c.stdout!.on('data', (d: string) => {
      this.buffered += d;
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.waiting.shift()?.(line === '0');
      }
      if (this.waiting.length === 0) this.idle();
    });
    this.idle();
  }

  sync(dir: string): Promise<boolean> {
    // A name with a line break cannot be sent as one line: the fallback does it.
    if (this.dead || this.child === undefined || /[\r\n]/.test(dir)) return Promise.resolve(false);
    return new Promise((resolve) => {
      if (this.waiting.length === 0) this.busy();
      this.waiting.push(resolve);
      this.child!.stdin!.write(`${dir}\n`);
    });
  }

  private die(): void {
    if (this.dead) return;
    this.dead = true;
    for (const w of this.waiting.splice(0)) w(false);
  }

  private busy(): void {
    this.child?.ref();
    (this.child?.stdout as { ref?: () => void } | null)?.ref?.();
  }

  private idle(): void {
    this.child?.unref();
    (this.child?.stdout as { unref?: () => void } | null)?.unref?.();
    (this.child?.stdin as { unref?: () => void } | null)?.unref?.();
  }
}

export interface DurableOptions {
  /**
   * The directory fsync shared with concurrent writers into the same directory
   * (`fsyncDirShared`, group commit): as durable on return, one fsync for many renames.
   */
  readonly group?: boolean;
}

/** Writes `bytes` to `path` atomically and durably (see above). */
export async function writeDurable(
  path: string,
  bytes: Uint8Array | string,
  o: DurableOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
  const h = await open(tmp, 'wx', 0o600);
  try {
    try {
      await h.writeFile(bytes);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
  } catch (e) {
    // Whatever failed, no temp file is left beside the target.
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await (o.group === true ? fsyncDirShared(dir) : fsyncDir(dir));
}

/**
 * Writes `bytes` (or what the function writes) to a new file at `path` (which must not exist) and fsyncs it: the file's
 * data and inode are on disk when it resolves, its directory entry is not (the caller
 * renames or links it elsewhere and fsyncs that directory). No file is left on failure.
 */
export async function writeSynced(
  path: string,
  bytes: Uint8Array | string | ((h: FileHandle) => Promise<void>),
): Promise<void> {
  const h = await open(path, 'wx', 0o600);
  try {
    try {
      // Each writeFile writes all its octets at the current position (a function may call
      // it several times to write a file from pieces).
      if (typeof bytes === 'function') await bytes(h);
      else await h.writeFile(bytes);
      await h.sync();
    } finally {
      await h.close();
    }
  } catch (e) {
    await unlink(path).catch(() => undefined);
    throw e;
  }
}

interface DirSync {
  running: Promise<void>;
  /** The fsync that starts when `running` ends, shared by everyone who asked meanwhile. */
  next?: Promise<void>;
}
const dirSyncs = new Map<string, DirSync>();
const ignore = (): void => undefined;

/**
 * `fsyncDir(dir)`, shared between concurrent callers (group commit): it resolves after an
 * fsync of `dir` that STARTED after this call, so every directory change the caller made
 * before calling is covered. While one fsync of `dir` runs (it may have started before the
 * caller's change), callers wait for the next one, which starts when it ends and serves
 * them all: n messages linked while one fsync runs cost one more fsync, not n.
 */
export function fsyncDirShared(dir: string): Promise<void> {
  const g = dirSyncs.get(dir);
  if (g === undefined) return startDirSync(dir);
  g.next ??= g.running.then(ignore, ignore).then(() => startDirSync(dir));
  return g.next;
}

function startDirSync(dir: string): Promise<void> {
  const g: DirSync = { running: Promise.resolve() };
  g.running = fsyncDir(dir).finally(() => {
    // No one waits for a next fsync: the next caller starts a fresh one.
    if (dirSyncs.get(dir) === g && g.next === undefined) dirSyncs.delete(dir);
  });
  dirSyncs.set(dir, g);
  return g.running;
}
