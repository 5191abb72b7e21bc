/**
 * Properties over generated framed messages (fast-check): framed → legacy is read back by
 * Python's email package as the framed message says (text, octets, shape, filenames), it
 * meets the wire rules for every peer, and legacyToFramed (Engineer A) gives the same
 * framed message back. Samples are drawn with a fixed seed and checked in one Python run
 * (a process per sample would be slow); a failure names the sample's index and seed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  formatDate,
  isContainerPart,
  type Field,
  type FramedMessage,
  type Part,
} from '../../../src/core/frame/index.ts';
import { prepareDisplayName } from '../../../src/core/address/index.ts';
import { framedToLegacy } from '../../../adapters/legacy/index.ts';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { PEERS, assertDecodedEqual, assertWireRules, pythonDecode } from './helpers.ts';

const SEED = Number(process.env.SEED ?? 20261129);

// Characters that stress the legacy encodings: specials, quotes, encoded-word syntax,
// Latin-1, CJK, astral, and runs of spaces.
const CHARS = [
  ...'abcXYZ019 .,;:"\\()[]<>@=?_-!#*\'/'.split(''),
  'é',
  'ü',
  'ß',
  '—',
  '“',
  '日',
  '本',
  '🎉',
  'Ω',
  '=?',
  '?=',
];
const textChar = fc.constantFrom(...CHARS);
/**
 * A field value: NFC, no edge spaces (docs/protocol.md §10.3), and no runs of
 * spaces: a legacy → framed conversion folds whitespace runs to one SP, so framed values
 * with runs are not in the round trip's domain (the fixture cases check runs with Python).
 */
const text = (max: number): fc.Arbitrary<string> =>
  fc
    .array(textChar, { minLength: 1, maxLength: max })
    .map((a) => a.join('').normalize('NFC').replace(/ +/g, ' ').trim())
    .filter((s) => s.length > 0);
// Prepared as the address section prepares names from legacy headers (runs of spaces
// become one): the framed messages a legacy conversion produces, which must round-trip.
const displayName = text(30)
  .map((s) => prepareDisplayName(s.replace(/[<>]/g, '')))
  .filter((s): s is string => s !== undefined);
const ADDRESSES = [
  'ann@example.org',
  'b.o.b+tag@example.com',
  'x@bücher.example',
  'zoë@example.org',
];
const mailbox = fc.record(
  { name: fc.option(displayName, { nil: undefined }), addr: fc.constantFrom(...ADDRESSES) },
  { requiredKeys: ['addr'] },
);
const mailboxList = fc
  .array(mailbox, { minLength: 1, maxLength: 3 })
  .map((l) =>
    l.map((m) => (m.name === undefined ? `<${m.addr}>` : `${m.name} <${m.addr}>`)).join(', '),
  );
const date = fc
  .tuple(fc.integer({ min: 0, max: 4_000_000_000 }), fc.integer({ min: -48, max: 56 }))
  .map(([s, q]) => formatDate(s * 1000, q * 15));

/** Bodies: text with CRLF, bare LF, long lines, 8-bit; or arbitrary octets. */
const textBody = fc
  .array(
    fc.oneof(
      text(20),
      fc.constant('\r\n'),
      fc.constant('\n'),
      fc.constant(' \r\n'),
      fc.constant('x'.repeat(1100)),
      fc.constant('.'),
    ),
    { maxLength: 12 },
  )
  .map((a) => new TextEncoder().encode(a.join('')));
const binBody = fc.uint8Array({ maxLength: 300 });

const f = (name: string, value: string): Field => ({ name, value });

const leafPart: fc.Arbitrary<Part> = fc.oneof(
  fc
    .record({
      sub: fc.constantFrom('plain', 'html'),
      body: textBody,
    })
    .map(({ sub, body }) => ({ fields: [f('Content-Type', `text/${sub}`)], body })),
  fc
    .record({
      type: fc.constantFrom('application/octet-stream', 'image/png', 'application/pdf'),
      disp: fc.option(fc.constantFrom('attachment', 'inline'), { nil: undefined }),
      name: fc.option(text(40), { nil: undefined }),
      body: binBody,
    })
    .map(({ type, disp, name, body }) => ({
      fields: [
        f('Content-Type', type),
        ...(disp === undefined ? [] : [f('Content-Disposition', disp)]),
        ...(name === undefined ? [] : [f('Content-Filename', name)]),
      ],
      body,
    })),
);

