/**
 * Properties over generated messages (fast-check): decode(encode(tree)) == tree,
 * encode(decode(bytes)) == bytes, and the events do not depend on how input is chunked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage,
  encodeMessage,
  isContainerPart,
  type Field,
  type FramedMessage,
  type Part,
} from '../../../src/core/frame/index.ts';
import { run, splitAt } from './helpers.ts';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Any Unicode text made into a valid value: controls dropped, NFC, no edge spaces. */
const value = fc
  .string({ unit: 'grapheme', maxLength: 40 })
  .map((s) =>
    s
      .replace(CONTROL, '')
      .normalize('NFC')
      .replace(/^ +| +$/g, ''),
  )
  .filter((s) => s.normalize('NFC') === s && !s.startsWith(' ') && !s.endsWith(' '));

/** Field names that are not structured (their values are free text). */
const freeName = fc
  .stringMatching(/^[A-Za-z0-9-]{1,20}$/)
  .filter(
    (n) =>
      ![
        'content-length',
        'content-type',
        'date',
        'from',
        'sender',
        'reply-to',
        'to',
        'cc',
      ].includes(n.toLowerCase()),
  )
  .map((n) => `X-${n}`);

// fc.record builds null-prototype objects; the decoder returns plain ones.
const plainField = ({ name, value }: Field): Field => ({ name, value });
const fields = fc.array(fc.record({ name: freeName, value }).map(plainField), { maxLength: 6 });
const body = fc.uint8Array({ maxLength: 200 });

const part: fc.Arbitrary<Part> = fc.letrec<{ part: Part }>((tie) => ({
  part: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(fields, body).map(([f, b]): Part => ({ fields: f, body: b })),
    fc.tuple(fields, fc.array(tie('part'), { maxLength: 4 })).map(([f, children]): Part => ({
      fields: [{ name: 'Content-Type', value: 'multipart/mixed' }, ...f],
      children,
    })),
    fc.tuple(fields, tie('part')).map(([f, child]): Part => ({
      fields: [...f, { name: 'content-type', value: 'message/nmtp' }],
      children: [child],
    })),
  ),
})).part;

const message: fc.Arbitrary<FramedMessage> = fc.record({
  trace: fc.array(
    fc.record({ name: fc.constantFrom('Trace', 'Signature', 'X-Relay'), value }).map(plainField),
    { maxLength: 4 },
  ),
  root: part,
});

/** The tree as the decoder returns it: every part gains its computed Content-Length first. */
function withLengths(p: Part): Part {
  const bytesOf = (q: Part): number => encodeMessage({ trace: [], root: q }).length - 10;
  const children = isContainerPart(p) ? p.children.map(withLengths) : undefined;
  const length = isContainerPart(p)
    ? p.children.reduce((n, c) => n + bytesOf(c), 0)
    : p.body.length;
  const f = [{ name: 'Content-Length', value: String(length) }, ...p.fields];
  return children === undefined
    ? { fields: f, body: (p as { body: Uint8Array }).body }
    : { fields: f, children };
}

test('decode(encode(tree)) == tree (with computed lengths)', () => {
  fc.assert(
    fc.property(message, (m) => {
      const d = decodeMessage(encodeMessage(m), { maxDepth: 1000, maxParts: 100_000 });
      assert.deepEqual(d.trace, m.trace);
      assert.deepEqual(d.root, withLengths(m.root));
    }),
    { numRuns: 300 },
  );
});

test('encode(decode(bytes)) == bytes', () => {
  fc.assert(
    fc.property(message, (m) => {
      const bytes = encodeMessage(m);
      const again = encodeMessage(decodeMessage(bytes, { maxDepth: 1000, maxParts: 100_000 }));
      assert.deepEqual(Buffer.from(again), Buffer.from(bytes));
    }),
    { numRuns: 300 },
  );
});

test('random chunkings give the same events as one chunk', () => {
  fc.assert(
    fc.property(
      message.map((m) => encodeMessage(m)),
      fc.array(fc.nat(), { maxLength: 12 }),
      (bytes, raw) => {
        const cuts = [...new Set(raw.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const limits = { maxDepth: 1000, maxParts: 100_000 };
        assert.deepEqual(run(splitAt(bytes, cuts), limits), run([bytes], limits));
      },
    ),
    { numRuns: 300 },
  );
});

test('random corruption never crashes: a coded error or a valid decode', () => {
  fc.assert(
    fc.property(
      message.map((m) => encodeMessage(m)),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      (bytes, at, byte, raw) => {
        const copy = Uint8Array.from(bytes);
        copy[at % copy.length] = byte;
        const cuts = [...new Set(raw.map((c) => c % (copy.length + 1)))].sort((a, b) => a - b);
        const whole = run([copy]);
        // run() rethrows anything that is not an NmtpError, so reaching here means no crash.
        assert.deepEqual(run(splitAt(copy, cuts)), whole);
      },
    ),
    { numRuns: 500 },
  );
});
