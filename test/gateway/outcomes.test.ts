/**
 * The delivery log: one catalog event per change of a recipient's state, marked in its meta
 * so the same change is never logged twice (a second observation, a restart); metrics
 * counted by direction and outcome; observers composed in turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createGatewayLog } from '../../src/gateway/observe/log.ts';
import { createMetrics } from '../../src/gateway/observe/metrics.ts';
import { composeObservers, createOutcomeLog } from '../../src/gateway/outcomes.ts';
import type { QueuedRecipient, QueuedSubmission } from '../../src/queue/types.ts';

function setup() {
  const lines: Record<string, unknown>[] = [];
  const log = createGatewayLog({
    strict: true,
    level: 'debug',
    destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
  });
  const metrics = createMetrics({ processMetrics: false });
  const observe = createOutcomeLog({ log, metrics, now: () => 1_800_000_100_000 });
  return { lines, metrics, observe };
}

const rcpt = (over: Partial<QueuedRecipient>): QueuedRecipient => ({
  rcpt: 'bob@example.net',
  state: 'pending',
  attempts: 0,
  polls: 0,
  nextAt: 1_800_000_000,
  meta: { legacy: 'Bob@example.net' },
  ...over,
});
const entry = (kind: 'nmtp' | 'smtp', ...recipients: QueuedRecipient[]): QueuedSubmission => ({
  version: 1,
  id: 'q1',
  user: 'alice@example.org',
  created: 1_800_000_000,
  expires: 1_800_432_000,
  size: 10,
  kind,
  recipients,
});

test('each change is logged once, with the catalog event of its direction and outcome', async () => {
  const { lines, observe, metrics } = setup();
  // A fresh entry: nothing to say, nothing stored.
  const s1 = entry('nmtp', rcpt({}));
  assert.equal(await observe(s1), undefined, 'nothing new');
  assert.equal(lines.length, 0);

  const deferred = {
    ...s1,
    recipients: [
      {
        ...s1.recipients[0]!,
        state: 'deferred' as const,
        attempts: 1,
        cookie: 'C1',
        endpoint: { host: 'mx', port: 4025 },
      },
    ],
  };
  const s2 = (await observe(deferred))!;
  const accepted = {
    ...s2,
    recipients: [{ ...s2.recipients[0]!, state: 'accepted' as const, polls: 1, id: 'R9' }],
  };
  const s3 = (await observe(accepted))!;
  assert.equal(await observe(s3), undefined, 'the same state seen twice is logged once');
  assert.deepEqual(
    lines.map((l) => l['event']),
    ['nmtp.deferred', 'nmtp.delivered'],
  );
  assert.equal(lines[1]!['remoteId'], 'R9');
  assert.equal(lines[1]!['delay'], 100);
  assert.equal(lines[1]!['relay'], 'mx:4025');
  // The user's meta is kept beside the mark.
  assert.equal((s3.recipients[0]!.meta as { legacy: string }).legacy, 'Bob@example.net');
  const text = await metrics.text();
  assert.match(text, /nmtp_gateway_recipients_out_total\{direction="nmtp",outcome="accepted"\} 1/);
  assert.match(text, /nmtp_gateway_recipients_out_total\{direction="nmtp",outcome="deferred"\} 1/);
});

test('smtp entries: delivered, rejected, deferred, expired', async () => {
  const { lines, observe } = setup();
  const s = entry(
    'smtp',
    rcpt({
      rcpt: 'a@l.test',
      state: 'accepted',
      attempts: 1,
      last: { at: 1, code: 250, text: 'ok', relay: 'in.l.test[192.0.2.1]:25' },
    }),
    rcpt({
      rcpt: 'b@l.test',
      state: 'rejected',
      attempts: 1,
      last: { at: 1, code: 550, enhanced: '5.1.1', text: 'no' },
    }),
    rcpt({
      rcpt: 'c@l.test',
      state: 'pending',
      attempts: 2,
      last: { at: 1, code: 451, text: 'later' },
    }),
    rcpt({ rcpt: 'd@l.test', state: 'given-up', attempts: 9 }),
  );
  await observe(s);
  assert.deepEqual(
    lines.map((l) => [l['event'], l['rcpt']]),
    [
      ['smtp-out.delivered', 'a@l.test'],
      ['smtp-out.rejected', 'b@l.test'],
      ['smtp-out.deferred', 'c@l.test'],
      ['smtp-out.expired', 'd@l.test'],
    ],
  );
  assert.equal(lines[1]!['enhanced'], '5.1.1');
  // The server that answered, as Postfix's relay= (none recorded: none logged).
  assert.equal(lines[0]!['relay'], 'in.l.test[192.0.2.1]:25');
  assert.equal(lines[1]!['relay'], undefined);
});

test('composed observers run in turn, each seeing what the previous stored', async () => {
  const { observe } = setup();
  const seenBySecond: unknown[] = [];
  const both = composeObservers(observe, async (s) => {
    seenBySecond.push(s.recipients[0]!.meta);
    return undefined;
  });
  const out = await both(entry('nmtp', rcpt({ state: 'rejected', attempts: 1 })));
  assert.ok(out);
  assert.deepEqual(seenBySecond, [{ legacy: 'Bob@example.net', logged: 'rejected/1/0' }]);
  assert.equal(await composeObservers(async () => undefined)(entry('nmtp')), undefined);
});
