/**
 * Replays every transcript in test/vectors/transport/ through the codec and the server
 * reducers, with no sockets, and asserts the exact octets the server sent: whole, line by
 * line, and (for the richest transcripts) split at every possible point. Also checks that
 * the transcripts quoted in docs/protocol.md are the vector files, verbatim.
 */
import { test } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { concat, lineBytes, loadTranscripts, ServerRun, type Transcript } from './transcript.ts';

const transcripts = loadTranscripts();

function clientBytes(t: Transcript): Uint8Array {
  return concat(t.lines.filter((l) => l.who === 'C').map(lineBytes));
}
function serverBytes(t: Transcript): Uint8Array {
  return concat(t.lines.filter((l) => l.who === 'S').map(lineBytes));
}
const show = (b: Uint8Array): string => new TextDecoder().decode(b);

function runWhole(t: Transcript, pieces: readonly Uint8Array[]): Uint8Array {
  const run = new ServerRun(t.directives);
  const out = [run.takeGreeting()];
  for (const p of pieces) out.push(run.feed(p));
  out.push(run.end());
  return concat(out);
}

test('there are transcripts for every feature', () => {
  const names = transcripts.map((t) => t.name);
  for (const must of [
    'transfer-hello-proof.txt',
    'transfer-csv-fail-reported.txt',
    'transfer-csv-fail-required.txt',
    'transfer-multi-recipient.txt',
    'transfer-view-headers.txt',
    'transfer-view-digest.txt',
    'transfer-view-signers.txt',
    'transfer-view-text.txt',
    'transfer-deferred-status-bigger-view.txt',
    'transfer-giveup.txt',
    'transfer-redirect.txt',
    'transfer-redirect-failed.txt',
    'transfer-prove.txt',
    'transfer-prove-no-key.txt',
    'transfer-error-prove.txt',
    'submission-plain-send-status.txt',
    'submission-key-sign-certify.txt',
    'transfer-error-unknown-command.txt',
    'transfer-error-out-of-order.txt',
    'transfer-error-overlong-line.txt',
    'transfer-error-lying-chunk.txt',
    'transfer-error-foreign-cookie.txt',
    'transfer-error-wrong-key.txt',
    'transfer-error-replayed-challenge.txt',
    'transfer-eager.txt',
    'transfer-eager-refused.txt',
    'transfer-error-eager-too-large.txt',
    'transfer-error-view-invalid.txt',
    'transfer-cookie-binding.txt',
  ]) {
    assert.ok(names.includes(must), must);
  }
});

for (const t of transcripts) {
  test(`transcript ${t.name}: exact server octets (whole input)`, () => {
    assert.equal(show(runWhole(t, [clientBytes(t)])), show(serverBytes(t)));
  });

  test(`transcript ${t.name}: each server line follows the client line that caused it`, () => {
    const run = new ServerRun(t.directives);
    let expected: Uint8Array[] = [];
    let got = run.takeGreeting();
    for (const l of t.lines) {
      if (l.who === 'S') {
        expected.push(lineBytes(l));
        continue;
      }
      assert.equal(show(got), show(concat(expected)), `before ${l.text.slice(0, 60)}`);
      expected = [];
      got = run.feed(lineBytes(l));
    }
    got = concat([got, run.end()]);
    assert.equal(show(got), show(concat(expected)));
  });
}

const SPLIT = [
  'transfer-multi-recipient.txt',
  'transfer-deferred-status-bigger-view.txt',
  'submission-key-sign-certify.txt',
  'transfer-error-lying-chunk.txt',
  'transfer-error-out-of-order.txt',
  'transfer-error-prove.txt',
  'transfer-eager.txt',
  'transfer-eager-refused.txt',
];
for (const name of SPLIT) {
  test(`transcript ${name}: every 2-way split of the client octets gives the same server octets`, () => {
    const t = transcripts.find((x) => x.name === name)!;
    const input = clientBytes(t);
    const want = show(serverBytes(t));
    for (let i = 0; i <= input.length; i++) {
      const got = show(runWhole(t, [input.subarray(0, i), input.subarray(i)]));
      if (got !== want) assert.equal(got, want, `split at ${i}`);
    }
  });
}

test('the transcripts in docs/protocol.md are the vector files, verbatim', () => {
  const spec = readFileSync(
    fileURLToPath(new URL('../../../docs/protocol.md', import.meta.url)),
    'utf8',
  );
  const re = /<!-- transcript: ([a-z0-9-]+\.txt) -->\n```text\n([\s\S]*?)```\n/g;
  let count = 0;
  for (const m of spec.matchAll(re)) {
    const t = transcripts.find((x) => x.name === m[1]);
    assert.ok(t, `spec quotes ${m[1]}, which is not a vector file`);
    assert.equal(m[2], t.text, `spec copy of ${m[1]} differs from the vector file`);
    count++;
  }
  assert.ok(count >= 5, `expected at least 5 transcripts in the spec, found ${count}`);
});

test('random chunkings of the client octets give the same server octets (fast-check)', () => {
  for (const name of ['transfer-multi-recipient.txt', 'submission-plain-send-status.txt']) {
    const t = transcripts.find((x) => x.name === name)!;
    const input = clientBytes(t);
    const want = show(serverBytes(t));
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: input.length }), { maxLength: 30 }),
        (cuts) => {
          const points = [...new Set(cuts)].sort((a, b) => a - b);
          const pieces: Uint8Array[] = [];
          let prev = 0;
          for (const p of [...points, input.length]) {
            pieces.push(input.subarray(prev, p));
            prev = p;
          }
          return show(runWhole(t, pieces)) === want;
        },
      ),
      { numRuns: 200 },
    );
  }
});
