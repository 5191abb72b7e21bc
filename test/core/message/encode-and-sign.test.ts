/**
 * encodeAndSign (the gateway's signing path, no second decode) against
 * signMessage(encodeMessage(…)): over generated messages, limits and mailboxes, with the
 * salt fixed, either both give exactly the same bytes or both refuse — with the same code
 * whenever the message breaks one rule only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  encodeMessage,
  type Field,
  type FrameLimits,
  type FramedMessage,
  type Part,
} from '../../../src/core/frame/index.ts';
import { keyPairFromSeed } from '../../../src/core/keys/index.ts';
import {
  encodeAndSign,
  signMessage,
  type SignMessageOptions,
} from '../../../src/core/message/index.ts';

const seed = (label: string): Uint8Array =>
  new Uint8Array(createHash('sha256').update(label).digest());
const key = keyPairFromSeed(seed('gateway key'));
const T0 = 1_795_000_000;

const opts = (o: Partial<SignMessageOptions> = {}): SignMessageOptions => ({
  key,
  domain: 'gw.example',
  selector: 's1',
  recipients: ['bob@bücher.example'],
  signedAt: T0,
  expiresAt: T0 + 600,
  salt: seed('salt').subarray(0, 16),
  ...o,
});

type Outcome = { bytes: string } | { code: string };
const outcome = (f: () => Uint8Array): Outcome => {
  try {
    return { bytes: Buffer.from(f()).toString('hex') };
  } catch (e) {
    if (e instanceof NmtpError) return { code: e.code };
    throw e;
  }
};
const slow = (m: FramedMessage, o: SignMessageOptions): Outcome =>
  outcome(() => signMessage(encodeMessage(m), o));
const fast = (m: FramedMessage, o: SignMessageOptions): Outcome =>
  outcome(() => encodeAndSign(m, o));

// fc.record builds null-prototype objects; plain ones are what callers pass.
const plain = ({ name, value }: Field): Field => ({ name, value });
const text = fc.stringMatching(/^[A-Za-z0-9äöü€]([A-Za-z0-9 äöü€]{0,30}[A-Za-z0-9äöü€])?$/);
/** Mailboxes: wire-form ones, and ones signMessage refuses (not canonical, bad names). */
const mailbox = fc.constantFrom(
  '<zoë@example.org>',
  'Zoë Ünal <zoë@example.org>',
  'Bob <bob@xn--bcher-kva.example>, <carol@relay.example>',
  '<bob@bücher.example>',
);
const badMailbox = fc.constantFrom(
  '<a@EXAMPLE.org>',
  'Evil\u202E <ann@example.org>',
  '<ann@[127.0.0.1]>',
  '<ann@localhost>',
);
const field = (address: fc.Arbitrary<string>): fc.Arbitrary<Field> =>
  fc.oneof(
    fc.record({ name: fc.constantFrom('Subject', 'X-Note', 'Message-Id'), value: text }),
    fc.record({ name: fc.constantFrom('From', 'To', 'Cc', 'Reply-To'), value: address }),
  );

const partOf = (address: fc.Arbitrary<string>): fc.Arbitrary<Part> => {
  // One of each name: a repeated From is refused by both, which says little.
  const fields = fc.uniqueArray(field(address).map(plain), {
    selector: (f) => f.name.toLowerCase(),
    maxLength: 4,
  });
  return fc.letrec<{ part: Part }>((tie) => ({
    part: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.tuple(fields, fc.uint8Array({ maxLength: 120 })).map(([f, b]): Part => ({
        fields: f,
        body: b,
      })),
      fc.tuple(fields, fc.array(tie('part'), { maxLength: 3 })).map(([f, children]): Part => ({
        fields: [{ name: 'Content-Type', value: 'multipart/mixed' }, ...f],
        children,
      })),
      fc.tuple(fields, tie('part')).map(([f, child]): Part => ({
        fields: [...f, { name: 'Content-Type', value: 'message/nmtp' }],
        children: [child],
      })),
    ),
  })).part;
};

const messageOf = (address: fc.Arbitrary<string>): fc.Arbitrary<FramedMessage> =>
  fc.record({
    trace: fc.array(
      fc
        .record({
          name: fc.constantFrom('Trace', 'Certificate', 'X-Relay'),
          value: text,
        })
        .map(plain),
      { maxLength: 3 },
    ),
    root: partOf(address),
  });

/** Small enough to be met often; the Signature line itself needs a few hundred octets. */
const limits: fc.Arbitrary<Partial<FrameLimits>> = fc.record(
  {
    maxLineBytes: fc.integer({ min: 100, max: 800 }),
    maxFields: fc.integer({ min: 2, max: 8 }),
    maxHeaderBytes: fc.integer({ min: 200, max: 2000 }),
    maxDepth: fc.integer({ min: 1, max: 6 }),
    maxParts: fc.integer({ min: 2, max: 20 }),
    maxTotalBytes: fc.integer({ min: 300, max: 8000 }),
  },
  { requiredKeys: [] },
);

const user = {
  address: 'zoë@example.org',
  certId: '0123456789abcdef0123456789abcdef',
  certificate: 'v=1; a certificate value',
};

test('encodeAndSign gives signMessage(encodeMessage(m)) exactly, or refuses when it does', () => {
  fc.assert(
    fc.property(
      messageOf(fc.oneof({ weight: 4, arbitrary: mailbox }, { weight: 1, arbitrary: badMailbox })),
      fc.option(limits, { nil: undefined }),
      fc.boolean(),
      (m, l, withUser) => {
        const o = opts({
          ...(l === undefined ? {} : { limits: l }),
          ...(withUser ? { user } : {}),
        });
        const a = slow(m, o);
        const b = fast(m, o);
        // Several broken rules at once: each may name another one first.
        if ('code' in a && 'code' in b) return;
        assert.deepEqual(b, a);
      },
    ),
    { numRuns: 400 },
  );
});