const messageFields = fc
  .record({
    from: mailboxList,
    to: fc.option(mailboxList, { nil: undefined }),
    subject: fc.option(text(120), { nil: undefined }),
    date: fc.option(date, { nil: undefined }),
    extra: fc.option(text(60), { nil: undefined }),
  })
  .map((r) => [
    f('From', r.from),
    ...(r.to === undefined ? [] : [f('To', r.to)]),
    ...(r.subject === undefined ? [] : [f('Subject', r.subject)]),
    ...(r.date === undefined ? [] : [f('Date', r.date)]),
    ...(r.extra === undefined ? [] : [f('X-Extra', r.extra)]),
  ]);

const { tree } = fc.letrec<{ tree: Part; message: Part }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafPart,
    fc
      .record({
        sub: fc.constantFrom('mixed', 'alternative', 'related'),
        children: fc.array(tie('tree'), { minLength: 1, maxLength: 3 }),
      })
      .map(({ sub, children }) => ({ fields: [f('Content-Type', `multipart/${sub}`)], children })),
    tie('message').map((m) => ({ fields: [f('Content-Type', 'message/nmtp')], children: [m] })),
  ),
  message: fc.tuple(messageFields, tie('tree')).map(([fields, body]) => withFields(body, fields)),
}));

/** Puts message fields before a part's own Content-* fields (the order A writes). */
function withFields(part: Part, fields: Field[]): Part {
  return isContainerPart(part)
    ? { fields: [...fields, ...part.fields], children: part.children }
    : { fields: [...fields, ...part.fields], body: part.body };
}

const messages = fc
  .tuple(messageFields, tree)
  .map(([fields, root]): FramedMessage => ({ trace: [], root: withFields(root, fields) }));

const SAMPLES = fc.sample(messages, { numRuns: Number(process.env.RUNS ?? 120), seed: SEED });

/** The framed tree without provenance and lengths (A adds Legacy-* each time). */
function comparable(p: Part): unknown {
  const fields = p.fields
    .filter((x) => !/^(legacy-|content-length$)/i.test(x.name))
    .map((x) => [x.name.toLowerCase(), x.value]);
  return isContainerPart(p)
    ? { fields, children: p.children.map(comparable) }
    : { fields, body: Buffer.from(p.body).toString('base64') };
}

function asciiAddresses(m: FramedMessage): FramedMessage {
  const fix = (p: Part): Part => {
    const fields = p.fields.map((x) => ({ name: x.name, value: x.value.replace(/zoë@/g, 'zoe@') }));
    return isContainerPart(p)
      ? { fields, children: p.children.map(fix) }
      : { fields, body: p.body };
  };
  return { trace: m.trace, root: fix(m.root) };
}

describe('framed → legacy properties (generated trees)', () => {
  for (const peer of PEERS) {
    const label = `${peer.smtputf8 ? 'SMTPUTF8' : 'no-SMTPUTF8'}+${peer.eightBitMime ? '8BITMIME' : '7bit'}`;
    it(`${SAMPLES.length} generated messages: wire rules, Python oracle, A round trip (${label})`, async () => {
      const outs: { i: number; msg: FramedMessage; out: Uint8Array }[] = [];
      SAMPLES.forEach((sample, i) => {
        // A UTF-8 local part has no legacy form without SMTPUTF8 (the unit tests check the
        // error): toward such a peer the samples use the ASCII twin of that address.
        const msg = peer.smtputf8 ? sample : asciiAddresses(sample);
        outs.push({ i, msg, out: framedToLegacy(msg, peer) });
      });
      const decoded = pythonDecode(outs.map((o) => o.out));
      for (const [k, { i, msg, out }] of outs.entries()) {
        const where = `sample ${i} (seed ${SEED})`;
        assertWireRules(out, peer);
        assertDecodedEqual(msg.root, decoded[k]!, peer, where);
        const again = await legacyToFramed(out, { gateway: 'gw.example.net', now: 0 });
        assert.deepEqual(comparable(again.message.root), comparable(msg.root), where);
      }
    });
  }
});
