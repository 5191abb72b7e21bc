/**
 * A test entry (test/queue/crash-leftovers.test.ts), not a test: opens the embedded queue
 * in `argv[2]` with a deliverer that accepts every recipient, adds one entry and waits for
 * it to finish. Run with test/support/crash-at.ts, it dies wherever the test says.
 * `argv[3]`, when given, is how many milliseconds each delivery takes (a slow peer): longer
 * than the store's WRITE_BEHIND_MS, the entry's files are written while it is in flight.
 */
import { encodeMessage } from '../../src/core/frame/index.ts';
import { Queue, type DeliverOutcome, type DeliverRequest } from '../../src/queue/index.ts';

const dir = process.argv[2]!;
const slow = Number(process.argv[3] ?? 0);
const message = encodeMessage({
  trace: [],
  root: { fields: [{ name: 'From', value: '<alice@example.org>' }], body: new Uint8Array([0x61]) },
});
const deliver = async (r: DeliverRequest): Promise<DeliverOutcome> => {
  if (slow > 0) await new Promise((resolve) => setTimeout(resolve, slow));
  return accepted(r);
};
const accepted = (r: DeliverRequest): DeliverOutcome => ({
  recipients: (r.job.kind === 'deliver' ? r.job.recipients : [r.rcpt!]).map((rcpt) => ({
    rcpt,
    reply: { code: 250, enhanced: '2.0.0', params: { rcpt, id: `id-${rcpt}` }, text: '' },
  })),
});
const q = await Queue.open({ dir, deliver });
await q.add({ id: 'crash1', user: 'alice@example.org', recipients: ['bob@b.example'], message });
for (;;) {
  const s = await q.get('crash1');
  if (s?.done !== undefined) break;
  await new Promise((r) => setTimeout(r, 20));
}
await q.close();
process.stdout.write('finished\n');
