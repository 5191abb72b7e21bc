/**
 * The wire codec: parse∘print identity for every verb and reply shape, limits checked
 * before buffering, coded errors with offsets, and chunking independence (every 2-way split
 * and fast-check random chunkings give the same items).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  END,
  NEED_MORE,
  WireDecoder,
  encodeChunk,
  encodeChunks,
  encodeCommand,
  encodeReply,
  parseCommandLine,
  parseReplyLine,
  printCommandLine,
  printReplyLine,
  type Command,
  type Reply,
  type WireItem,
  type WireRole,
} from '../../../src/core/wire/index.ts';

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

/** Decodes everything, merging adjacent chunk-data so that items compare across chunkings. */
function decodeAll(role: WireRole, pieces: readonly Uint8Array[], limits = {}): unknown[] {
  const d = new WireDecoder(role, limits);
  const out: unknown[] = [];
  const drain = (): boolean => {
    for (;;) {
      const it: WireItem | typeof NEED_MORE | typeof END = d.next();
      if (it === NEED_MORE) return true;
      if (it === END) return false;
      if (it.kind === 'chunk-data') {
        const prev = out.at(-1) as { kind: string; bytes: number[] } | undefined;
        if (prev?.kind === 'chunk-data') prev.bytes.push(...it.bytes);
        else out.push({ kind: 'chunk-data', bytes: [...it.bytes], offset: it.offset });
        continue;
      }
      if (it.kind === 'error') {
        out.push({
          kind: 'error',
          code: it.error.code,
          offset: it.error.details.offset,
          fatal: it.fatal,
        });
        if (it.fatal) return false;
        continue;
      }
      out.push(it);
    }
  };
  for (const p of pieces) {
    d.push(p);
    if (!drain()) return out;
  }
  d.end();
  drain();
  return out;
}

const COMMANDS: Command[] = [
  { verb: 'HELLO', args: ['example.org'], params: { sel: 's2026', proof: 'x'.repeat(86) } },
  { verb: 'RCPT', args: ['alice@example.net'], params: {} },
  { verb: 'RCPT', args: ['a=b@example.net'], params: {} },
  { verb: 'RCPT', args: ['jürgen@bücher.example'], params: {} },
  {
    verb: 'DATA',
    args: [],
    params: { size: '438', digest: 'd'.repeat(43), signers: 'example.org,alice@example.org' },
  },
  { verb: 'DATA', args: [], params: { size: '0', digest: 'd'.repeat(43), cookie: 'ck-1' } },
  { verb: 'STATUS', args: ['ck-1'], params: {} },
  { verb: 'GIVEUP', args: ['ck-1'], params: {} },
  { verb: 'RSET', args: [], params: {} },
  { verb: 'NOOP', args: [], params: {} },
  { verb: 'QUIT', args: [], params: {} },
  { verb: 'AUTH', args: ['PLAIN', 'AGFsaWNl'], params: {} },
  { verb: 'AUTH', args: ['KEY', 'alice@example.org', 'k'.repeat(43), 's'.repeat(86)], params: {} },
  { verb: 'SEND', args: [], params: { size: '104' } },
  { verb: 'SIGN', args: [], params: { size: '104' } },
  { verb: 'CERTIFY', args: [], params: { key: 'k'.repeat(43), days: '30' } },
];

const REPLIES: Reply[] = [
  {
    code: 220,
    enhanced: '2.0.0',
    params: {
      version: 'NMTP/1',
      service: 'transfer',
      server: 'mx.example.net',
      challenge: 'oKGio6SlpqeoqaqrrK2urw',
    },
    text: '',
  },
  { code: 250, enhanced: '2.0.0', params: {}, text: '' },
  {
    code: 350,
    enhanced: '2.0.0',
    params: {
      rcpt: 'carol@example.net',
      cookie: 'ck-1',
      min: '60',
      max: '3600',
      expires: '1795086400',
    },
    text: '',
  },
  {
    code: 550,
    enhanced: '5.7.1',
    params: { rcpt: 'dave@example.net', err: 'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED' },
    text: 'content refused # really, x=y',
  },
  { code: 421, enhanced: '4.4.2', params: {}, text: ' leading space kept' },
  { code: 250, enhanced: '2.0.0', params: {}, text: 'Grüße — ünïcödé' },
];

test('every command prints and parses back to itself', () => {
  for (const c of COMMANDS) {
    const line = printCommandLine(c);
    assert.deepEqual(parseCommandLine(line, bytes(line).length + 2, 0), c, line);
    assert.equal(printCommandLine(parseCommandLine(line, bytes(line).length + 2, 0)), line);
  }
});

test('every reply prints and parses back to itself', () => {
  for (const r of REPLIES) {
    const line = printReplyLine(r);
    assert.deepEqual(parseReplyLine(line, 0), r, line);
  }
});

