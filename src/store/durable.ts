/**
 * Crash-safe small-file writes: a file is either its old content or its new content, never
 * a torn mix, and once `writeDurable` resolves it survives a power cut. The classic
 * sequence: write a temp file in the same directory, fsync it, rename over the target,
 * fsync the directory (the rename itself lives in the directory's data).
 */
import { open, rename, unlink } from 'node:fs/promises';
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

/** Writes `bytes` to `path` atomically and durably (see above). */
export async function writeDurable(path: string, bytes: Uint8Array | string): Promise<void> {
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
  await fsyncDir(dir);
}
