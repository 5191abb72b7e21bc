/** Builder → parser: what we write, we (and a second reader) read back identically. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, parseDsn } from '../../../adapters/dsn/index.ts';
import { reportAddress } from '../../../src/core/delivery/index.ts';
import { CASES, fixedSources } from './cases.ts';

const second = (d: Date | undefined): string | undefined =>
  d === undefined ? undefined : new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString();

for (const c of CASES) {
  test(`round trip: ${c.name}`, () => {
    const built = buildDsn(c.input, fixedSources());
    const parsed = parseDsn(built.bytes);
    assert.deepEqual(parsed.warnings, []);
    assert.equal(parsed.envid, c.input.envid);
    assert.equal(parsed.reportingMta, c.input.reportingMta);
    assert.equal(parsed.receivedFromMta, c.input.receivedFromMta);
    assert.equal(parsed.arrivalDate?.toISOString(), second(c.input.arrivalDate));
    assert.equal(parsed.global, built.global);
    assert.equal(parsed.outcomes.length, built.reported.length);
    built.reported.forEach((want, i) => {
      const got = parsed.outcomes[i]!;
      assert.equal(got.recipient.legacy, reportAddress(want.recipient));
      assert.equal(got.originalRecipient?.address, want.originalRecipient?.address);
      assert.equal(got.action, want.action);
      assert.equal(got.status, want.status);
      assert.equal(got.remoteMta, want.remoteMta);
      assert.deepEqual(got.diagnostic, want.diagnostic);
      assert.equal(got.lastAttempt?.toISOString(), second(want.lastAttempt));
      assert.equal(got.willRetryUntil?.toISOString(), second(want.willRetryUntil));
      assert.equal(got.finalLogId, want.finalLogId);
    });
    if (c.input.original !== undefined)
      assert.match(parsed.returned?.messageId ?? '', /^<.+@legacy\.example>$/);
  });
}
