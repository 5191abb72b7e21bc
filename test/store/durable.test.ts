/**
 * syncFileSystem (src/store/durable.ts): the journals' checkpoint, one syncfs through a
 * shell started once; what it cannot sync goes to the caller's fallback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncFileSystem } from '../../src/store/durable.ts';

test('syncFileSystem: many at once all answered by the one helper, no fallback', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-syncfs-'));
  try {
    writeFileSync(join(dir, 'f'), 'x');
    let fallbacks = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        syncFileSystem(dir, async () => {
          fallbacks++;
        }),
      ),
    );
    assert.equal(fallbacks, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syncFileSystem: a directory it cannot sync (missing, or a name with a line break) goes to the fallback', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-syncfs-'));
  try {
    const used: string[] = [];
    await syncFileSystem(join(dir, 'missing'), async () => {
      used.push('missing');
    });
    await syncFileSystem(`${dir}\nelse`, async () => {
      used.push('line break');
    });
    // The helper is still there for the next one.
    await syncFileSystem(dir, async () => {
      used.push('ok dir');
    });
    assert.deepEqual(used, ['missing', 'line break']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syncFileSystem: a helper that was killed is replaced by the next checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-syncfs-'));
  const helpers = (): number[] =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          return (
            ppid === process.pid &&
            readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('sync --file-system')
          );
        } catch {
          return false;
        }
      })
      .map(Number);
  try {
    let fallbacks = 0;
    const fallback = async (): Promise<void> => {
      fallbacks++;
    };
    await syncFileSystem(dir, fallback);
    const [pid] = helpers();
    assert.ok(pid !== undefined, 'the helper runs');
    process.kill(pid, 'SIGKILL');
    for (const end = Date.now() + 10_000; helpers().includes(pid);) {
      assert.ok(Date.now() < end, 'the helper exits');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Its exit may reach this process after the check above: the checkpoint on a helper
    // dying at that moment goes to the fallback; the next one has a new helper.
    await syncFileSystem(dir, fallback);
    fallbacks = 0;
    await syncFileSystem(dir, fallback);
    assert.equal(fallbacks, 0, 'a new helper synced it');
    assert.ok(
      helpers().some((p) => p !== pid),
      'a new helper',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
