/**
 * Decoder behaviour beyond the vectors: event shapes, error state, skipping and random
 * access, trace appending, hostile inputs, and chunking independence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  appendTraceField,
  decodeMessage,
  encodeMessage,
  encodePart,
  encodeHeader,
  encodePreamble,
  SENTINEL_BYTES,
  locatePart,
  locatePath,
  type FramedMessage,
} from '../../../src/core/frame/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { run, splitAt, text } from './helpers.ts';
import { codeOf } from '../../support/code-of.ts';

const sample: FramedMessage = {
  trace: [{ name: 'Trace', value: 'by mx.example.org' }],
  root: {
    fields: [
      { name: 'From', value: 'Ann <ann@example.org>' },
      { name: 'Content-Type', value: 'multipart/mixed' },
    ],
    children: [
      { fields: [{ name: 'Subject', value: 'één' }], body: text('hello\r\n') },
      {
        fields: [{ name: 'Content-Type', value: 'multipart/alternative' }],
        children: [
          { fields: [], body: text('plain') },
          { fields: [{ name: 'Content-Type', value: 'text/html' }], body: text('<b>x</b>') },
        ],
      },
      {
        fields: [{ name: 'Content-Type', value: 'application/octet-stream' }],
        body: new Uint8Array([0, 13, 10, 13, 10, 255]),
      },
    ],
  },
};
const sampleBytes = encodeMessage(sample);

test('events of a multipart message, in order, with paths, depths and offsets', () => {
  const r = run([sampleBytes]);
  assert.ok(r.ok);
  const summary = r.events.map((e) => {
    // run() merges body events and gives their path as "1.0"; other events keep arrays.
    const ev = e as { type: string; path?: number[] | string };
    if (ev.path === undefined) return ev.type;
    return `${ev.type} ${typeof ev.path === 'string' ? ev.path : ev.path.join('.')}`;
  });
  assert.deepEqual(summary, [
    'version',
    'trace-field',
    'part-start ',
    'part-start 0',
    'body 0',
    'part-end 0',
    'part-start 1',
    'part-start 1.0',
    'body 1.0',
    'part-end 1.0',
    'part-start 1.1',
    'body 1.1',
    'part-end 1.1',
    'part-end 1',
    'part-start 2',
    'body 2',
    'part-end 2',
    'part-end ',
    'end',
  ]);
  const end = r.events.at(-1) as { contentDigest: string; totalBytes: number };
  const rootStart = 8 + 'Trace: by mx.example.org\r\n'.length + 2;
  const expected = createHash('sha256').update(sampleBytes.subarray(rootStart)).digest('hex');
  assert.equal(end.contentDigest, expected);
  assert.equal(end.totalBytes, sampleBytes.length);
});

test('body events are views of the pushed chunk, not copies', () => {
  const d = new FrameDecoder();
  d.push(sampleBytes);
  for (let ev = d.next(); ev !== END && ev !== NEED_MORE; ev = d.next()) {
    if (ev.type === 'body') assert.equal(ev.bytes.buffer, sampleBytes.buffer);
  }
});

test('every 2-way split and byte-by-byte feeding give identical events', () => {
  const whole = run([sampleBytes]);
  for (let i = 0; i <= sampleBytes.length; i++) {
    assert.deepEqual(run(splitAt(sampleBytes, [i])), whole, `split at ${i}`);
  }
  const bytes = [...sampleBytes].map((b) => new Uint8Array([b]));
  assert.deepEqual(run(bytes), whole);
});

test('after an error every call throws the same error', () => {
  const d = new FrameDecoder();
  d.push(text('NMTP/2\r\n'));
  let first: unknown;
  try {
    d.next();
  } catch (e) {
    first = e;
  }
  assert.ok(first instanceof NmtpError);
  assert.equal(first.code, 'NMTP_ERR_FRAME_VERSION');
  assert.equal(first.details.offset, 5);
  for (const call of [() => d.next(), () => d.push(text('x')), () => d.finish()]) {
    assert.throws(call, (e) => e === first);
  }
  assert.equal(d.failure, first);
});

test('finish() reports truncation with the offset where input ended', () => {
  const cut = sampleBytes.subarray(0, 100);
  const d = new FrameDecoder();
  d.push(cut);
  while (d.next() !== NEED_MORE);
  assert.throws(
    () => d.finish(),
    (e) =>
      e instanceof NmtpError && e.code === 'NMTP_ERR_FRAME_TRUNCATED' && e.details.offset === 100,
  );
});

test('finish() before draining is a usage error, not a verdict', () => {
  const d = new FrameDecoder();
  d.push(sampleBytes);
  assert.equal(
    codeOf(() => d.finish()),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('bytes pushed after the end are trailing bytes', () => {
  const d = new FrameDecoder();
  d.push(sampleBytes);
  let ev = d.next();
  while (ev !== END) ev = d.next();
  d.push(text('\r\n'));
  assert.equal(
    codeOf(() => d.next()),
    'NMTP_ERR_FRAME_TRAILING_BYTES',
  );
});

test('skipPart() skips a subtree without events but keeps the digest and checks', () => {
  const d = new FrameDecoder();
  d.push(sampleBytes);
  const seen: string[] = [];
  let digest: Uint8Array | undefined;
  for (let ev = d.next(); ev !== END && ev !== NEED_MORE; ev = d.next()) {
    if ('path' in ev) seen.push(`${ev.type} ${ev.path.join('.')}`);
    if (ev.type === 'part-start' && ev.path.join('.') === '1') d.skipPart();
    if (ev.type === 'end') digest = ev.contentDigest;
  }
  assert.ok(!seen.some((s) => s.includes('1.')), seen.join(','));
  assert.ok(seen.includes('part-end 1'));
  assert.deepEqual(digest, decodeMessage(sampleBytes).contentDigest);
  // Skipping a part whose sentinel is wrong still fails.
  const bad = encodeMessage({ trace: [], root: { fields: [], body: text('abc') } });
  bad[bad.length - 1] = 0x41;
  const d2 = new FrameDecoder();
  d2.push(bad);
  d2.next(); // version
  d2.next(); // part-start
  d2.skipPart();
  assert.equal(
    codeOf(() => d2.next()),
    'NMTP_ERR_FRAME_SENTINEL',
  );
  assert.equal(
    codeOf(() => new FrameDecoder().skipPart()),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('locatePart and locatePath find parts by walking lengths', () => {
  const third = locatePart(sampleBytes, 4)!; // preorder: root, 0, 1, 1.0, 1.1, 2
  assert.deepEqual(third.path, [1, 1]);
  const body = sampleBytes.subarray(third.bodyOffset, third.bodyOffset + third.contentLength);
  assert.equal(Buffer.from(body).toString(), '<b>x</b>');
  const last = locatePath(sampleBytes, [2])!;
  assert.deepEqual(
    [...sampleBytes.subarray(last.bodyOffset, last.bodyOffset + last.contentLength)],
    [0, 13, 10, 13, 10, 255],
  );
  assert.equal(last.end, sampleBytes.length - 4); // the root's sentinel follows
  assert.equal(locatePart(sampleBytes, 6), undefined);
  assert.equal(locatePath(sampleBytes, [3]), undefined);
  assert.deepEqual(locatePath(sampleBytes, [])?.path, []);
  // A body is never read: a message whose body bytes are garbage still locates later parts
  // as long as lengths and sentinels hold (bodies are opaque by definition).
  assert.equal(locatePart(sampleBytes, 0)?.offset, 8 + 'Trace: by mx.example.org\r\n'.length + 2);
});

test('appendTraceField inserts at the end of the trace block and changes nothing else', () => {
  const appended = appendTraceField(sampleBytes, { name: 'Signature', value: 'v=1; b=x' });
  const line = text('Signature: v=1; b=x\r\n');
  const at = 8 + 'Trace: by mx.example.org\r\n'.length;
  assert.deepEqual(appended.subarray(0, at), sampleBytes.subarray(0, at));
  assert.deepEqual(appended.subarray(at, at + line.length), line);
  assert.deepEqual(appended.subarray(at + line.length), sampleBytes.subarray(at));
  const before = decodeMessage(sampleBytes);
  const after = decodeMessage(appended);
  assert.deepEqual(after.contentDigest, before.contentDigest);
  assert.deepEqual(
    after.trace.map((f) => f.name),
    ['Trace', 'Signature'],
  );
  // Into an empty trace block, too.
  const bare = encodeMessage({ trace: [], root: { fields: [], body: text('x') } });
  assert.deepEqual(decodeMessage(appendTraceField(bare, { name: 'Trace', value: 't' })).trace, [
    { name: 'Trace', value: 't' },
  ]);
  assert.equal(
    codeOf(() => appendTraceField(sampleBytes, { name: 'Bad Name', value: 'x' })),
    'NMTP_ERR_FRAME_FIELD_SYNTAX',
  );
  assert.equal(
    codeOf(() => appendTraceField(sampleBytes, { name: 'Trace', value: 'a\tb' })),
    'NMTP_ERR_FRAME_CONTROL_CHAR',
  );
  assert.equal(
    codeOf(() => appendTraceField(text('NMTP/2\r\n'), { name: 'Trace', value: 'x' })),
    'NMTP_ERR_FRAME_VERSION',
  );
  const withSubject = appendTraceField(bare, { name: 'Subject', value: 'a' });
  assert.equal(
    codeOf(() => appendTraceField(withSubject, { name: 'subject', value: 'b' })),
    'NMTP_ERR_FRAME_DUPLICATE_FIELD',
  );
  assert.equal(
    codeOf(() =>
      appendTraceField(bare, { name: 'Trace', value: 'x'.repeat(100) }, { maxLineBytes: 64 }),
    ),
    'NMTP_ERR_FRAME_LINE_TOO_LONG',
  );
});

test('streaming encoder pieces concatenate to the same bytes as encodeMessage', () => {
  const body = text('streamed body');
  const fields = [{ name: 'Subject', value: 's' }];
  const pieces = [
    encodePreamble(sample.trace),
    encodeHeader(fields, body.length),
    body,
    SENTINEL_BYTES,
  ];
  const joined = Buffer.concat(pieces);
  assert.deepEqual(
    joined,
    Buffer.from(encodeMessage({ trace: sample.trace, root: { fields, body } })),
  );
  assert.deepEqual(Buffer.from(encodePart({ fields, body })), Buffer.concat(pieces.slice(1)));
});

test('encoder refuses what the decoder would refuse', () => {
  const enc = (m: FramedMessage): string => codeOf(() => encodeMessage(m));
  assert.equal(
    enc({ trace: [], root: { fields: [{ name: 'Subject', value: ' x' }], body: text('') } }),
    'NMTP_ERR_FRAME_FIELD_SYNTAX',
  );
  assert.equal(
    enc({ trace: [], root: { fields: [{ name: 'Subject', value: 'e\u0301' }], body: text('') } }),
    'NMTP_ERR_FRAME_NOT_NFC',
  );
  assert.equal(
    enc({ trace: [], root: { fields: [{ name: 'Subject', value: '\ud800' }], body: text('') } }),
    'NMTP_ERR_FRAME_UTF8',
  );
  assert.equal(
    enc({
      trace: [],
      root: {
        fields: [
          { name: 'From', value: '<a@x>' },
          { name: 'from', value: '<b@x>' },
        ],
        body: text(''),
      },
    }),
    'NMTP_ERR_FRAME_DUPLICATE_FIELD',
  );
  assert.equal(enc({ trace: [], root: { fields: [], children: [] } }), 'NMTP_ERR_INVALID_ARGUMENT');
  assert.equal(
    enc({
      trace: [],
      root: { fields: [{ name: 'Content-Type', value: 'multipart/mixed' }], body: text('x') },
    }),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
  assert.equal(
    enc({
      trace: [],
      root: { fields: [{ name: 'Content-Type', value: 'message/nmtp' }], children: [] },
    }),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
  // A given Content-Length is recomputed in place, keeping its position and spelling.
  const m = encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'Subject', value: 'x' },
        { name: 'content-length', value: '999' },
      ],
      body: text('abc'),
    },
  });
  assert.equal(
    Buffer.from(m).toString(),
    'NMTP/1\r\n\r\nSubject: x\r\ncontent-length: 3\r\n\r\nabc\r\n\r\n',
  );
});

test('hostile: a huge declared length is refused at once, before any body byte', () => {
  const d = new FrameDecoder();
  d.push(text('NMTP/1\r\n\r\nContent-Length: 999999999999999\r\n\r\n'));
  d.next();
  assert.equal(
    codeOf(() => d.next()),
    'NMTP_ERR_FRAME_LENGTH_OVER_LIMIT',
  );
});

test('hostile: a line that never ends costs at most the line limit', () => {
  const d = new FrameDecoder();
  d.push(text('NMTP/1\r\n'));
  const chunk = new Uint8Array(1024).fill(0x61);
  let code = '';
  for (let i = 0; i < 100 && code === ''; i++) {
    d.push(chunk);
    try {
      while (d.next() !== NEED_MORE);
    } catch (e) {
      code = (e as NmtpError).code;
      assert.ok(i <= 8, `refused after ${i + 1} KiB`);
    }
  }
  assert.equal(code, 'NMTP_ERR_FRAME_LINE_TOO_LONG');
});

test('hostile: deep nesting stops at the depth limit', () => {
  // 10 000 nested multiparts: refused at depth 33 without reading further.
  let part = text('Content-Length: 0\r\n\r\n\r\n\r\n');
  const head = (n: number): Uint8Array =>
    text(`Content-Length: ${n}\r\nContent-Type: multipart/mixed\r\n\r\n`);
  for (let i = 0; i < 2000; i++) {
    part = Buffer.concat([head(part.length), part, SENTINEL_BYTES]);
  }
  const bytes = Buffer.concat([text('NMTP/1\r\n\r\n'), part]);
  const t0 = process.hrtime.bigint();
  assert.equal(
    codeOf(() => decodeMessage(bytes, { maxTotalBytes: 1 << 30 })),
    'NMTP_ERR_FRAME_TOO_DEEP',
  );
  assert.ok(process.hrtime.bigint() - t0 < 2_000_000_000n);
});

test('hostile: a million tiny parts stop at the part limit, quickly', () => {
  const child = text('Content-Length: 0\r\n\r\n\r\n\r\n');
  const many = (n: number): Uint8Array => {
    const body = new Uint8Array(child.length * n);
    for (let i = 0; i < n; i++) body.set(child, i * child.length);
    return Buffer.concat([
      text(`NMTP/1\r\n\r\nContent-Length: ${body.length}\r\nContent-Type: multipart/mixed\r\n\r\n`),
      body,
      SENTINEL_BYTES,
    ]);
  };
  const t0 = process.hrtime.bigint();
  assert.equal(
    codeOf(() => decodeMessage(many(1_000_000), { maxTotalBytes: 1 << 30 })),
    'NMTP_ERR_FRAME_TOO_MANY_PARTS',
  );
  assert.ok(process.hrtime.bigint() - t0 < 2_000_000_000n);
  // With the limit raised, 100 000 parts all decode (cost is linear in the part count).
  const n = 100_000;
  const m = decodeMessage(many(n), { maxTotalBytes: 1 << 30, maxParts: n + 1 });
  assert.equal('children' in m.root ? m.root.children.length : -1, n);
});

test('hostile: lying lengths', () => {
  const msg = (cl: string, body: string): Uint8Array =>
    text(`NMTP/1\r\n\r\nContent-Length: ${cl}\r\n\r\n${body}\r\n\r\n`);
  assert.equal(
    codeOf(() => decodeMessage(msg('3', 'abcd'))),
    'NMTP_ERR_FRAME_SENTINEL',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('5', 'abcd'))),
    'NMTP_ERR_FRAME_SENTINEL',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('50', 'abcd'))),
    'NMTP_ERR_FRAME_TRUNCATED',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('-4', 'abcd'))),
    'NMTP_ERR_FRAME_LENGTH_SYNTAX',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('04', 'abcd'))),
    'NMTP_ERR_FRAME_LENGTH_SYNTAX',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('4x', 'abcd'))),
    'NMTP_ERR_FRAME_LENGTH_SYNTAX',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('9007199254740993', 'abcd'))),
    'NMTP_ERR_FRAME_LENGTH_SYNTAX',
  );
  assert.equal(
    codeOf(() => decodeMessage(msg('4', 'abcd'))),
    'no error',
  );
});

test('limits must be sane integers with known names', () => {
  assert.equal(
    codeOf(() => new FrameDecoder({ limits: { maxLine: 5 } as Record<string, number> })),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
  assert.equal(
    codeOf(() => new FrameDecoder({ limits: { maxDepth: undefined } })),
    'no error',
  );
  assert.equal(
    codeOf(() => new FrameDecoder({ limits: { maxLineBytes: 0 } })),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
  assert.equal(
    codeOf(() => new FrameDecoder({ limits: { maxParts: 1.5 } })),
    'NMTP_ERR_INVALID_ARGUMENT',
  );
});

test('an address validator hook refuses with its own code and the field offset', () => {
  const bytes = encodeMessage({
    trace: [],
    root: { fields: [{ name: 'To', value: 'Bob <bob>' }], body: text('') },
  });
  assert.equal(
    codeOf(() => decodeMessage(bytes)),
    'no error',
  );
  const refuse = (a: string): void => {
    if (!a.includes('@')) throw new NmtpError('NMTP_ERR_ADDR_MISSING_AT', a);
  };
  assert.throws(
    () => decodeMessage(bytes, undefined, { validateAddress: refuse }),
    (e) =>
      e instanceof NmtpError &&
      e.code === 'NMTP_ERR_ADDR_MISSING_AT' &&
      e.details.offset === 10 + 19,
  );
});
