/**
 * framed → legacy over the hand-written cases of test/fixtures/legacy/cases.json, for the
 * four peer kinds (SMTPUTF8 × 8BITMIME), checked by an independent decoder (Python's
 * email package, policy=default) and by the wire rules (CRLF, ≤ 998, 7-bit).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { NmtpError } from '../../../src/core/errors/index.ts';
import type { Field, FramedMessage, Part } from '../../../src/core/frame/index.ts';
import {
  framedToLegacy,
  framedToLegacyChunks,
  type LegacyOptions,
} from '../../../adapters/legacy/index.ts';
import {
  PEERS,
  assertDecodedEqual,
  assertWireRules,
  box,
  f,
  leaf,
  longHeaderLines,
  pythonDecode,
} from './helpers.ts';

interface JsonPart {
  fields: [string, string][];
  body_text?: string;
  body_b64?: string;
  children?: JsonPart[];
}
interface JsonCase {
  id: string;
  description: string;
  trace: [string, string][];
  root: JsonPart;
  expected_error?: Record<string, string>;
}

const toFields = (l: [string, string][]): Field[] => l.map(([name, value]) => ({ name, value }));
function toPart(j: JsonPart): Part {
  if (j.children !== undefined)
    return { fields: toFields(j.fields), children: j.children.map(toPart) };
  const body =
    j.body_text !== undefined
      ? new TextEncoder().encode(j.body_text)
      : Buffer.from(j.body_b64 ?? '', 'base64');
  return { fields: toFields(j.fields), body: new Uint8Array(body) };
}

const CASES = JSON.parse(
  readFileSync(new URL('../../fixtures/legacy/cases.json', import.meta.url), 'utf8'),
) as JsonCase[];

/** The error a case expects toward this peer ("smtputf8=false", "eightBitMime=false" keys). */
function expectedError(c: JsonCase, peer: LegacyOptions): string | undefined {
  for (const [k, code] of Object.entries(c.expected_error ?? {})) {
    const [opt, val] = k.split('=');
    if (String(peer[opt as 'smtputf8' | 'eightBitMime']) === val) return code;
  }
  return undefined;
}

const peerName = (p: LegacyOptions): string =>
  `${p.smtputf8 ? 'SMTPUTF8' : 'no-SMTPUTF8'}+${p.eightBitMime ? '8BITMIME' : '7bit'}`;

describe('framed → legacy: fixture cases, Python oracle', () => {
  const outputs: { c: JsonCase; peer: LegacyOptions; msg: FramedMessage; out: Uint8Array }[] = [];
  for (const c of CASES) {
    const msg: FramedMessage = { trace: toFields(c.trace), root: toPart(c.root) };
    for (const peer of PEERS) {
      const code = expectedError(c, peer);
      if (code !== undefined) {
        it(`${c.id} (${peerName(peer)}) fails with ${code}`, () => {
          assert.throws(
            () => framedToLegacy(msg, peer),
            (e: unknown) => e instanceof NmtpError && e.code === code,
          );
        });
      } else {
        outputs.push({ c, peer, msg, out: framedToLegacy(msg, peer) });
      }
    }
  }
  const decoded = pythonDecode(outputs.map((o) => o.out));
  outputs.forEach(({ c, peer, msg, out }, i) => {
    it(`${c.id} (${peerName(peer)}): ${c.description}`, () => {
      assertWireRules(out, peer);
      assertDecodedEqual(msg.root, decoded[i]!, peer);
      assert.equal(decoded[i]!.headers.find(([n]) => n === 'MIME-Version')?.[1], '1.0');
    });
  });

  it('every fixture case converts for at least one peer or names its error', () => {
    assert.ok(CASES.length >= 15);
  });
});

