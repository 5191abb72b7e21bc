/**
 * framed → legacy never writes a control character into a header line (adapters/legacy/
 * fold.ts): a FramedMessage built in code (not decoded, so its field values were never
 * checked) with a CR, LF or NUL in a field value, a trace field or a field name is refused
 * with NMTP_ERR_FRAME_CONTROL_CHAR, for every peer, before any octet. Without the check
 * the value went out as it was: header injection, and with a "." line a smuggled
 * end-of-data toward a lenient SMTP server (SMTP smuggling variants in
 * test/adapters/smtp-sender/smuggling-corpus.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { framedToLegacy, framedToLegacyChunks } from '../../../adapters/legacy/index.ts';
import { PEERS } from './helpers.ts';
import { VARIANTS, headerCases, throughCodec } from '../smtp-sender/smuggling-corpus.ts';

const isControlRefusal = (err: unknown): boolean =>
  err instanceof NmtpError && err.code === 'NMTP_ERR_FRAME_CONTROL_CHAR' && !err.temporary;

test('the frame codec refuses every smuggling variant in a header value or trace field', () => {
  for (const [name, variant] of VARIANTS) {
    for (const m of headerCases(variant)) {
      assert.throws(() => throughCodec(m), isControlRefusal, name);
    }
  }
});

test('framedToLegacy refuses the same fields in a message built in code, for every peer', () => {
  for (const [name, variant] of VARIANTS) {
    for (const m of headerCases(variant)) {
      for (const peer of PEERS) {
        assert.throws(
          () => framedToLegacy(m, peer),
          isControlRefusal,
          `${name} ${JSON.stringify(peer)}`,
        );
        // Refused while planning: the chunk iterator is never returned.
        assert.throws(() => framedToLegacyChunks(m, peer), isControlRefusal);
      }
    }
  }
});

test('a TAB, DEL or C1 control and a bad field name are refused too', () => {
  const base = headerCases('\n')[0]!;
  for (const [fname, value] of [
    ['X-Note', 'a\tb'],
    ['X-Note', 'a\u007fb'],
    ['X-Note', 'a\u0085b'],
    ['X-Bad:Name', 'v'],
    ['X-Bad\r\nName', 'v'],
  ] as const) {
    const m = {
      trace: [],
      root: {
        ...base.root,
        fields: [
          ...base.root.fields.slice(0, 5),
          { name: fname, value },
          { name: 'Content-Type', value: 'text/plain' },
        ],
      },
    };
    // Toward an SMTPUTF8 peer, where non-ASCII text is written as it is (a 7-bit peer gets
    // a C1 control inside an encoded-word, which is harmless).
    assert.throws(
      () => framedToLegacy(m, PEERS[3]!),
      isControlRefusal,
      JSON.stringify([fname, value]),
    );
  }
});
