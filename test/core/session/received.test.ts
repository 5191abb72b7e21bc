/**
 * The Received trace field (src/core/session/received.ts, docs/protocol.md §60.8.4):
 * the vectors of test/vectors/transport/received.json, a round trip over generated
 * records, and the field inside a message (appended last, message still decodes, content
 * digest unchanged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  appendTraceField,
  decodeMessage,
  encodeMessage,
  traceInsertion,
} from '../../../src/core/frame/index.ts';
import {
  cleanNote,
  formatReceived,
  NOTE_MAX,
  parseReceived,
  type ReceivedRecord,
} from '../../../src/core/session/index.ts';
import { codeOf } from '../../support/code-of.ts';

interface Vectors {
  valid: { id: string; record: ReceivedRecord; value: string }[];
  notes: { id: string; note: string; printed: string | null }[];
  invalid: { id: string; value: string; why: string; code?: string }[];
}
const vectors = JSON.parse(
  readFileSync(new URL('../../vectors/transport/received.json', import.meta.url), 'utf8'),
) as Vectors;

for (const v of vectors.valid) {
  test(`Received vector ${v.id}: prints exactly, parses back`, () => {
    assert.equal(formatReceived(v.record), v.value);
    assert.deepEqual(parseReceived(v.value), v.record);
  });
}

for (const v of vectors.notes) {
  test(`Received note ${v.id}`, () => {
    const value = formatReceived({ ...vectors.valid[0]!.record, verdict: 'good', note: v.note });
    const back = parseReceived(value);
    assert.equal(back.note ?? null, v.printed);
    assert.equal(cleanNote(v.note), v.printed ?? '');
  });
}

for (const v of vectors.invalid) {
  test(`Received invalid ${v.id} (${v.why})`, () => {
    assert.equal(
      codeOf(() => parseReceived(v.value)),
      v.code ?? 'NMTP_ERR_FRAME_FIELD_SYNTAX',
    );
  });
}

test('formatReceived refuses values that would not parse back', () => {
  const r = vectors.valid[0]!.record;
  for (const bad of [
    { ...r, rcpt: 'a b@example.net' },
    { ...r, domain: '' },
    { ...r, ip: 'x\ny' },
  ]) {
    assert.equal(
      codeOf(() => formatReceived(bad)),
      'NMTP_ERR_INVALID_ARGUMENT',
    );
  }
  // An address-less client is written as "unknown".
  assert.equal(parseReceived(formatReceived({ ...r, ip: '' })).ip, 'unknown');
});

test('Received: any record round-trips; the value is a valid field value', () => {
  const word = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 30 })
    .map((s) => s.replace(/[\s\p{Cc}]/gu, '_').normalize('NFC'))
    .filter((s) => s.length > 0 && !/[\s\p{Cc}]/u.test(s));
  fc.assert(
    fc.property(
      fc.record(
        {
          rcpt: word,
          at: fc.integer({ min: 0, max: 253402300799 }),
          domain: word,
          ip: word,
          proof: fc.constantFrom('pass', 'fail', 'temperror'),
          csv: fc.constantFrom('pass', 'fail', 'none', 'temperror', 'permerror'),
          verdict: fc.constantFrom('good', 'neutral', 'bad'),
          note: fc.string({ unit: 'grapheme', maxLength: 300 }),
        },
        { requiredKeys: ['rcpt', 'at', 'domain', 'ip', 'proof', 'csv'] },
      ),
      (r) => {
        const value = formatReceived(r as ReceivedRecord);
        const back = parseReceived(value);
        const { note: raw, ...rest } = r;
        const note = raw === undefined ? '' : cleanNote(raw);
        assert.deepEqual(back, note === '' ? rest : { ...rest, note });
        assert.ok([...(back.note ?? '')].length <= NOTE_MAX);
        // Inside a message it is a trace field like any other.
        const m = encodeMessage({ trace: [], root: { fields: [], body: new Uint8Array(0) } });
        const d = decodeMessage(appendTraceField(m, { name: 'Received', value }));
        assert.deepEqual(d.trace, [{ name: 'Received', value }]);
      },
    ),
    { numRuns: 300 },
  );
});

test('traceInsertion works on a prefix holding the trace block, with the whole length for the size limit', () => {
  const m = encodeMessage({
    trace: [{ name: 'Trace', value: 'by a' }],
    root: { fields: [{ name: 'Subject', value: 'x' }], body: new Uint8Array(1000) },
  });
  const field = { name: 'Received', value: vectors.valid[0]!.value };
  const whole = traceInsertion(m, field);
  const head = traceInsertion(m.subarray(0, 40), field, undefined, m.length);
  assert.equal(head.at, whole.at);
  assert.deepEqual(head.line, whole.line);
  assert.equal(
    codeOf(() =>
      traceInsertion(m.subarray(0, 40), field, { maxTotalBytes: m.length + 10 }, m.length),
    ),
    'NMTP_ERR_FRAME_TOO_LARGE',
  );
  // A prefix that ends inside the trace block cannot say where it ends.
  assert.equal(
    codeOf(() => traceInsertion(m.subarray(0, 12), field)),
    'NMTP_ERR_FRAME_FIELD_SYNTAX',
  );
  const copy = appendTraceField(m, field);
  assert.deepEqual(decodeMessage(copy).contentDigest, decodeMessage(m).contentDigest);
});