test('command grammar: one spelling only', () => {
  const bad: [string, string][] = [
    ['quit', 'NMTP_ERR_WIRE_UNKNOWN_COMMAND'],
    ['QUIT ', 'NMTP_ERR_WIRE_SYNTAX'],
    ['RCPT  a@b.example', 'NMTP_ERR_WIRE_SYNTAX'],
    ['RCPT', 'NMTP_ERR_WIRE_SYNTAX'],
    ['DATA digest=x size=1', 'NMTP_ERR_WIRE_SYNTAX'], // order
    ['DATA size=1', 'NMTP_ERR_WIRE_SYNTAX'], // digest required
    ['DATA size=1 digest=x size=2', 'NMTP_ERR_WIRE_SYNTAX'],
    ['DATA size=1 digest=x colour=red', 'NMTP_ERR_WIRE_SYNTAX'],
    ['AUTH LOGIN x', 'NMTP_ERR_WIRE_SYNTAX'],
    ['RCPT a\u0007@b.example', 'NMTP_ERR_WIRE_SYNTAX'],
  ];
  for (const [line, code] of bad) {
    assert.throws(
      () => parseCommandLine(line, bytes(line).length + 2, 7),
      (e: { code: string; details: { offset: number } }) =>
        e.code === code && e.details.offset === 7,
      line,
    );
  }
});

test('reply grammar: enhanced class matches the code, no repeats, "#" starts text', () => {
  for (const line of [
    '250 5.0.0',
    '25 2.0.0',
    '250 2.0',
    '354 3.0.0',
    '250 2.0.0 a=1 a=2',
    '250 2.0.0 #',
    '250 2.0.0 Text',
  ]) {
    assert.throws(() => parseReplyLine(line, 0), line);
  }
  assert.deepEqual(parseReplyLine('354 2.0.0 view=full', 0).params, { view: 'full' });
  assert.equal(parseReplyLine('250 2.0.0 # a=b # c', 0).text, 'a=b # c');
});

test('per-verb size limit: QUIT is at most 16 octets', () => {
  const items = decodeAll('server', [bytes('QUIT\r\nNOOP xxxxxxxxxxxxxx\r\nQUIT\r\n')]);
  assert.deepEqual(
    items.map((i) => (i as { kind: string; code?: string }).code ?? (i as { kind: string }).kind),
    ['command', 'NMTP_ERR_WIRE_COMMAND_TOO_LONG', 'command'],
  );
});

test('an overlong line is refused once maxLine octets arrived, without buffering more', () => {
  const d = new WireDecoder('server');
  d.push(bytes('NOOP\r\n'));
  assert.equal((d.next() as { kind: string }).kind, 'command');
  for (let i = 0; i < 2047; i++) {
    d.push(bytes('a'));
    assert.equal(d.next(), NEED_MORE);
  }
  d.push(bytes('a'.repeat(1_000_000)));
  const it = d.next() as Extract<WireItem, { kind: 'error' }>;
  assert.equal(it.error.code, 'NMTP_ERR_WIRE_LINE_TOO_LONG');
  assert.equal(it.error.details.offset, 6);
  assert.equal(it.fatal, true);
  // Fatal: the same error forever after.
  assert.equal(
    (d.next() as Extract<WireItem, { kind: 'error' }>).error.code,
    'NMTP_ERR_WIRE_LINE_TOO_LONG',
  );
});

test('a line of exactly maxLine octets (CRLF included) is accepted', () => {
  const rcpt = `RCPT ${'a'.repeat(16)}@example.net`;
  const items = decodeAll('server', [bytes(`${rcpt}\r\n`)], { maxLine: bytes(rcpt).length + 2 });
  assert.equal((items[0] as { kind: string }).kind, 'command');
  const over = decodeAll('server', [bytes(`${rcpt}\r\n`)], { maxLine: bytes(rcpt).length + 1 });
  assert.equal((over[0] as { code: string }).code, 'NMTP_ERR_WIRE_LINE_TOO_LONG');
});

test('chunks: header, body views, sentinel; lies and oversize are caught with offsets', () => {
  const ok = decodeAll('server', [bytes('CHUNK 5\r\nhello\r\nCHUNK 0 LAST\r\n\r\n')]);
  assert.deepEqual(ok, [
    { kind: 'chunk', size: 5, last: false, offset: 0 },
    { kind: 'chunk-data', bytes: [...bytes('hello')], offset: 9 },
    { kind: 'chunk-end', last: false, offset: 14 },
    { kind: 'chunk', size: 0, last: true, offset: 16 },
    { kind: 'chunk-end', last: true, offset: 30 },
  ]);
  const cases: [string, string, number][] = [
    ['CHUNK 3\r\nhello\r\n', 'NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH', 12],
    ['CHUNK 7\r\nhello\r\nQUIT\r\n', 'NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH', 16],
    ['CHUNK 1048577\r\n', 'NMTP_ERR_WIRE_CHUNK_TOO_LARGE', 0],
    ['CHUNK 05\r\n', 'NMTP_ERR_WIRE_CHUNK_SIZE', 0],
    ['CHUNK -5\r\n', 'NMTP_ERR_WIRE_CHUNK_SIZE', 0],
    ['CHUNK 5 last\r\n', 'NMTP_ERR_WIRE_CHUNK_SIZE', 0],
    ['CHUNK 99999999999999999999\r\n', 'NMTP_ERR_WIRE_CHUNK_SIZE', 0],
    ['CHUNK\r\n', 'NMTP_ERR_WIRE_CHUNK_SIZE', 0],
  ];
  for (const [input, code, offset] of cases) {
    const items = decodeAll('server', [bytes(input)]);
    const err = items.at(-1) as { code: string; offset: number; fatal: boolean };
    assert.deepEqual([err.code, err.offset, err.fatal], [code, offset, true], input);
  }
});

