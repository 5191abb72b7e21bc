/**
 * Generates test/vectors/convert/: legacy → framed conversion vectors (docs/protocol.md §50.12).
 * Run: node --import tsx test/vectors/convert/generate.ts
 *
 * Each vector is a legacy input (<id>.eml, octets as sent after DATA), the framed message the
 * reference converter gives (<id>.nmtp) with the options in cases.json, and the warning codes.
 * The inputs are the fixtures named below (test/fixtures/mime/); every expected output was
 * checked by hand against the §50 rule the vector names (and is re-checked by
 * test/adapters/mime/vectors.test.ts on every run).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { encodeMessage } from '../../../src/core/frame/index.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../fixtures/mime/', import.meta.url));

export const OPTIONS = { gateway: 'gw.example.net', now: Date.UTC(2026, 10, 29, 4, 0, 0) };

/** id, fixture, what it shows. */
export const VECTORS: readonly (readonly [string, string, string])[] = [
  ['qp-body', 'qp-body.eml', '§50.5.1: quoted-printable (soft breaks, lower-case hex, a stray "=" kept) → UTF-8'],
  ['charset-aliases', 'charset-aliases.eml', '§50.5.2: labels resolved through WHATWG, Python and mail aliases (big5_tw, eucgb2312_cn, x-gbk, ks_c_5601-1987, cp1252, latin_1, utf8, quoted/spaced, Windows-31J, KOI8_R)'],
  ['charset-unknown-words', 'charset-unknown-words.eml', '§50.3.2: unknown encoded-word charsets read as UTF-8 or windows-1252, Legacy-Warning written'],
  ['charset-unknown-body', 'unknown-charset.eml', '§50.5.2: an unknown body label: not UTF-8, read as windows-1252, Legacy-Warning written'],
  ['charset-unsupported', 'unsupported-charset.eml', '§50.5.2: a known charset without a decoder: legacy-text with type=, words kept as written'],
  ['iso-2022-kr', 'iso-2022-kr.eml', '§50.5.2: ISO-2022-KR (RFC 1557) in a word and a body'],
  ['hz-gb-2312', 'hz-gb-2312.eml', '§50.5.2: HZ (RFC 1843) in a word and a body'],
  ['digest', 'digest.eml', '§50.6.2: multipart/digest children without Content-Type are message/rfc822'],
  ['bom', 'bom.eml', '§50.5.2, §50.3.1: byte order marks consumed (UTF-8, UTF-16 LE/BE, UTF-32, UTF-16 without BOM read LE)'],
  ['bom-before-header', 'bom-before-header.eml', '§50.3.1: a UTF-8 BOM before the first field is consumed'],
  ['raw-8bit-header', 'raw-8bit-header.eml', '§50.3.1: raw 8-bit header octets that are not UTF-8 are windows-1252'],
  ['stray-boundary', 'stray-boundary.eml', '§50.2: only the media type makes a part multipart; a stray boundary= is ignored'],
  ['multipart-close-only', 'multipart-close-only.eml', '§50.6.1: a multipart with only a close-delimiter is carried as its octets'],
  ['multipart-empty', 'multipart-empty.eml', '§50.6.1: a multipart with an empty body'],
  ['multipart-nested-no-parts', 'multipart-nested-no-parts.eml', '§50.6.1: a nested multipart without parts; the parent delimiter owns the last line break'],
  ['multipart-reused-boundary', 'multipart-reused-boundary.eml', '§50.2: a nested multipart reusing its parent\'s boundary'],
  ['continuation-after-dropped', 'continuation-after-dropped.eml', '§50.3.1: a continuation line goes with the dropped line before it'],
  ['header-end-missing', 'header-end-missing-part.eml', '§50.3.1: parts whose empty line after the header is missing'],
  ['missing-final-boundary', 'missing-final-boundary.eml', '§50.2: an unclosed last part; its final line break is the missing delimiter\'s'],
  ['spec-points', 'spec-points.eml', '§50.3.3, §50.3.5, §50.3.6, §50.4.3, §50.5.3: empty address lists, military Z, ids with whitespace, NBSP/U+3000/TAB, trimmed parameters, x-custom disposition'],
  ['folding', 'folding.eml', '§50.3.3: unfolding keeps the WSP; TAB becomes SP; runs kept'],
];

async function main(): Promise<void> {
  const cases = [];
  for (const [id, fixture, description] of VECTORS) {
    const input = readFileSync(join(FIXTURES, fixture));
    const r = await legacyToFramed(input, OPTIONS);
    writeFileSync(join(HERE, `${id}.eml`), input);
    writeFileSync(join(HERE, `${id}.nmtp`), encodeMessage(r.message));
    cases.push({
      id,
      description,
      input: `${id}.eml`,
      expected: `${id}.nmtp`,
      warnings: r.warnings.map((w) => w.code),
    });
  }
  const doc = {
    format: 'NMTP legacy → framed conversion vectors (docs/protocol.md section 50)',
    fields:
      'input is a file of legacy octets (after DATA, dot-unstuffed); expected is the framed message (section 10) a conforming converter produces with options; warnings lists the warning codes (section 50.10) in order.',
    options: { gateway: OPTIONS.gateway, now_text: new Date(OPTIONS.now).toISOString() },
    vectors: cases,
  };
  writeFileSync(join(HERE, 'cases.json'), `${JSON.stringify(doc, null, 1)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
