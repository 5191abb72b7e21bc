/**
 * Crash leftovers of the embedded queue (issue 12): a process killed (SIGKILL) between a
 * finished entry's final state and the removal of its message. At the next open the
 * message is gone — at once without an observer (nothing reads it again), after the
 * recovery observation with one (a DSN may still return it) — and the state stays for
 * STATUS. The kill is placed by test/support/crash-at.ts in a child process
 * (test/queue/crash-child.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from '../../src/queue/index.ts';
import { WRITE_BEHIND_MS } from '../../src/queue/store.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';
import { listSegments, scanSegment } from '../../src/store/journal.ts';
import { runCrashChild } from './crash-run.ts';
import { eventually } from '../support/eventually.ts';

const nothing = async (): Promise<never> => {
  throw new Error('nothing is delivered after the restart');
};

/** The last state of `id` the journal holds (the state file is written behind). */
function journaledState(dir: string, id: string): QueuedSubmission | undefined {
  let last: QueuedSubmission | undefined;
  for (const seg of listSegments(join(dir, 'journal'))) {
    for (const e of scanSegment(readFileSync(seg.path)).entries) {
      const m = JSON.parse(new TextDecoder().decode(e.meta)) as { op: string; id: string };
      if (m.op === 'state' && m.id === id) {
        last = JSON.parse(new TextDecoder().decode(e.body)) as QueuedSubmission;
      }
    }
  }
  return last;
}

/**
 * Killed just before the finished entry's message is removed. The delivery is slow, so that
 * the message reached its file meanwhile (one delivered faster never gets a file at all).
 */
async function crashed(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-crash-'));
  const r = await runCrashChild(
    dir,
    { op: 'unlink', match: '/msg/crash1\\.nmtp$', when: 'before' },
    WRITE_BEHIND_MS * 3,
  );
  assert.equal(r.signal, 'SIGKILL', `the child was killed at the removal (it said: ${r.out})`);
  // The point was reached: the final state is durable (in the journal; its file is written
  // behind), the message still there.
  assert.notEqual(journaledState(dir, 'crash1')?.done, undefined);
  assert.ok(existsSync(join(dir, 'msg', 'crash1.nmtp')));
  return dir;
}

test('no observer: the message of an entry finished before the crash is removed at open; its state stays', async () => {
  const dir = await crashed();
  const q = await Queue.open({ dir, deliver: nothing });
  try {
    assert.equal(existsSync(join(dir, 'msg', 'crash1.nmtp')), false);
    const s = await q.get('crash1');
    assert.notEqual(s?.done, undefined, 'STATUS still answers for it');
    assert.equal(s?.recipients[0]?.state, 'accepted');
  } finally {
    await q.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with an observer: the message goes once the recovery observation has seen the end', async () => {
  const dir = await crashed();
  const seen: string[] = [];
  const q = await Queue.open({
    dir,
    deliver: nothing,
    observer: async (s) => {
      seen.push(s.id);
      return undefined;
    },
  });
  try {
    await eventually(() => !existsSync(join(dir, 'msg', 'crash1.nmtp')), 'message removed');
    assert.deepEqual(seen, ['crash1']);
  } finally {
    await q.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
