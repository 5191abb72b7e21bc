/**
 * Conversion fidelity (issue 11): each class of legacy mail that used to lose data, with the
 * §50 rule that now decides it. Fixtures: test/fixtures/mime/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { legacyToFramed, type ConvertResult } from '../../../adapters/mime/index.ts';
import { resolveCharset, transcodeToUtf8 } from '../../../adapters/mime/charset.ts';
import { decodeEncodedWords, newNotes } from '../../../adapters/mime/encoded-words.ts';
import {
  encodeMessage,
  getField,
  getFields,
  isContainerPart,
  type Part,
} from '../../../src/core/frame/index.ts';
import { FIXTURES, leaves, shape, typeOf } from './helpers.ts';

const OPTS = { gateway: 'gw.example.net', now: Date.UTC(2026, 10, 29, 4, 0, 0) };
const convert = (name: string): Promise<ConvertResult> =>
  legacyToFramed(readFileSync(join(FIXTURES, name)), OPTS);
const raw = (s: string): Promise<ConvertResult> =>
  legacyToFramed(Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1'), OPTS);
const text = (p: Part): string => new TextDecoder().decode('body' in p ? p.body : new Uint8Array());
const codes = (r: ConvertResult): string[] => r.warnings.map((w) => w.code);
const FROM = 'From: a@example.com\n';

test('item 1: charset labels resolve through WHATWG, IANA, Python and mail aliases', async () => {
  // Labels seen in real mail, odd case and spaces included → the decoder they mean.
  const cases: [string, string][] = [
    ['big5_tw', 'big5'],
    ['eucgb2312_cn', 'gbk'],
    ['x-gbk', 'gbk'],
    ['ks_c_5601-1987', 'euc-kr'],
    ['cp1252', 'windows-1252'],
    ['latin_1', 'iso-8859-1'],
    ['utf8', 'utf-8'],
    [' UTF-8 ', 'utf-8'],
    ['"iso-8859-15"', 'iso-8859-15'],
    ['Windows-31J', 'shift_jis'],
    ['ISO_8859-9', 'iso-8859-9'],
    ['koi8_r', 'koi8-r'],
    ['mac_roman', 'macintosh'],
    ['unicode-1-1-utf-7', 'utf-7'],
    ['iso-2022-kr', 'iso-2022-kr'],
    ['HZ-GB-2312', 'hz-gb-2312'],
  ];
  for (const [label, name] of cases) assert.equal(resolveCharset(label)?.name, name, label);
  for (const unknown of ['x-nonsense', 'x-user-defined', 'unknown-8bit', '']) {
    assert.equal(resolveCharset(unknown), undefined, unknown);
  }

  const r = await convert('charset-aliases.eml');
  assert.equal(getField(r.message.root.fields, 'Subject'), '中文中文中文한국어“quote” €caféGrüße');
  assert.deepEqual(leaves(r.message.root).map(text), [
    '中文',
    '中文',
    '中文',
    '한국어',
    '“quote” €',
    'café',
    'Grüße',
    'œuvre €',
    '日本語',
    'Привет',
  ]);
  assert.deepEqual(codes(r), []);
  const kr = await convert('iso-2022-kr.eml');
  assert.equal(getField(kr.message.root.fields, 'Subject'), '안');
  assert.equal(text(kr.message.root), '안\r\n');
  const hz = await convert('hz-gb-2312.eml');
  assert.equal(getField(hz.message.root.fields, 'Subject'), '中文');
  assert.equal(text(hz.message.root), '中文 and ~ tilde\r\n');
});

test('item 1: an unknown label is read by its octets, never as U+FFFD, and says so', async () => {
  const r = await convert('charset-unknown-words.eml');
  const f = r.message.root.fields;
  assert.equal(getField(f, 'Subject'), 'café / café “ok”');
  assert.deepEqual(codes(r), ['charset-unknown', 'charset-unknown']);
  assert.deepEqual(getFields(f, 'Legacy-Warning'), [
    'charset-unknown; part=0; in=Subject; charset=x-nonsense; read-as=utf-8',
    'charset-unknown; part=0; in=Subject; charset=x-foo; read-as=windows-1252',
  ]);
  // Bodies: valid UTF-8 is UTF-8, anything else windows-1252 (§50.5.2).
  const utf8 = transcodeToUtf8(Buffer.from('caf\xc3\xa9', 'latin1'), 'x-nonsense');
  assert.ok(utf8.ok && utf8.guessed === 'utf-8');
  assert.equal(new TextDecoder().decode(utf8.ok ? utf8.utf8 : undefined), 'café');
  const cp = transcodeToUtf8(Buffer.from('\x93caf\xe9\x94', 'latin1'), 'x-nonsense');
  assert.ok(cp.ok && cp.guessed === 'windows-1252');
  assert.equal(new TextDecoder().decode(cp.ok ? cp.utf8 : undefined), '“café”');
  // A charset known but without a decoder keeps its octets and its words as written.
  const un = await convert('unsupported-charset.eml');
  assert.equal(
    getField(un.message.root.fields, 'Content-Type'),
    'application/x-nmtp-legacy-text; charset=ISO-2022-CN; type=text/plain',
  );
  assert.equal(
    getField(un.message.root.fields, 'Subject'),
    '=?iso-2022-cn?Q?=1B$)A=0E=3D=3B=0F?= ok',
  );
  assert.deepEqual(codes(un), ['charset-unsupported', 'text-unconvertible']);
  // RFC 2231 file names use the same labels (§50.3.2).
  const name = async (cd: string): Promise<[string | undefined, string[]]> => {
    const r = await raw(
      `${FROM}Content-Type: application/octet-stream\nContent-Disposition: ${cd}\n\nx\n`,
    );
    return [getField(r.message.root.fields, 'Content-Filename'), codes(r)];
  };
  assert.deepEqual(await name("attachment; filename*=big5_tw''%A4%A4.txt"), ['中.txt', []]);
  assert.deepEqual(await name("attachment; filename*=x-foo''caf%E9.txt"), [
    'café.txt',
    ['charset-unknown'],
  ]);
  assert.deepEqual(await name("attachment; filename*0*=utf-8''caf%C3; filename*1*=%A9.txt"), [
    'café.txt',
    [],
  ]);
  // Adjacent words of a stateful charset are decoded one by one (each resets its state).
  const notes = newNotes();
  assert.equal(
    decodeEncodedWords(
      '=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=',
      notes,
    ),
    'テストテスト',
  );
  assert.equal(notes.invalid, 0);
  // A character split across two words is joined (§50.3.2).
  assert.equal(decodeEncodedWords('=?utf-8?Q?caf=C3?= =?utf-8?Q?=A9?='), 'café');
});

test('item 2: multipart/digest children without Content-Type are nested messages', async () => {
  const r = await convert('digest.eml');
  assert.equal(
    shape(r.message.root),
    'multipart/digest(message/nmtp(text/plain),message/nmtp(multipart/alternative(text/plain,text/html)),text/plain)',
  );
  const root = r.message.root;
  assert.ok(isContainerPart(root));
  const first = root.children[0]!;
  assert.ok(isContainerPart(first));
  assert.equal(getField(first.children[0]!.fields, 'From'), '<one@example.net>');
  assert.equal(getField(first.children[0]!.fields, 'Subject'), 'first');
  assert.equal(text(first.children[0]!), 'body one');
});

test('item 3: byte order marks are consumed by decoding, in bodies and headers', async () => {
  const r = await convert('bom.eml');
  assert.equal(getField(r.message.root.fields, 'Subject'), 'bom subject');
  assert.equal(getField(r.message.root.fields, 'X-Raw'), 'raw value');
  // utf-8 BOM; utf-16 LE BOM; UTF-16 BE BOM; utf-32 LE BOM; utf-16 without BOM (LE).
  assert.deepEqual(leaves(r.message.root).map(text), [
    'utf-8 with BOM',
    'hello ✓',
    'hello ✓',
    'hello ✓',
    'hi',
  ]);
  const h = await convert('bom-before-header.eml');
  assert.equal(getField(h.message.root.fields, 'From'), 'Alice <alice@example.com>');
  assert.equal(getField(h.message.root.fields, 'Subject'), 'starts with a BOM');
});

test('item 4: raw 8-bit header octets that are not UTF-8 are windows-1252', async () => {
  const r = await convert('raw-8bit-header.eml');
  assert.equal(getField(r.message.root.fields, 'Subject'), '“quoted” – 10€ café');
  assert.deepEqual(codes(r), ['header-not-utf8']);
});

test('item 5: a stray boundary= on a non-multipart part does not cost its body', async () => {
  const r = await convert('stray-boundary.eml');
  assert.equal(shape(r.message.root), 'multipart/mixed(text/html,text/plain)');
  assert.deepEqual(leaves(r.message.root).map(text), [
    '<p>first</p>',
    '--inner\r\nnot a part\r\n--inner--',
  ]);
  // At the top level too.
  const top = await raw(
    `${FROM}Content-Type: text/html; boundary="xyz"\n\n--xyz\n<p>hello</p>\n--xyz--\n`,
  );
  assert.equal(text(top.message.root), '--xyz\r\n<p>hello</p>\r\n--xyz--\r\n');
});

test('item 6: degenerate multiparts are carried losslessly (§50.6.1)', async () => {
  const close = await convert('multipart-close-only.eml');
  assert.equal(
    getField(close.message.root.fields, 'Content-Type'),
    'application/x-nmtp-legacy-multipart; type=multipart/mixed',
  );
  assert.equal(text(close.message.root), 'preamble text\r\n--b--\r\nepilogue text\r\n');
  assert.deepEqual(codes(close), ['multipart-no-parts']);

  const empty = await convert('multipart-empty.eml');
  assert.equal(typeOf(empty.message.root), 'application/x-nmtp-legacy-multipart');
  assert.equal(text(empty.message.root), '');

  const nested = await convert('multipart-nested-no-parts.eml');
  assert.equal(
    shape(nested.message.root),
    'multipart/mixed(text/plain,application/x-nmtp-legacy-multipart)',
  );
  // Its own close-delimiter and epilogue are kept; the parent's delimiter owns the last CRLF.
  assert.equal(text(leaves(nested.message.root)[1]!), 'just words\r\n--never--\r\nepilogue words');

  const reused = await convert('multipart-reused-boundary.eml');
  assert.equal(
    shape(reused.message.root),
    'multipart/mixed(multipart/alternative(text/plain,text/html),application/octet-stream)',
  );
  assert.deepEqual(leaves(reused.message.root).map(text), [
    'inner plain',
    '<p>inner html</p>',
    'attached',
  ]);
});

test('item 7: a continuation line goes with the dropped line before it', async () => {
  const r = await convert('continuation-after-dropped.eml');
  assert.equal(getField(r.message.root.fields, 'Subject'), 'hello');
  assert.equal(getField(r.message.root.fields, 'X-After'), 'kept');
  assert.deepEqual(codes(r), ['header-line-dropped']);
  // A line no field follows is where the header ended: it starts the body (§50.3.1).
  const parts = await convert('header-end-missing-part.eml');
  assert.deepEqual(leaves(parts.message.root).map(text), ['bar\r\n', '<p>baz</p>\r\n']);
  assert.deepEqual(codes(parts), ['header-end-missing', 'header-end-missing']);
});

test('item 8: the §10/§50 points settled by issue 11', async () => {
  const r = await convert('spec-points.eml');
  const f = r.message.root.fields;
  // Empty address lists are not written (§10.5.3); their text travels as Legacy-<Name>.
  assert.equal(getField(f, 'To'), undefined);
  assert.equal(getField(f, 'Legacy-To'), 'undisclosed-recipients:;');
  assert.equal(getField(f, 'Cc'), undefined);
  assert.equal(getField(f, 'Legacy-Cc'), undefined);
  // Military "Z" is UTC, written "Z" (§50.3.5).
  assert.equal(getField(f, 'Date'), '2026-11-29T04:00:00Z');
  // Whitespace and comments inside message identifiers are removed (§50.3.6).
  assert.equal(getField(f, 'Message-Id'), '<1234@local.machine.example>');
  assert.equal(getField(f, 'References'), '<a@b> <c@d>');
  // NBSP and U+3000 are text and stay; a TAB is one SP; runs of SP stay (§50.3.3).
  assert.equal(getField(f, 'Subject'), 'a\u00a0b\u3000c  d end');
  // Parameter values are trimmed: no SP before ";" (§10.5.2).
  assert.equal(getField(f, 'Content-Type'), 'text/plain; format=flowed; delsp=yes');
  // A disposition other than inline/attachment is kept as written (§50.5.3).
  assert.equal(getField(f, 'Content-Disposition'), 'x-custom');
  const z = await convert('date-zones.eml');
  assert.equal(getField(z.message.root.fields, 'Date'), '2026-11-29T04:00:00Z');
  // type= is written for unconvertible text/plain too (§10.4).
  const bad = await raw(`${FROM}Content-Type: text/plain; charset=utf-8\n\n\xff\n`);
  assert.equal(
    getField(bad.message.root.fields, 'Content-Type'),
    'application/x-nmtp-legacy-text; charset=utf-8; type=text/plain',
  );
  // Every converted message is a valid framed message.
  for (const m of [r, z, bad]) encodeMessage(m.message);
});
