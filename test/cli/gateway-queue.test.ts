/**
 * `nmtp-gateway queue …` (src/cli/gateway-queue.ts): list's text, postqueue -p style, and
 * retry / delete over a real embedded queue directory (no gateway running: the command
 * opens the directory itself).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatList, queueCommand } from '../../src/cli/gateway-queue.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { Queue } from '../../src/queue/index.ts';
import type { SmtpDeliverFn } from '../../src/queue/port.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';

const AT = Date.UTC(2026, 11, 7, 12, 0, 0) / 1000;

test('an empty queue says so', () => {
  assert.equal(formatList([]), 'Mail queue is empty');
});

test('one block per entry: id, kind, size, arrival, sender; each recipient with state, next try and last answer', () => {
  const entry: QueuedSubmission = {
    version: 1,
    id: 'E1',
    kind: 'smtp',
    user: '',
    created: AT,
    size: 1234,
    expires: AT + 5 * 86400,
    recipients: [
      {
        rcpt: 'bob@legacy.example',
        state: 'pending',
        attempts: 2,
        polls: 0,
        nextAt: AT + 300,
        last: {
          at: AT + 10,
          code: 450,
          enhanced: '4.2.0',
          text: '451 Mailbox busy',
          relay: 'in.legacy.example[192.0.2.1]:25',
        },
      },
      {
        rcpt: 'ann@legacy.example',
        state: 'rejected',
        attempts: 1,
        polls: 0,
        nextAt: AT,
        last: { at: AT + 10, code: 550, enhanced: '5.1.1', text: 'no such user' },
      },
    ],
    meta: { origin: 'dsn', mailFrom: '', arrival: AT },
  };
  assert.equal(
    formatList([entry]),
    [
      'E1  smtp  1234  2026-12-07T12:00:00Z  MAILER-DAEMON',
      '    pending   bob@legacy.example next 2026-12-07T12:05:00Z — host in.legacy.example[192.0.2.1]:25 said: 451 4.2.0 Mailbox busy',
      '    rejected  ann@legacy.example — 550 5.1.1 no such user',
      '',
      '-- 1 entries, 1 recipients waiting',
    ].join('\n'),
  );
});

test('retry ALL takes the entries with a recipient waiting; delete ALL takes every entry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-queue-cli-'));
  try {
    const c = validateConfig({ queue: { dir: join(dir, 'queue') }, admin: { listen: '' } });
    const smtpDeliver: SmtpDeliverFn = async (r) => ({
      recipients: r.recipients.map((rcpt) =>
        rcpt.startsWith('later@')
          ? { rcpt, code: 451, enhanced: '4.3.0', text: 'try again', relay: 'mx.legacy.example:25' }
          : { rcpt, code: 250, text: 'ok' },
      ),
    });
    const q = await Queue.open({
      dir: c.queue.dir,
      timers: false,
      deliver: () => Promise.reject(new Error('no NMTP here')),
      smtpDeliver,
    });
    const message = new TextEncoder().encode('Subject: x\r\n\r\nx\r\n');
    for (const [id, rcpt] of [
      ['done-1', 'ok@legacy.example'],
      ['done-2', 'ok2@legacy.example'],
      ['waiting', 'later@legacy.example'],
    ] as const) {
      await q.add({ id, kind: 'smtp', user: 'a@example.org', recipients: [rcpt], message });
    }
    await q.tick();
    const before = (await q.get('waiting'))!.recipients[0]!;
    assert.equal(before.state, 'pending');
    assert.ok(before.nextAt > Math.floor(Date.now() / 1000), 'the next try is later');
    await q.close();

    const lines: string[] = [];
    assert.equal(await queueCommand(c, ['retry', 'ALL'], (l) => lines.push(l)), 0);
    assert.deepEqual(lines, ['1 entry scheduled for delivery now']);
    lines.length = 0;
    assert.equal(await queueCommand(c, ['list'], (l) => lines.push(l)), 0);
    assert.match(
      lines[0]!,
      /\n {4}pending +later@legacy\.example next \S+ — host mx\.legacy\.example:25 said: 451 4\.3\.0 try again\n/,
    );
    assert.match(lines[0]!, /-- 3 entries, 1 recipients waiting$/);
    lines.length = 0;
    assert.equal(await queueCommand(c, ['delete', 'ALL'], (l) => lines.push(l)), 0);
    assert.deepEqual(lines, ['3 entries deleted']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
