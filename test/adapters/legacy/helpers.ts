/**
 * Shared test helpers for framed → legacy: framed tree builders, the Python oracle
 * (oracle.py, the standard `email` package with policy=default), and a comparison of the
 * oracle's decoding with what the framed message says.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type Field,
  type Part,
  contentTypeParam,
  getField,
  isContainerPart,
  parseContentType,
  parseDate,
} from '../../../src/core/frame/index.ts';
import { parseMailboxList, toLegacyAddress } from '../../../src/core/address/index.ts';
import type { LegacyOptions } from '../../../adapters/legacy/index.ts';

export const enc = new TextEncoder();
export const f = (name: string, value: string): Field => ({ name, value });
export const leaf = (fields: Field[], body: Uint8Array | string): Part => ({
  fields,
  body: typeof body === 'string' ? enc.encode(body) : body,
});
export const box = (fields: Field[], children: Part[]): Part => ({ fields, children });

export const PEERS: readonly LegacyOptions[] = [
  { smtputf8: false, eightBitMime: false },
  { smtputf8: false, eightBitMime: true },
  { smtputf8: true, eightBitMime: false },
  { smtputf8: true, eightBitMime: true },
];

export interface OracleTree {
  headers: [string, string][];
  addresses: Record<string, [string, string][]>;
  date?: string;
  defects: string[];
  type: string;
  filename: string | null;
  charset: string | null;
  cte: string | null;
  body_b64?: string;
  children?: OracleTree[];
}

const ORACLE = fileURLToPath(new URL('./oracle.py', import.meta.url));

/** Decodes legacy messages with Python's email package (one process for the batch). */
export function pythonDecode(messages: readonly Uint8Array[]): OracleTree[] {
  const input = JSON.stringify(messages.map((m) => Buffer.from(m).toString('base64')));
  const r = spawnSync('python3', [ORACLE], { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`oracle failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as OracleTree[];
}

/** The legacy media type the converter must produce for a framed part. */
export function expectedType(part: Part, peer: LegacyOptions): string {
  const ct = parseContentType(getField(part.fields, 'Content-Type') ?? 'text/plain');
  const t = `${ct.type}/${ct.subtype}`.toLowerCase();
  if (t === 'message/nmtp') return 'message/rfc822|message/global';
  if (t === 'application/x-nmtp-legacy-text') {
    const orig = contentTypeParam(ct, 'type');
    return orig?.startsWith('text/') === true ? orig.toLowerCase() : 'text/plain';
  }
  void peer;
  return t;
}

const UNSTRUCTURED_SKIP = /^(content-|legacy-envelope-to$|mime-version$)/i;

/**
 * Compares the oracle's decoding with the framed part: type, filename, octets, shape,
 * every header's decoded text, and no defects.
 */
export function assertDecodedEqual(
  part: Part,
  got: OracleTree,
  peer: LegacyOptions,
  where = 'root',
): void {
  assert.deepEqual(got.defects, [], `${where}: defects`);
  const type = expectedType(part, peer);
  if (type.includes('|'))
    assert.ok(type.split('|').includes(got.type), `${where}: type ${got.type}`);
  else assert.equal(got.type, type, `${where}: type`);
  // CPython's get_filename() ends with email.utils.unquote(), which strips one pair of
  // surrounding quotes or angle brackets even from an RFC 2231 value where %22…%22 are part
  // of the name: the expectation is passed through the same function.
  const fn = getField(part.fields, 'Content-Filename');
  assert.equal(got.filename, fn === undefined ? null : pyUnquote(fn), `${where}: filename`);
  const headers = new Map<string, string[]>();
  for (const [n, v] of got.headers) {
    const k = n.toLowerCase();
    headers.set(k, [...(headers.get(k) ?? []), v]);
  }
  for (const fld of part.fields) {
    const lower = fld.name.toLowerCase();
    if (UNSTRUCTURED_SKIP.test(lower)) continue;
    if (['from', 'to', 'cc', 'sender', 'reply-to'].includes(lower)) {
      const expect = parseMailboxList(fld.value).map((m) => [
        m.displayName ?? '',
        toLegacyAddress(m.address, { smtputf8: true }),
      ]);
      // CPython 3.11 keeps the space between adjacent encoded-words in a display name
      // (RFC 2047 §6.2 says to ignore it): spaces are not compared where words were split.
      const squash = (l: string[][] | undefined): unknown =>
        l?.map(([n, a]) => [peer.smtputf8 ? n : n!.replace(/ /g, ''), a]);
      assert.deepEqual(squash(got.addresses[lower]), squash(expect), `${where}: ${fld.name}`);
    } else if (lower === 'date') {
      const d = parseDate(fld.value);
      assert.equal(Date.parse(got.date!), Math.floor(d.epochMs / 1000) * 1000, `${where}: Date`);
    } else {
      const values = headers.get(lower) ?? [];
      assert.ok(
        values.includes(fld.value),
        `${where}: ${fld.name} ${JSON.stringify(values)} ≠ ${JSON.stringify(fld.value)}`,
      );
    }
  }
  if (isContainerPart(part)) {
    assert.ok(got.children !== undefined, `${where}: container expected`);
    assert.equal(got.children.length, part.children.length, `${where}: children`);
    part.children.forEach((c, i) =>
      assertDecodedEqual(c, got.children![i]!, peer, `${where}/${i}`),
    );
  } else if (got.children !== undefined && type === 'message/delivery-status') {
    // Python splits a delivery-status body into its field blocks; the octets are checked
    // by the round trip through legacyToFramed.
  } else if (got.children !== undefined && type.startsWith('message/')) {
    // A message/rfc822 leaf: the oracle parses it as a message; its octets were checked
    // to be sent unencoded, so only the shape is compared here.
    assert.equal(got.children.length, 1, `${where}: encapsulated message`);
  } else {
    assert.equal(got.body_b64, Buffer.from(part.body).toString('base64'), `${where}: body octets`);
  }
}

/** email.utils.unquote of CPython 3.11: one pair of "…" (with \\ and \" undone) or <…>. */
function pyUnquote(s: string): string {
  if (s.length > 1 && s.startsWith('"') && s.endsWith('"')) {
    return s.slice(1, -1).split('\\\\').join('\\').split('\\"').join('"');
  }
  if (s.length > 1 && s.startsWith('<') && s.endsWith('>')) return s.slice(1, -1);
  return s;
}

/** Line rules every output must meet: CRLF only, ≤ 998 octets, 7-bit unless allowed. */
export function assertWireRules(out: Uint8Array, peer: LegacyOptions): void {
  const b = Buffer.from(out);
  let lineStart = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 10) {
      assert.equal(b[i - 1], 13, `bare LF at ${i}`);
      assert.ok(i - 1 - lineStart <= 998, `line of ${i - 1 - lineStart} octets at ${lineStart}`);
      lineStart = i + 1;
    } else if (c === 13) {
      assert.equal(b[i + 1], 10, `bare CR at ${i}`);
    } else if (c === 0) {
      assert.fail(`NUL at ${i}`);
    } else if (c >= 0x80 && !peer.smtputf8 && !peer.eightBitMime) {
      assert.fail(`8-bit octet at ${i} toward a 7-bit peer`);
    }
  }
  assert.equal(lineStart, b.length, 'the message ends with CRLF');
}

/** Header section lines (up to the first empty line) longer than 78 octets. */
export function longHeaderLines(out: Uint8Array): string[] {
  const s = Buffer.from(out).toString('utf8');
  const head = s.slice(0, s.indexOf('\r\n\r\n'));
  return head.split('\r\n').filter((l) => Buffer.byteLength(l) > 78);
}
