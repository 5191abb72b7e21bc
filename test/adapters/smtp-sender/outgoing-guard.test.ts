/**
 * The outgoing guard (adapters/smtp-sender/outgoing-guard.ts): what it refuses, that its
 * verdict does not depend on how the octets are cut into chunks, and that every converter
 * output for the published SMTP smuggling variants placed inside NMTP messages passes it
 * (or the converter refuses the message with a coded, permanent error). The same corpus
 * goes through nodemailer into real SMTP servers in
 * test/integration/outgoing-smuggling.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  MAX_LINE_OCTETS,
  OutgoingCheck,
  checkOutgoing,
  checkOutgoingStream,
  outgoingGuard,
} from '../../../adapters/smtp-sender/outgoing-guard.ts';
import { framedToLegacy, framedToLegacyChunks } from '../../../adapters/legacy/index.ts';
import { PEERS } from '../legacy/helpers.ts';
import { PLACEMENTS, VARIANTS, payloads, throughCodec } from './smuggling-corpus.ts';

const b = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** The refusal of checkOutgoing, or undefined when the octets pass. */
function verdict(input: Uint8Array | Uint8Array[]): { kind: unknown; offset: unknown } | undefined {
  try {
    checkOutgoing(input);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof NmtpError, String(err));
    assert.equal(err.code, 'NMTP_ERR_GW_UNSAFE_OUTPUT');
    assert.equal(err.temporary, false);
    assert.equal(err.scope, 'message');
    return { kind: err.details.kind, offset: err.details.offset };
  }
}

test('clean CRLF text passes, whatever its dots', () => {
  assert.equal(verdict(b('Subject: x\r\n\r\n.\r\n..\r\n.hidden\r\n\r\n.\r\n')), undefined);
  assert.equal(verdict(b('')), undefined);
  // RFC 5322 allows a body whose last line has no CRLF; SMTP clients add one.
  assert.equal(verdict(b('a\r\nlast')), undefined);
  assert.equal(verdict(b('8-bit \xe9\xff\r\n')), undefined);
});

test('bare CR, bare LF, NUL and long lines are refused where they are', () => {
  assert.deepEqual(verdict(b('ab\ncd\r\n')), { kind: 'bare-lf', offset: 2 });
  assert.deepEqual(verdict(b('ab\rcd\r\n')), { kind: 'bare-cr', offset: 2 });
  assert.deepEqual(verdict(b('ab\r\r\n')), { kind: 'bare-cr', offset: 2 });
  assert.deepEqual(verdict(b('ab\r')), { kind: 'bare-cr', offset: 2 });
  assert.deepEqual(verdict(b('a\r\n\x00.\r\n')), { kind: 'nul', offset: 3 });
  assert.deepEqual(verdict(b('\n.\n')), { kind: 'bare-lf', offset: 0 });
  assert.deepEqual(verdict(b('.\n')), { kind: 'bare-lf', offset: 1 });
});

test('a line may hold 998 octets, not 999 (RFC 5322 §2.1.1)', () => {
  const max = 'x'.repeat(MAX_LINE_OCTETS);
  assert.equal(verdict(b(`${max}\r\n${max}\r\n`)), undefined);
  assert.equal(verdict(b(max)), undefined);
  assert.deepEqual(verdict(b(`ok\r\n${max}x\r\n`)), { kind: 'long-line', offset: 4 + 998 });
});

test('a CRLF cut between two chunks is one line end; a CR ending the stream is bare', () => {
  assert.equal(verdict([b('a\r'), b('\nb\r'), b('\n')]), undefined);
  assert.deepEqual(verdict([b('a\r'), b('b\r\n')]), { kind: 'bare-cr', offset: 1 });
  assert.deepEqual(verdict([b('a\r\n'), b('\n')]), { kind: 'bare-lf', offset: 3 });
  assert.deepEqual(verdict([b('a\r\n'), b('b\r')]), { kind: 'bare-cr', offset: 4 });
  // The line length carries over chunks too.
  const half = 'x'.repeat(500);
  assert.equal(verdict([b(half), b(`${half.slice(2)}\r\n`)]), undefined);
  assert.deepEqual(verdict([b(half), b(half)]), { kind: 'long-line', offset: 998 });
  const c = new OutgoingCheck();
  c.update(b('ab'));
  c.update(b('c\r\n'));
  c.end();
  assert.equal(c.octets, 5);
});

