/**
 * The transfer encodings of adapters/legacy/transfer-encoding.ts: the choice table of
 * docs/protocol.md §51.5, and quoted-printable / base64 checked against
 * Python's quopri and base64 modules (independent decoders) on generated bodies.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  base64Lines,
  chooseEncoding,
  inspectBody,
  inspectOctets,
  quotedPrintable,
} from '../../../adapters/legacy/transfer-encoding.ts';

const enc = new TextEncoder();
const join = (g: Iterable<Uint8Array>): Buffer => Buffer.concat([...g]);

/** Decodes each [encoding, text] with Python (quopri / base64); returns base64 of the octets. */
function pythonDecodeBodies(items: readonly [string, Buffer][]): string[] {
  const script = `
import base64, binascii, json, quopri, sys
out = []
for kind, b64 in json.load(sys.stdin):
    raw = base64.b64decode(b64)
    dec = quopri.decodestring(raw) if kind == "qp" else binascii.a2b_base64(raw)
    out.append(base64.b64encode(dec).decode())
json.dump(out, sys.stdout)`;
  const input = JSON.stringify(items.map(([k, b]) => [k, b.toString('base64')]));
  const r = spawnSync('python3', ['-c', script], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as string[];
}

function assertLines(out: Buffer, max: number): void {
  const s = out.toString('latin1');
  for (const line of s.split('\r\n')) assert.ok(line.length <= max, `line of ${line.length}`);
  assert.doesNotMatch(s, /(?<!\r)\n|\r(?!\n)/, 'CRLF only');
  assert.doesNotMatch(s, /[^\x20-\x7e\t\r\n]/, 'encoded output is printable ASCII');
}

describe('transfer encodings', () => {
  it('property: inspectBody states the same facts as the octet-by-octet reference', () => {
    const atom = fc.constantFrom(
      'a',
      '=',
      '.',
      '\t',
      '\r',
      '\n',
      '\r\n',
      '\0',
      '\x7f',
      '\x01',
      'ä',
      '\xff',
      'x'.repeat(499),
      'y'.repeat(998),
    );
    fc.assert(
      fc.property(fc.array(atom, { maxLength: 10 }), fc.boolean(), (atoms, eightBitOk) => {
        const body = Buffer.from(atoms.join(''), 'latin1');
        const want = inspectOctets(body, true, eightBitOk);
        const got = inspectBody(body, true, eightBitOk);
        assert.deepEqual(
          {
            eightBit: got.eightBit,
            lineClean: got.lineClean,
            endsWithLine: got.endsWithLine,
            escapes: got.escapes,
          },
          want,
        );
      }),
      { numRuns: 3000 },
    );
  });

  it('chooses per §51.5', () => {
    const choose = (
      s: string | Uint8Array,
      textual: boolean,
      eightBitMime: boolean,
      top = false,
    ) => {
      const body = typeof s === 'string' ? enc.encode(s) : s;
      return chooseEncoding(inspectBody(body), body.length, { textual, eightBitMime, top });
    };
    assert.equal(choose('a\r\nb\r\n', true, false), '7bit');
    assert.equal(choose('a\r\nb', true, false), '7bit');
    assert.equal(choose('a\r\nb', true, false, true), 'quoted-printable');
    assert.equal(choose('', true, false, true), '7bit');
    assert.equal(choose('ä\r\n', true, true), '8bit');
    assert.equal(choose(`a\nb${'c'.repeat(20)}\r\n`, true, true), 'quoted-printable');
    assert.equal(choose(`a\0${'b'.repeat(20)}`, true, true), 'quoted-printable');
    assert.equal(choose(`${'a'.repeat(998)}\r\n`, true, false), '7bit');
    assert.equal(choose(`${'a'.repeat(999)}\r\n`, true, false), 'quoted-printable');
    assert.equal(choose('ääää\r\n', true, false), 'base64');
    assert.equal(choose(new Uint8Array([1, 2, 3]), false, true), '7bit'); // controls are 7bit data
    assert.equal(choose(new Uint8Array([0, 1, 2]), false, true), 'base64');
    assert.equal(choose('plain ascii\r\n', false, false), '7bit');
  });

  it('quoted-printable and base64 decode to the same octets (Python), lines ≤ 76', () => {
    const bodies = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        fc
          .array(
            fc.constantFrom('a', ' ', '\t', '=', '\r\n', '\r', '\n', 'é', '.', 'x'.repeat(90)),
            {
              maxLength: 40,
            },
          )
          .map((a) => enc.encode(a.join(''))),
      ),
      { numRuns: 300, seed: 51 },
    );
    const items: [string, Buffer][] = [];
    const expected: string[] = [];
    for (const body of bodies) {
      for (const top of [false, true]) {
        const qp = join(quotedPrintable(body, 114, top));
        assertLines(qp, 76);
        items.push(['qp', qp]);
        expected.push(Buffer.from(body).toString('base64'));
      }
      const b64 = join(base64Lines(body, 114));
      assertLines(b64, 76);
      items.push(['b64', b64]);
      expected.push(Buffer.from(body).toString('base64'));
    }
    assert.deepEqual(pythonDecodeBodies(items), expected);
  });

  it('ends the top-level quoted-printable body with a soft break when the octets do not end in CRLF', () => {
    assert.equal(join(quotedPrintable(enc.encode('abc'), 1000, true)).toString(), 'abc=\r\n');
    assert.equal(join(quotedPrintable(enc.encode('abc'), 1000, false)).toString(), 'abc');
    assert.equal(join(quotedPrintable(enc.encode('a \r\n'), 1000, true)).toString(), 'a=20\r\n');
  });
});
