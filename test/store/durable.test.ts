/**
 * syncFileSystem (src/store/durable.ts): the journals' checkpoint, one syncfs through a
 * shell started once; what it cannot sync goes to the caller's fallback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
