/**
 * The README's "Two NMTP endpoints, no DNS server" walk-through, run exactly as written
 * (the lines between its two-endpoints markers, through bash from the repository's root),
 * only with ephemeral ports in place of the ones it names: two `nmtp serve` processes that
 * know each other through --key-record and --srv alone deliver alice's message — bob's copy
 * at once, carol's held, listed (`nmtp mailbox list`), shown deferred with its cookie, next
 * poll and expiry (`nmtp submission status`), approved, and accepted at the sender's next
 * poll. A README change that breaks the walk-through fails here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readmeSection } from '../support/readme.ts';

const walk = readmeSection('two-endpoints');
after(() => walk.cleanup());

test("the README's two-endpoint walk-through delivers with no DNS server", async () => {
  const { out, err, code } = await walk.run({
    ports: ['4125', '4126', '4587'],
    env: { NMTP_PASSWORD: '' },
    // The sender polls carol's cookie within the receiver's 5–60 s window.
    limitMs: 300_000,
  });
  assert.equal(code, 0, `${out}\n${err}`);
  assert.match(out, /^# private key \(PKCS#8 PEM, mode 0600\): org\.key$/m);
  assert.match(out, /^\S+ bob@example\.net accepted$/m);
  assert.match(
    out,
    /^\S+ carol@example\.net deferred cookie=([A-Za-z0-9_-]+) next-poll=\S+Z expires=\S+Z$/m,
  );
  const cookie = /carol@example\.net deferred cookie=([A-Za-z0-9_-]+)/.exec(out)![1]!;
  assert.match(
    out,
    new RegExp(`^${cookie} deferred carol@example\\.net from=example\\.org .* held$`, 'm'),
  );
  assert.match(out, new RegExp(`^${cookie} accepted id=`, 'm'));
  assert.match(out, /^\S+ carol@example\.net accepted$/m);
  // `ls mail-b/new`: bob's copy and carol's.
  assert.equal(out.match(/^[A-Za-z0-9_-]+\.nmtp$/gm)?.length, 2, out);
});