describe('framed → legacy: specific rules', () => {
  const peer7: LegacyOptions = { smtputf8: false, eightBitMime: false };
  const simple = (fields: Field[], body = 'x\r\n'): FramedMessage => ({
    trace: [],
    root: leaf([f('From', '<a@example.org>'), ...fields], body),
  });
  const text = (out: Uint8Array): string => Buffer.from(out).toString('utf8');

  it('folds a long subject into lines of at most 78 octets', () => {
    const out = framedToLegacy(
      simple([f('Subject', 'Grüße '.repeat(40)), f('X-Long', 'word '.repeat(60) + 'end')]),
      peer7,
    );
    assert.deepEqual(longHeaderLines(out), []);
  });

  it('writes the Date in RFC 5322 form in the writer offset (-00:00 → -0000)', () => {
    const out = text(framedToLegacy(simple([f('Date', '2026-02-28T23:59:59.999-00:00')]), peer7));
    assert.match(out, /\r\nDate: Sat, 28 Feb 2026 23:59:59 -0000\r\n/);
    const out2 = text(framedToLegacy(simple([f('Date', '2026-11-29T09:10:00+05:30')]), peer7));
    assert.match(out2, /\r\nDate: Sun, 29 Nov 2026 09:10:00 \+0530\r\n/);
  });

  it('maps trace fields to X-NMTP-Trace, drops signatures, summarises verdicts when given', () => {
    const msg: FramedMessage = {
      trace: [
        f('Trace', 'by mx.example.net'),
        f('Signature', 'v=1; a=ed25519'),
        f('Certificate', 'x'),
      ],
      root: simple([]).root,
    };
    const plain = text(framedToLegacy(msg, peer7));
    assert.match(plain, /^X-NMTP-Trace: by mx\.example\.net\r\n/);
    assert.doesNotMatch(plain, /Signature|Certificate|Authentication-Results/);
    const withAr = text(
      framedToLegacy(msg, {
        ...peer7,
        authResults: {
          authservId: 'gw.example.net',
          verdicts: [{ domain: 'example.org', result: 'pass' }],
        },
      }),
    );
    assert.match(
      withAr,
      /^Authentication-Results: gw\.example\.net; nmtp=pass header\.d=example\.org\r\n/,
    );
  });

  it('drops Legacy-Envelope-To (it would reveal Bcc recipients)', () => {
    const out = text(framedToLegacy(simple([f('Legacy-Envelope-To', '<bcc@example.com>')]), peer7));
    assert.doesNotMatch(out, /bcc@example\.com/);
  });

  it('unwraps a carried original (multipart/x-nmtp-legacy) to its converted content', () => {
    const msg: FramedMessage = {
      trace: [],
      root: box(
        [
          f('From', '<a@example.org>'),
          f('Subject', 'S'),
          f('Content-Type', 'multipart/x-nmtp-legacy'),
        ],
        [
          leaf([f('Content-Type', 'text/plain')], 'content\r\n'),
          leaf(
            [f('Content-Type', 'application/x-nmtp-legacy-original')],
            'Subject: S\r\n\r\nraw\r\n',
          ),
        ],
      ),
    };
    const [d] = pythonDecode([framedToLegacy(msg, peer7)]);
    assert.equal(d!.type, 'text/plain');
    assert.equal(Buffer.from(d!.body_b64!, 'base64').toString(), 'content\r\n');
    assert.ok(d!.headers.some(([n, v]) => n === 'Subject' && v === 'S'));
  });

  it('regenerates a boundary that occurs in the content, and fails after repeated clashes', () => {
    const clash = Buffer.alloc(18, 0); // base64url "AAAA…": the fixture text contains it
    const fresh = Buffer.alloc(18, 0xfb);
    const body = `--=_NMTP_${clash.toString('base64url')}\r\n`;
    const msg: FramedMessage = {
      trace: [],
      root: box(
        [f('From', '<a@example.org>'), f('Content-Type', 'multipart/mixed')],
        [leaf([f('Content-Type', 'text/plain')], body)],
      ),
    };
    let calls = 0;
    const out = text(
      framedToLegacy(msg, { ...peer7, random: () => (calls++ === 0 ? clash : fresh) }),
    );
    assert.equal(calls, 2);
    assert.ok(out.includes(`boundary="=_NMTP_${fresh.toString('base64url')}"`));
    const [d] = pythonDecode([Buffer.from(out)]);
    assert.equal(Buffer.from(d!.children![0]!.body_b64!, 'base64').toString(), body);
    assert.throws(
      () => framedToLegacy(msg, { ...peer7, random: () => clash }),
      (e: unknown) => e instanceof NmtpError && e.code === 'NMTP_ERR_LEGACY_BOUNDARY',
    );
  });

  it('chooses 7bit / 8bit / quoted-printable / base64 per part and peer', () => {
    const cte = (body: string | Uint8Array, type: string, peer: LegacyOptions): string => {
      const out = text(
        framedToLegacy({ trace: [], root: leaf([f('Content-Type', type)], body) }, peer),
      );
      return /Content-Transfer-Encoding: (\S+)/.exec(out)![1]!;
    };
    const peer8: LegacyOptions = { smtputf8: false, eightBitMime: true };
    assert.equal(cte('ascii\r\n', 'text/plain', peer7), '7bit');
    assert.equal(cte('é\r\n', 'text/plain', peer8), '8bit');
    assert.equal(cte(`caf\u00e9 ${'a'.repeat(100)}\r\n`, 'text/plain', peer7), 'quoted-printable');
    assert.equal(cte('日本語のテキスト\r\n', 'text/plain', peer7), 'base64');
    assert.equal(cte('no final newline', 'text/plain', peer8), 'quoted-printable');
    assert.equal(cte(new Uint8Array([0, 1, 2]), 'application/octet-stream', peer8), 'base64');
    assert.equal(cte(`${'a'.repeat(1200)}\r\n`, 'text/plain', peer8), 'quoted-printable');
  });

  it('streams a large attachment in bounded chunks identical to the one-buffer form', () => {
    const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 7919) & 0xff);
    const msg: FramedMessage = {
      trace: [],
      root: box(
        [f('From', '<a@example.org>'), f('Content-Type', 'multipart/mixed')],
        [
          leaf(
            [f('Content-Type', 'application/octet-stream'), f('Content-Filename', 'big.bin')],
            big,
          ),
        ],
      ),
    };
    const random = (): Uint8Array => Buffer.alloc(18, 7);
    let max = 0;
    const chunks: Uint8Array[] = [];
    for (const c of framedToLegacyChunks(msg, { ...peer7, random })) {
      max = Math.max(max, c.length);
      chunks.push(c);
    }
    assert.ok(max <= 100_000, `largest chunk ${max}`);
    assert.deepEqual(Buffer.concat(chunks), Buffer.from(framedToLegacy(msg, { ...peer7, random })));
    const [d] = pythonDecode([Buffer.concat(chunks)]);
    assert.ok(Buffer.from(d!.children![0]!.body_b64!, 'base64').equals(Buffer.from(big)));
  });

  it('is read the same way by mailparser (second independent decoder)', async () => {
    const msg: FramedMessage = {
      trace: [],
      root: box(
        [
          f('From', 'Jürgen Müller, Dr. <juergen@example.org>'),
          f('Subject', 'Grüße aus Köln — 日本語'),
          f('Content-Type', 'multipart/mixed'),
        ],
        [
          leaf([f('Content-Type', 'text/plain')], 'Grüße\r\n'),
          leaf(
            [
              f('Content-Type', 'application/octet-stream'),
              f('Content-Disposition', 'attachment'),
              f('Content-Filename', 'résumé “final” with a long name.pdf'),
            ],
            new Uint8Array([0, 1, 2, 255]),
          ),
        ],
      ),
    };
    for (const peer of PEERS) {
      const parsed = await simpleParser(Buffer.from(framedToLegacy(msg, peer)));
      assert.equal(parsed.subject, 'Grüße aus Köln — 日本語');
      assert.equal(parsed.from?.value[0]?.name, 'Jürgen Müller, Dr.');
      assert.equal(parsed.text, 'Grüße\n');
      assert.equal(parsed.attachments[0]?.filename, 'résumé “final” with a long name.pdf');
      assert.deepEqual([...parsed.attachments[0]!.content], [0, 1, 2, 255]);
    }
  });
});
