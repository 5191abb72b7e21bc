/**
 * The line-end detector: the same verdict (fault and offset) as a one-pass reference over
 * the whole input, whatever the chunking — every 2-way and 3-way split of small inputs, and
 * fast-check random chunkings of inputs drawn from the octets that matter (CR, LF, NUL, ".").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  LINE_ENDS_START,
  LineEndScanner,
  finishLineEnds,
  findLineEndFault,
  longLine,
  scanLineEnds,
  scanLines,
  type LineEndFault,
  type LineEndState,
} from '../../src/gateway/line-ends.ts';

type Verdict = { fault: LineEndFault; offset: number } | undefined;

/** The definition, octet by octet, over the whole input. */
function reference(b: Uint8Array): Verdict {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0) return { fault: 'NUL', offset: i };
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) return { fault: 'bare LF', offset: i };
    if (b[i] === 0x0d && (i + 1 === b.length || b[i + 1] !== 0x0a)) {
      return { fault: 'bare CR', offset: i };
    }
  }
  return undefined;
}

/** Feeds the pieces through the pure API. */
function chunked(pieces: readonly Uint8Array[]): Verdict {
  let s: LineEndState = LINE_ENDS_START;
  for (const p of pieces) {
    const r = scanLineEnds(s, p);
    if (!r.ok) return { fault: r.fault, offset: r.offset };
    s = r.state;
  }
  const f = finishLineEnds(s);
  return f.ok ? undefined : { fault: f.fault, offset: f.offset };
}

/** Feeds the pieces through the scanner object. */
function scanner(pieces: readonly Uint8Array[]): Verdict {
  const sc = new LineEndScanner();
  for (const p of pieces) sc.push(p);
  const fault = sc.end();
  return fault === undefined ? undefined : { fault, offset: sc.faultOffset! };
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

function splits(b: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...cuts].sort((x, y) => x - y)) {
    out.push(b.subarray(from, c));
    from = c;
  }
  out.push(b.subarray(from));
  return out;
}

test('known inputs: CRLF text is clean; each smuggling shape is found at its octet', () => {
  const cases: [string, Verdict][] = [
    ['', undefined],
    ['Subject: x\r\n\r\nbody\r\n.\r\n', undefined],
    ['\r\n', undefined],
    ['a\nb', { fault: 'bare LF', offset: 1 }],
    ['\n', { fault: 'bare LF', offset: 0 }],
    ['a\rb', { fault: 'bare CR', offset: 1 }],
    ['a\r', { fault: 'bare CR', offset: 1 }],
    ['x\r\r\n', { fault: 'bare CR', offset: 1 }],
    ['body\r\n\n.\r\n', { fault: 'bare LF', offset: 6 }],
    ['body\r\n.\r', { fault: 'bare CR', offset: 7 }],
    ['body\r.\r', { fault: 'bare CR', offset: 4 }],
    ['body\n.\n', { fault: 'bare LF', offset: 4 }],
    ['a\0b\nc', { fault: 'NUL', offset: 1 }],
    ['a\nb\0', { fault: 'bare LF', offset: 1 }],
    ['a\r\0', { fault: 'bare CR', offset: 1 }],
  ];
  for (const [input, want] of cases) {
    const b = bytes(input);
    assert.deepEqual(reference(b), want, `reference ${JSON.stringify(input)}`);
    assert.deepEqual(findLineEndFault(b), want, JSON.stringify(input));
  }
});

test('a chunk ending in CR is a state, not an error', () => {
  const r = scanLineEnds(LINE_ENDS_START, bytes('MAIL FROM:<a@b>\r'));
  assert.ok(r.ok);
  assert.equal(r.state.pendingCr, true);
  const next = scanLineEnds(r.state, bytes('\n'));
  assert.ok(next.ok);
  assert.deepEqual(next.state, { offset: 17, pendingCr: false });
  const bad = scanLineEnds(r.state, bytes('R'));
  assert.deepEqual(bad, { ok: false, fault: 'bare CR', offset: 15 });
  assert.deepEqual(finishLineEnds(r.state), { ok: false, fault: 'bare CR', offset: 15 });
  // Empty chunks change nothing.
  assert.deepEqual(scanLineEnds(r.state, new Uint8Array(0)), { ok: true, state: r.state });
});

test('the scanner keeps its first fault', () => {
  const sc = new LineEndScanner();
  assert.equal(sc.push(bytes('ok\r\n')), undefined);
  assert.equal(sc.push(bytes('x\r')), undefined);
  assert.equal(sc.pendingCr, true);
  assert.equal(sc.push(bytes('y\n')), 'bare CR');
  assert.equal(sc.push(bytes('\0')), 'bare CR');
  assert.equal(sc.end(), 'bare CR');
  assert.equal(sc.faultOffset, 5);
});

