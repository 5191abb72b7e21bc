/**
 * Kill tests for the embedded queue's journal (src/queue/journal.ts): a process killed
 * (SIGKILL, test/support/crash-at.ts) after a change is in the journal but before its file
 * is written, or during a checkpoint before the segment is removed. The next open replays
 * the journal: nothing committed is lost, and a replay of changes already written leaves
 * every file at its last content (the state does not go back).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, type DeliverOutcome, type DeliverRequest } from '../../src/queue/index.ts';
import { WRITE_BEHIND_MS } from '../../src/queue/store.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';
import { runCrashChild } from './crash-run.ts';

const delivered: string[] = [];
const accept = async (r: DeliverRequest): Promise<DeliverOutcome> => {
  const rcpts = r.job.kind === 'deliver' ? r.job.recipients : [r.rcpt!];
  delivered.push(...rcpts);
  return {
    recipients: rcpts.map((rcpt) => ({
      rcpt,
      reply: { code: 250, enhanced: '2.0.0', params: { rcpt, id: `id-${rcpt}` }, text: '' },
    })),
  };
};

test('killed after the new entry is journaled, before its files are written: replayed, then delivered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-crash-journal-'));
  try {
    // A slow peer: the files are written behind while the delivery is in flight.
    const r = await runCrashChild(
      dir,
      // Whichever of its two files comes first.
      { op: 'writeFile', match: '/(msg/crash1\\.nmtp|state/crash1\\.json)$', when: 'before' },
      WRITE_BEHIND_MS * 4,
    );
    assert.equal(r.signal, 'SIGKILL', `the child was killed (it said: ${r.out})`);
    // The point was reached: the journal holds the entry, no file does yet.
    assert.equal(existsSync(join(dir, 'state', 'crash1.json')), false);
    assert.equal(existsSync(join(dir, 'msg', 'crash1.nmtp')), false);
    assert.equal(readdirSync(join(dir, 'journal')).length, 1);

    delivered.length = 0;
    const q = await Queue.open({ dir, deliver: accept, timers: false });
    try {
      assert.equal((await q.get('crash1'))?.recipients[0]?.state, 'pending');
      assert.ok(existsSync(join(dir, 'msg', 'crash1.nmtp')));
      await q.tick();
      assert.deepEqual(delivered, ['bob@b.example']);
      assert.equal((await q.get('crash1'))?.recipients[0]?.state, 'accepted');
    } finally {
      await q.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('killed during a checkpoint, before the segment goes: the replay leaves the final state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-crash-journal-'));
  try {
    const r = await runCrashChild(dir, {
      op: 'unlink',
      match: '/journal/\\d+\\.log$',
      when: 'before',
    });
    assert.equal(r.signal, 'SIGKILL', `the child was killed (it said: ${r.out})`);
    const before = JSON.parse(
      readFileSync(join(dir, 'state', 'crash1.json'), 'utf8'),
    ) as QueuedSubmission;
    assert.notEqual(before.done, undefined, 'finished before the checkpoint');
    assert.equal(readdirSync(join(dir, 'journal')).length, 1, 'the segment is still there');

    delivered.length = 0;
    const q = await Queue.open({ dir, deliver: accept, timers: false });
    try {
      const s = await q.get('crash1');
      // The segment holds the first state too: replayed in order, the last one wins.
      assert.notEqual(s?.done, undefined);
      assert.equal(s?.recipients[0]?.state, 'accepted');
      await q.tick();
      assert.deepEqual(delivered, [], 'not delivered again');
      // The replay wrote the message again; a finished entry's message goes at open.
      assert.equal(existsSync(join(dir, 'msg', 'crash1.nmtp')), false);
      assert.deepEqual(readdirSync(join(dir, 'journal')), []);
    } finally {
      await q.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
