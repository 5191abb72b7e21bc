/**
 * Property tests: generated MIME trees convert and keep their shape, decoded text and
 * attachment octets; arbitrary damage to real messages never crashes the converter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import * as qp from 'nodemailer/lib/qp';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  encodeMessage,
  getField,
  isContainerPart,
  type Part,
} from '../../../src/core/frame/index.ts';
import { corpusFiles, shape } from './helpers.ts';

const OPTS = { gateway: 'gw.example.net', now: 0 };

type Leaf = {
  kind: 'leaf';
  type: string;
  text?: string;
  charset?: string;
  octets?: Uint8Array;
  filename?: string;
  cte: 'base64' | 'quoted-printable' | '8bit';
};
type Node = Leaf | { kind: 'multi'; subtype: string; children: Node[] };

// Text: lines of printable Unicode (no "=" so no boundary can be faked; NFC by construction
// is not needed for bodies) joined by CRLF.
const line = fc.string({
  unit: fc.constantFrom('a', 'Z', ' ', '.', 'é', 'ß', 'Ж', '中', '😀', '-', '\u00a0'),
  maxLength: 40,
});
const textArb = fc.array(line, { maxLength: 5 }).map((ls) => ls.join('\r\n'));
const fileName = fc
  .string({
    unit: fc.constantFrom('a', 'b', '1', '_', '.', 'é', '€', ' ', '中'),
    minLength: 1,
    maxLength: 30,
  })
  .map((s) => s.trim())
  .filter((s) => s.length > 0 && !/ {2}/.test(s));

const leafArb: fc.Arbitrary<Node> = fc.oneof(
  fc.record({
    kind: fc.constant('leaf' as const),
    type: fc.constantFrom('text/plain', 'text/html'),
    text: textArb,
    charset: fc.constantFrom('utf-8', 'iso-8859-1', 'koi8-r', 'gb18030'),
    cte: fc.constantFrom('base64' as const, 'quoted-printable' as const, '8bit' as const),
  }),
  fc.record({
    kind: fc.constant('leaf' as const),
    type: fc.constantFrom('application/octet-stream', 'image/png'),
    octets: fc.uint8Array({ maxLength: 300 }),
    filename: fileName,
    cte: fc.constant('base64' as const),
  }),
);

const treeArb: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc.record({
      kind: fc.constant('multi' as const),
      subtype: fc.constantFrom('mixed', 'alternative', 'related'),
      children: fc.array(tie('node'), { minLength: 1, maxLength: 3 }),
    }),
  ),
})).node;

let seq = 0;
/** Renders a tree as legacy MIME. Text that a charset cannot encode is sent as UTF-8. */
function render(node: Node): Buffer {
  if (node.kind === 'multi') {
    const b = `=_b${seq++}_=`;
    const parts = node.children.map((c) =>
      Buffer.concat([Buffer.from(`--${b}\r\n`), render(c), Buffer.from('\r\n')]),
    );
    return Buffer.concat([
      Buffer.from(`Content-Type: multipart/${node.subtype}; boundary="${b}"\r\n\r\n`),
      ...parts,
      Buffer.from(`--${b}--\r\n`),
    ]);
  }
  let raw: Buffer;
  let head: string;
  if (node.text !== undefined) {
    let cs = node.charset!;
    raw = iconv.encode(node.text, cs);
    if (iconv.decode(raw, cs) !== node.text) {
      cs = 'utf-8';
      raw = Buffer.from(node.text, 'utf8');
    }
    head = `Content-Type: ${node.type}; charset=${cs}\r\n`;
    if (node.cte === '8bit' && cs !== 'utf-8') node = { ...node, cte: 'base64' };
  } else {
    raw = Buffer.from(node.octets!);
    const enc = encodeURIComponent(node.filename!).replace(
      /['()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16)}`,
    );
    head = `Content-Type: ${node.type}\r\nContent-Disposition: attachment; filename*=utf-8''${enc}\r\n`;
  }
  const body =
    node.cte === 'base64'
      ? raw.toString('base64').replace(/.{76}/g, '$&\r\n')
      : node.cte === 'quoted-printable'
        ? qp.wrap(qp.encode(raw), 76)
        : raw.toString('utf8');
  return Buffer.concat([
    Buffer.from(`${head}Content-Transfer-Encoding: ${node.cte}\r\n\r\n`),
    Buffer.from(body, node.cte === '8bit' ? 'utf8' : 'latin1'),
  ]);
}

function expectedShape(node: Node): string {
  if (node.kind === 'leaf') return node.type;
  return `multipart/${node.subtype}(${node.children.map(expectedShape).join(',')})`;
}

function check(node: Node, part: Part): void {
  if (node.kind === 'multi') {
    assert.ok(isContainerPart(part));
    node.children.forEach((c, i) => check(c, part.children[i]!));
    return;
  }
  assert.ok(!isContainerPart(part));
  if (node.text !== undefined) assert.equal(new TextDecoder().decode(part.body), node.text);
  else {
    assert.deepEqual(new Uint8Array(part.body), node.octets);
    assert.equal(getField(part.fields, 'Content-Filename'), node.filename!.normalize('NFC'));
  }
}

test('generated MIME trees keep shape, text and attachment octets', async () => {
  await fc.assert(
    fc.asyncProperty(treeArb, fc.string({ maxLength: 30 }), async (tree, subject) => {
      const head = `From: a@example.com\r\nSubject: ${subject.replace(/[\r\n]/g, ' ')}\r\nMIME-Version: 1.0\r\n`;
      const raw = Buffer.concat([Buffer.from(head, 'utf8'), render(tree)]);
      const { message } = await legacyToFramed(raw, OPTS);
      encodeMessage(message);
      assert.equal(shape(message.root), expectedShape(tree));
      check(tree, message.root);
    }),
    { numRuns: 150 },
  );
});

test('damaged real messages never crash: success or a coded error', async () => {
  const samples = [...corpusFiles().values()].map((p) => readFileSync(p));
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: samples.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 20 }),
      fc.nat(),
      async (which, edits, cut) => {
        const bytes = Buffer.from(samples[which]!);
        for (const [pos, v] of edits) if (bytes.length > 0) bytes[pos % bytes.length] = v;
        const input = bytes.subarray(0, bytes.length === 0 ? 0 : cut % (bytes.length + 1));
        try {
          const { message } = await legacyToFramed(input, OPTS);
          encodeMessage(message);
        } catch (e) {
          assert.ok(e instanceof NmtpError, `crash: ${String(e)}`);
          assert.match(e.code, /^NMTP_ERR_MIME_/);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('whole-buffer fast paths give what the streaming splitter gives, on the whole corpus', async () => {
  // A Uint8Array input takes the single-part path (no splitter) when its top level is not a
  // multipart, and the native base64 path for large clean chunks; a stream of small chunks
  // takes neither. Both must give the same framed octets and warnings (or the same error).
  const outcome = async (input: Uint8Array | AsyncIterable<Uint8Array>): Promise<string> => {
    try {
      const r = await legacyToFramed(input, OPTS);
      const bytes = Buffer.from(encodeMessage(r.message)).toString('base64');
      return `${bytes} ${r.warnings.map((w) => `${w.code}@${w.part ?? ''}`).join(',')}`;
    } catch (e) {
      if (e instanceof NmtpError) return e.code;
      throw e;
    }
  };
  async function* chunks(b: Uint8Array): AsyncGenerator<Uint8Array> {
    for (let o = 0; o < b.length; o += 997) yield b.slice(o, o + 997);
  }
  let n = 0;
  for (const [key, path] of corpusFiles()) {
    const bytes = readFileSync(path);
    assert.equal(await outcome(bytes), await outcome(chunks(bytes)), key);
    n++;
  }
  // Large clean base64 bodies (native decoding) against byte-by-byte decoding.
  const att = Buffer.alloc(200_000);
  for (let i = 0; i < att.length; i++) att[i] = (i * 2654435761) >>> 24;
  for (const wrap of [76, 64, 1000, 0]) {
    const b64 =
      wrap === 0
        ? att.toString('base64')
        : att.toString('base64').replace(new RegExp(`.{${wrap}}`, 'g'), '$&\r\n');
    const msg = Buffer.from(
      `From: a@example.com\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`,
    );
    const r = await legacyToFramed(msg, OPTS);
    assert.deepEqual(Buffer.from('body' in r.message.root ? r.message.root.body : []), att);
    assert.equal(await outcome(msg), await outcome(chunks(msg)));
  }
  assert.ok(n > 150);
});