test('every 2-way and 3-way split of the smuggling shapes agrees with the reference', () => {
  const inputs = [
    'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n',
    'data\r\n\n.\r\nMAIL FROM:<x@y>\r\n',
    'data\r\n.\r\r\n',
    'data\r.\r\nRSET\r\n',
    'data\n.\nQUIT\r\n',
    'a\r\r\nb\r\n',
    '\r\n\r\n\r',
    'a\0\r\n',
  ];
  for (const input of inputs) {
    const b = bytes(input);
    const want = reference(b);
    for (let i = 0; i <= b.length; i++) {
      for (let j = i; j <= b.length; j++) {
        const pieces = splits(b, [i, j]);
        assert.deepEqual(chunked(pieces), want, `${JSON.stringify(input)} cut ${i},${j}`);
        assert.deepEqual(scanner(pieces), want, `${JSON.stringify(input)} cut ${i},${j}`);
      }
    }
  }
});

test('property: random inputs and random chunkings give the reference verdict', () => {
  const octet = fc.constantFrom(0x0d, 0x0a, 0x00, 0x2e, 0x61, 0x20, 0xc3);
  const input = fc
    .uint8Array({ minLength: 0, maxLength: 64 })
    .chain((noise) =>
      fc
        .array(octet, { minLength: 0, maxLength: 64 })
        .map((xs) => Uint8Array.from([...xs, ...noise.map((x) => (x % 3 === 0 ? 0x61 : x))])),
    );
  fc.assert(
    fc.property(
      input,
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.boolean(),
      (b, rawCuts, cleanUp) => {
        // Half the runs: inputs with every CR and LF paired, so clean verdicts occur too.
        const data = cleanUp
          ? bytes(
              Buffer.from(b)
                .toString('latin1')
                .replace(/[\r\n\0]+/g, '\r\n'),
            )
          : b;
        const cuts = rawCuts.map((c) => (data.length === 0 ? 0 : c % (data.length + 1)));
        const want = reference(data);
        const pieces = splits(data, cuts);
        assert.deepEqual(chunked(pieces), want);
        assert.deepEqual(scanner(pieces), want);
        assert.deepEqual(findLineEndFault(data), want);
      },
    ),
    { numRuns: 2000 },
  );
});

test('property: every split point of random inputs, one octet at a time too', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('\r', '\n', '\r\n', '\0', '.', 'a'), { maxLength: 24 }),
      (parts) => {
        const b = bytes(parts.join(''));
        const want = reference(b);
        for (let i = 0; i <= b.length; i++) assert.deepEqual(chunked(splits(b, [i])), want);
        const octets = [...b].map((x) => Uint8Array.of(x));
        assert.deepEqual(chunked(octets), want);
      },
    ),
    { numRuns: 1000 },
  );
});

test('property: scanLines gives what scanLineEnds and then longLine give, clean or not', () => {
  // Lines of random lengths around `max`, CRLF-paired half the time (the one-pass path),
  // with bare CR, bare LF and NUL sprinkled in the other half (the fallback).
  const piece = fc.oneof(
    fc.nat(12).map((k) => 'a'.repeat(k)),
    fc.constantFrom('\r\n', '\r\n', '\r\n', '\r', '\n', '\0', '.'),
  );
  fc.assert(
    fc.property(
      fc.array(piece, { maxLength: 24 }),
      fc.boolean(),
      fc.boolean(),
      fc.nat(10),
      fc.nat(12),
      fc.nat(100),
      (parts, pendingCr, cleanUp, max, carried, offset) => {
        let text = parts.join('');
        if (cleanUp) text = text.replace(/[\r\n\0]+/g, '\r\n');
        if (pendingCr && cleanUp && !text.startsWith('\n')) text = `\n${text}`;
        const chunk = bytes(text);
        const state = { offset: offset + (pendingCr ? 1 : 0), pendingCr };
        const ends = scanLineEnds(state, chunk);
        const limit = ends.ok ? chunk.length : Math.max(0, ends.offset - state.offset);
        const want = { ends, long: longLine(chunk, max, carried, limit) };
        assert.deepEqual(scanLines(state, chunk, max, carried), want);
      },
    ),
    { numRuns: 5000 },
  );
});

test('scanLines on a clean text: the first long line is reported with its own length', () => {
  const t = bytes('ab\r\nabcdef\r\nabcdefgh\r\nabc');
  assert.deepEqual(scanLines(LINE_ENDS_START, t, 4), {
    ends: { ok: true, state: { offset: t.length, pendingCr: false } },
    long: { at: 4 + 4, line: 6 },
  });
  assert.deepEqual(scanLines(LINE_ENDS_START, bytes('ab\r\nabcdef\r'), 5, 3).long, {
    at: 4 + 5,
    line: 6,
  });
});