test('with at most one broken mailbox and the default limits, the same bytes or the same code', () => {
  fc.assert(
    fc.property(
      messageOf(mailbox),
      fc.option(badMailbox, { nil: undefined }),
      fc.boolean(),
      (m, bad, withUser) => {
        const root: Part =
          bad === undefined
            ? m.root
            : { ...m.root, fields: [...m.root.fields, { name: 'To', value: bad }] };
        const msg = { trace: m.trace, root };
        const o = opts(withUser ? { user } : {});
        const a = slow(msg, o);
        assert.deepEqual(fast(msg, o), a);
        if (bad !== undefined) assert.ok('code' in a, 'a broken mailbox is refused');
      },
    ),
    { numRuns: 300 },
  );
});

test("each limit alone: the decoder's code", () => {
  const leaf = (fields: Field[], n = 10): Part => ({ fields, body: new Uint8Array(n) });
  const nest = (depth: number): Part =>
    depth === 0
      ? leaf([])
      : { fields: [{ name: 'Content-Type', value: 'message/nmtp' }], children: [nest(depth - 1)] };
  const many = (n: number): Field[] =>
    Array.from({ length: n }, (_, i) => ({ name: `X-F${i}`, value: 'v' }));
  const cases: [string, FramedMessage, Partial<FrameLimits>][] = [
    ['NMTP_ERR_FRAME_TOO_MANY_FIELDS', { trace: [], root: leaf(many(3)) }, { maxFields: 3 }],
    ['NMTP_ERR_FRAME_TOO_MANY_FIELDS', { trace: many(4), root: leaf([]) }, { maxFields: 3 }],
    [
      'NMTP_ERR_FRAME_LINE_TOO_LONG',
      { trace: [], root: leaf([{ name: 'X-A', value: 'v'.repeat(60) }]) },
      { maxLineBytes: 40 },
    ],
    [
      'NMTP_ERR_FRAME_LINE_TOO_LONG',
      { trace: [{ name: 'Trace', value: 'v'.repeat(60) }], root: leaf([]) },
      { maxLineBytes: 40 },
    ],
    [
      'NMTP_ERR_FRAME_HEADER_TOO_LARGE',
      { trace: [], root: leaf(many(10)) },
      { maxHeaderBytes: 60 },
    ],
    [
      'NMTP_ERR_FRAME_HEADER_TOO_LARGE',
      { trace: many(10), root: leaf([]) },
      { maxHeaderBytes: 60 },
    ],
    ['NMTP_ERR_FRAME_TOO_DEEP', { trace: [], root: nest(3) }, { maxDepth: 2 }],
    ['NMTP_ERR_FRAME_TOO_MANY_PARTS', { trace: [], root: nest(3) }, { maxParts: 3 }],
    [
      'NMTP_ERR_FRAME_LENGTH_OVER_LIMIT',
      { trace: [], root: leaf([], 500) },
      { maxTotalBytes: 400 },
    ],
    ['NMTP_ERR_FRAME_TOO_LARGE', { trace: many(20), root: leaf([]) }, { maxTotalBytes: 100 }],
  ];
  for (const [code, m, l] of cases) {
    const o = opts({ limits: l });
    assert.deepEqual(slow(m, o), { code }, `signMessage, ${code} ${JSON.stringify(l)}`);
    assert.deepEqual(fast(m, o), { code }, `encodeAndSign, ${code} ${JSON.stringify(l)}`);
    // With the limits raised both sign, identically.
    const wider = Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v * 100]));
    const ok = opts({ limits: wider });
    assert.ok('bytes' in slow(m, ok));
    assert.deepEqual(fast(m, ok), slow(m, ok));
  }
});

test("at each limit's edge: signs at the least value signMessage takes, refuses below it", () => {
  const body = new Uint8Array(300);
  // Content lines longer than the Signature line, so the content decides maxLineBytes.
  const long = (n: number): Field => ({ name: 'X-Long', value: 'v'.repeat(n) });
  const messages: FramedMessage[] = [
    { trace: [{ name: 'Trace', value: 'hop' }], root: { fields: [long(700)], body } },
    {
      trace: [],
      root: {
        fields: [
          { name: 'Content-Type', value: 'multipart/mixed' },
          { name: 'X-A', value: 'a' },
        ],
        children: [
          { fields: [long(650), { name: 'To', value: '<bob@bücher.example>' }], body },
          {
            fields: [{ name: 'Content-Type', value: 'message/nmtp' }],
            children: [
              { fields: [long(800), long(10)].map((f, i) => ({ ...f, name: `X-${i}` })), body },
            ],
          },
        ],
      },
    },
  ];
  const keys = [
    'maxLineBytes',
    'maxFields',
    'maxHeaderBytes',
    'maxDepth',
    'maxParts',
    'maxTotalBytes',
  ] as const;
  for (const m of messages) {
    for (const k of keys) {
      const at = (v: number): SignMessageOptions => opts({ limits: { [k]: v } });
      // The least value signMessage accepts (it is monotone in each limit).
      let lo = k === 'maxDepth' ? 0 : 1;
      let hi = 1 << 20;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if ('bytes' in slow(m, at(mid))) hi = mid;
        else lo = mid + 1;
      }
      assert.deepEqual(fast(m, at(lo)), slow(m, at(lo)), `${k} = ${lo}`);
      assert.ok('bytes' in fast(m, at(lo)));
      if (lo > (k === 'maxDepth' ? 0 : 1)) {
        assert.deepEqual(fast(m, at(lo - 1)), slow(m, at(lo - 1)), `${k} = ${lo - 1}`);
      }
    }
  }
});