/** An independent statement of the rules: a scan for the first offending octet. */
function reference(s: string): { kind: string; offset: number } | undefined {
  let line = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\r') {
      if (s[i + 1] !== '\n') return { kind: 'bare-cr', offset: i };
      i++;
      line = 0;
    } else if (c === '\n') return { kind: 'bare-lf', offset: i };
    else if (c === '\0') return { kind: 'nul', offset: i };
    else if (++line > MAX_LINE_OCTETS) return { kind: 'long-line', offset: i };
  }
  return undefined;
}

test('property: the verdict is the reference one, however the octets are chunked', () => {
  const atom = fc.constantFrom('a', '.', '\r', '\n', '\r\n', '\0', 'x'.repeat(400), '\r\n.\r\n');
  fc.assert(
    fc.property(
      fc.array(atom, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (atoms, cuts) => {
        const s = atoms.join('');
        const whole = b(s);
        const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((x, y) => x - y);
        const chunks: Uint8Array[] = [];
        let from = 0;
        for (const p of [...points, whole.length]) {
          chunks.push(whole.subarray(from, p));
          from = p;
        }
        const want = reference(s);
        assert.deepEqual(verdict(whole), want);
        assert.deepEqual(verdict(chunks), want);
      },
    ),
    { numRuns: 2000 },
  );
});

test('the Transform passes clean octets unchanged and fails the stream on the first fault', async () => {
  const clean = [b('Subject: a\r'), b('\n\r\n.'), b('line\r\n')];
  const seen: Buffer[] = [];
  await pipeline(Readable.from(clean), outgoingGuard(), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) seen.push(c);
  });
  assert.deepEqual(Buffer.concat(seen), Buffer.concat(clean));

  await assert.rejects(
    pipeline(Readable.from([b('a\r\n'), b('b\n.\n')]), outgoingGuard(), async (src) => {
      for await (const c of src as AsyncIterable<Buffer>) void c;
    }),
    (err: NmtpError) => err.code === 'NMTP_ERR_GW_UNSAFE_OUTPUT' && err.details.offset === 4,
  );
  await assert.rejects(
    pipeline(Readable.from([b('a\r')]), outgoingGuard(), async (src) => {
      for await (const c of src as AsyncIterable<Buffer>) void c;
    }),
    (err: NmtpError) => err.details.kind === 'bare-cr',
  );
});

test('the async form reads a stream to its end', async () => {
  await checkOutgoingStream(Readable.from([b('a\r'), b('\n')]));
  await assert.rejects(
    checkOutgoingStream(Readable.from([b('a\r'), b('\r\n')])),
    (err: NmtpError) => err.code === 'NMTP_ERR_GW_UNSAFE_OUTPUT',
  );
});

test('smuggling corpus: every converted message passes the guard, or the converter refuses it', () => {
  const converted = new Map<string, number>();
  let refused = 0;
  for (const [vname, variant] of VARIANTS) {
    for (const [where, payload] of payloads(variant)) {
      for (const placement of PLACEMENTS) {
        const framed = throughCodec(placement.build(payload));
        for (const peer of PEERS) {
          const label = `${vname} ${where} in ${placement.name} (${JSON.stringify(peer)})`;
          let out: Uint8Array;
          try {
            out = framedToLegacy(framed, peer);
          } catch (err) {
            // A refusal is safe (nothing is sent): it must be a coded, permanent one.
            assert.ok(err instanceof NmtpError, `${label}: ${String(err)}`);
            assert.equal(err.temporary, false, label);
            refused++;
            continue;
          }
          assert.equal(verdict(out), undefined, label);
          assert.equal(
            verdict([...framedToLegacyChunks(framed, { ...peer, chunkSize: 57 })]),
            undefined,
            label,
          );
          converted.set(placement.name, (converted.get(placement.name) ?? 0) + 1);
        }
      }
    }
  }
  // Not vacuous: every placement produced output for most variants; only a message/rfc822
  // leaf (which may not be transfer-encoded, RFC 2046 §5.2.1) is refused when not clean.
  for (const p of PLACEMENTS) assert.ok((converted.get(p.name) ?? 0) > 0, p.name);
  assert.equal(converted.get('text body'), VARIANTS.length * 3 * PEERS.length);
  assert.ok(refused <= VARIANTS.length * 3 * PEERS.length, `refused ${refused}`);
});