test('bare LF and stray CR are fatal; invalid UTF-8 is not', () => {
  assert.equal(
    (decodeAll('server', [bytes('NOOP\n')])[0] as { code: string }).code,
    'NMTP_ERR_WIRE_BARE_LF',
  );
  assert.equal(
    (decodeAll('server', [bytes('NO\rOP\r\n')])[0] as { code: string }).code,
    'NMTP_ERR_WIRE_BARE_LF',
  );
  const items = decodeAll('server', [new Uint8Array([0x52, 0xff, 0x0d, 0x0a]), bytes('NOOP\r\n')]);
  assert.deepEqual(
    items.map((i) => (i as { code?: string; kind: string }).code ?? (i as { kind: string }).kind),
    ['NMTP_ERR_WIRE_INVALID_UTF8', 'command'],
  );
});

test('end of stream inside a line or chunk is NMTP_ERR_WIRE_TRUNCATED', () => {
  for (const input of ['NOO', 'CHUNK 5\r\nhel', 'CHUNK 5\r\nhello\r']) {
    const items = decodeAll('server', [bytes(input)]);
    assert.equal((items.at(-1) as { code: string }).code, 'NMTP_ERR_WIRE_TRUNCATED', input);
  }
});

test('a client decodes replies and the chunks a server returns (SIGN, CERTIFY)', () => {
  const stream = concatAll([
    encodeReply({ code: 250, enhanced: '2.0.0', params: { size: '3' }, text: '' }),
    encodeChunk(bytes('abc'), true),
  ]);
  const items = decodeAll('client', [stream]);
  assert.deepEqual(
    items.map((i) => (i as { kind: string }).kind),
    ['reply', 'chunk', 'chunk-data', 'chunk-end'],
  );
});

test('encodeChunks splits at the limit and marks only the last', () => {
  const parts = encodeChunks(new Uint8Array(10), 4).map(
    (p) => new TextDecoder().decode(p).split('\r\n')[0],
  );
  assert.deepEqual(parts, ['CHUNK 4', 'CHUNK 4', 'CHUNK 2 LAST']);
  assert.deepEqual(
    encodeChunks(new Uint8Array(0)).map((p) => p.length),
    [16],
  );
});

function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A session's worth of client octets: commands, chunks, a non-fatal error, a chunk lie. */
const STREAM = concatAll([
  ...COMMANDS.map(encodeCommand),
  bytes('BOGUS\r\n'),
  ...encodeChunks(bytes('NMTP/1\r\n\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n'), 7),
  bytes('CHUNK 2 LAST\r\nabc\r\n'),
]);

test('every 2-way split of a stream decodes to the same items', () => {
  const want = decodeAll('server', [STREAM]);
  assert.equal((want.at(-1) as { code: string }).code, 'NMTP_ERR_WIRE_CHUNK_LENGTH_MISMATCH');
  for (let i = 0; i <= STREAM.length; i++) {
    const got = decodeAll('server', [STREAM.subarray(0, i), STREAM.subarray(i)]);
    if (JSON.stringify(got) !== JSON.stringify(want)) assert.deepEqual(got, want, `split at ${i}`);
  }
});

test('random chunkings decode to the same items (fast-check)', () => {
  const want = JSON.stringify(decodeAll('server', [STREAM]));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: STREAM.length }), { maxLength: 40 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const pieces: Uint8Array[] = [];
      let prev = 0;
      for (const p of [...points, STREAM.length]) {
        pieces.push(STREAM.subarray(prev, p));
        prev = p;
      }
      return JSON.stringify(decodeAll('server', pieces)) === want;
    }),
    { numRuns: 300 },
  );
});

test('parse∘print is the identity on generated replies (fast-check)', () => {
  const token = fc.stringMatching(/^[-A-Za-z0-9@._:,]{1,12}$/);
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
  const reply = fc.record({
    code: fc.constantFrom(220, 250, 350, 354, 450, 550),
    params: fc.dictionary(name, token, { maxKeys: 5 }),
    // eslint-disable-next-line no-control-regex
    text: fc.string({ maxLength: 30 }).map((s) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '')),
  });
  fc.assert(
    fc.property(reply, ({ code, params, text }) => {
      const r: Reply = {
        code,
        enhanced: `${code >= 400 ? String(code)[0] : '2'}.0.0`,
        params: { ...params },
        text,
      };
      const line = printReplyLine(r);
      const back = parseReplyLine(line, 0);
      return JSON.stringify(back) === JSON.stringify(r) && printReplyLine(back) === line;
    }),
  );
});
