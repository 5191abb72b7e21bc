/**
 * legacyToFramed: header decoding, bodies, structure, addresses policy, provenance,
 * authentication results (offline: a fixed DNS table), limits and streaming.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dkimSign } from 'mailauth';
import {
  framedPieces,
  legacyToFramed,
  type ConvertOptions,
  type DnsResolver,
} from '../../../adapters/mime/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import {
  encodeMessage,
  getField,
  getFields,
  isContainerPart,
  type Part,
} from '../../../src/core/frame/index.ts';
import { FIXTURES, leaves, shape, typeOf } from './helpers.ts';

const NOW = Date.UTC(2026, 10, 29, 4, 0, 0);
const OPTS: ConvertOptions = { gateway: 'gw.example.net', now: NOW };
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const text = (p: Part): string => new TextDecoder().decode('body' in p ? p.body : new Uint8Array());
const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

async function convert(input: Uint8Array | AsyncIterable<Uint8Array>, opts: ConvertOptions = OPTS) {
  const r = await legacyToFramed(input, opts);
  encodeMessage(r.message); // always a valid framed message
  return r;
}

async function code(input: Uint8Array, opts: ConvertOptions = OPTS): Promise<string> {
  try {
    await legacyToFramed(input, opts);
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof NmtpError, String(e));
    return e.code;
  }
}

test('encoded-words: Q and B, any case, adjacent words joined, malformed kept literal', async () => {
  const { message } = await convert(fixture('encoded-words.eml'));
  const f = message.root.fields;
  assert.equal(getField(f, 'Subject'), 'café au lait and naïve');
  assert.equal(getField(f, 'X-Lower'), 'Привет');
  assert.equal(getField(f, 'X-Malformed'), '=?utf-8?x?broken?= ok');
});

test('folding removed; each control (TAB, CR, LF, NUL) one space, runs kept (§50.3.3)', async () => {
  // Unfolding keeps the WSP after the line break (RFC 5322 §2.2.3), as Python does.
  assert.equal(
    getField((await convert(fixture('folding.eml'))).message.root.fields, 'Subject'),
    'a very long subject that is folded  twice',
  );
  const r = await convert(fixture('controls-in-words.eml'));
  assert.equal(getField(r.message.root.fields, 'Subject'), 'line1  line2 end');
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['control-replaced'],
  );
});

test('raw UTF-8 headers are kept; addresses and display names mapped', async () => {
  const { message } = await convert(fixture('raw-utf8-header.eml'));
  assert.equal(getField(message.root.fields, 'Subject'), 'Grüße aus Köln ✓');
  assert.equal(getField(message.root.fields, 'From'), 'Zoë Ålander <alice@example.com>');
  assert.equal(getField(message.root.fields, 'Date'), '2026-11-29T04:00:00+01:00');
  const eai = await convert(fixture('smtputf8-address.eml'));
  assert.equal(getField(eai.message.root.fields, 'From'), 'Ünïcode <üser@exämple.com>');
});

test('display names: quotes removed, "<" ">" substituted, comments not names', async () => {
  const { message } = await convert(fixture('display-name-brackets.eml'));
  assert.equal(getField(message.root.fields, 'From'), 'a \uff1cb\uff1e c <alice@example.com>');
  assert.equal(getField(message.root.fields, 'To'), 'Jörg <joerg@example.org>, <old@example.org>');
});

test('dates: obsolete forms converted, unparseable kept as Legacy-Date', async () => {
  const ok = await convert(fixture('obsolete-date.eml'));
  assert.equal(getField(ok.message.root.fields, 'Date'), '1996-11-29T04:00:00-05:00');
  const bad = await convert(fixture('bad-date.eml'));
  assert.equal(getField(bad.message.root.fields, 'Date'), undefined);
  assert.equal(getField(bad.message.root.fields, 'Legacy-Date'), 'sometime yesterday');
});

test('charsets: gb18030, big5, euc-kr, koi8-r, windows-1251, iso-2022-jp → UTF-8', async () => {
  const { message } = await convert(fixture('charsets.eml'));
  assert.deepEqual(leaves(message.root).map(text), [
    '中文测试',
    '繁體中文',
    '한국어',
    'Привет',
    'Привет',
    'こんにちは',
  ]);
  for (const l of leaves(message.root))
    assert.equal(getField(l.fields, 'Content-Type'), 'text/plain');
});

test('unconvertible text → application/x-nmtp-legacy-text with the original octets', async () => {
  // An unknown label is no longer unconvertible: its octets are read as what they are
  // (§50.5.2): not UTF-8 here, so windows-1252, said in a warning and in Legacy-Warning.
  const r = await convert(fixture('unknown-charset.eml'));
  assert.equal(getField(r.message.root.fields, 'Content-Type'), 'text/plain');
  assert.equal(text(r.message.root), 'été\r\n');
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['charset-unknown'],
  );
  assert.equal(
    getField(r.message.root.fields, 'Legacy-Warning'),
    'charset-unknown; part=0; in=body; charset=x-no-such-charset; read-as=windows-1252',
  );
  const bad = await convert(fixture('invalid-utf8.eml'));
  assert.match(
    getField(bad.message.root.fields, 'Content-Type')!,
    /charset=utf-8; type=text\/html$/,
  );
});

test('CTE: quoted-printable and invalid base64 decoded leniently, binary kept', async () => {
  const qp = await convert(fixture('qp-body.eml'));
  assert.equal(text(qp.message.root), 'Café softbreak = equals =ZZ bad\r\n');
  const b64 = await convert(fixture('base64-invalid.eml'));
  assert.deepEqual(
    [...('body' in b64.message.root ? b64.message.root.body : [])],
    [0, 1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.deepEqual(
    b64.warnings.map((w) => w.code),
    ['cte-invalid'],
  );
  const bin = await convert(fixture('binary-body.eml'));
  assert.deepEqual(
    [...('body' in bin.message.root ? bin.message.root.body : [])],
    [...Array(256).keys()],
  );
});

test('structure: related/mixed, filenames (RFC 2231 and RFC 2047), Content-Id, disposition', async () => {
  const { message } = await convert(fixture('attachments.eml'));
  assert.equal(
    shape(message.root),
    'multipart/mixed(multipart/related(text/html,image/png),application/pdf)',
  );
  const [, png, pdf] = leaves(message.root);
  assert.equal(getField(png!.fields, 'Content-Id'), '<logo@x>');
  assert.equal(getField(png!.fields, 'Content-Disposition'), 'inline');
  assert.deepEqual([...('body' in png! ? png.body : [])].slice(0, 4), [0x89, 0x50, 0x4e, 0x47]);
  assert.equal(getField(pdf!.fields, 'Content-Filename'), '€ rates.pdf');
  assert.equal(getField(pdf!.fields, 'Content-Disposition'), 'attachment');
  assert.equal(getField(pdf!.fields, 'Content-Type'), 'application/pdf');
});

test('message/rfc822 → message/nmtp with the nested message converted', async () => {
  const { message } = await convert(fixture('rfc822-nested.eml'));
  assert.equal(shape(message.root), 'multipart/mixed(text/plain,message/nmtp(text/plain))');
  const nested = (message.root as { readonly children: readonly Part[] }).children[1] as {
    readonly children: readonly Part[];
  };
  const inner = nested.children[0]!;
  assert.equal(getField(inner.fields, 'From'), 'Inner, Person <inner@example.net>');
  assert.equal(getField(inner.fields, 'Subject'), 'inner ✓');
  assert.equal(getField(inner.fields, 'To'), undefined); // an empty group has no mailbox
  assert.equal(text(inner), 'inner body');
});

test('multipart/signed is kept as a container; its parts are converted', async () => {
  const { message } = await convert(fixture('signed.eml'));
  assert.equal(shape(message.root), 'multipart/signed(text/plain,application/pgp-signature)');
  assert.equal(
    getField(message.root.fields, 'Content-Type'),
    'multipart/signed; protocol=application/pgp-signature; micalg=pgp-sha256',
  );
});

test('broken MIME is recovered as documented', async () => {
  const missing = await convert(fixture('missing-final-boundary.eml'));
  // §50.2.5: the final line break of an unclosed last part is the missing delimiter's.
  assert.deepEqual(leaves(missing.message.root).map(text), ['first', 'second, never closed']);
  // §50.6.1: a multipart without any part is carried as its octets, not made text.
  const none = await convert(fixture('no-boundary-lines.eml'));
  assert.equal(typeOf(none.message.root), 'application/x-nmtp-legacy-multipart');
  assert.match(text(none.message.root), /just text, no boundary/);
  const look = await convert(fixture('boundary-in-content.eml'));
  assert.equal(text(leaves(look.message.root)[0]!), '--abcd is not a boundary\r\n --abc neither');
  const nul = await convert(fixture('nul-and-bare-cr.eml'));
  assert.equal(getField(nul.message.root.fields, 'Subject'), 'a b c');
  assert.equal(text(nul.message.root), 'body with \0 NUL and bare\rCR\nand bare LF\r\n');
});

test('addresses: From must map (reject); other fields carry Legacy-<Name>', async () => {
  assert.equal(await code(fixture('from-domain-literal.eml')), 'NMTP_ERR_MIME_ADDRESS_UNMAPPABLE');
  assert.equal(await code(fixture('no-from.eml')), 'NMTP_ERR_MIME_NO_FROM');
  assert.equal(await code(fixture('empty.eml')), 'NMTP_ERR_MIME_NO_FROM');
  const r = await convert(fixture('to-unmappable.eml'));
  assert.equal(getField(r.message.root.fields, 'To'), '<ok@example.org>');
  assert.equal(
    getField(r.message.root.fields, 'Legacy-To'),
    '"john doe"@example.org, ok@example.org',
  );
  assert.deepEqual(
    r.warnings.map((w) => w.code),
    ['address-unmappable'],
  );
});

test('provenance: envelope, gateway, time, original Message-Id; forged Legacy-* dropped', async () => {
  const { message } = await convert(fixture('legacy-provenance-forged.eml'), {
    ...OPTS,
    envelope: {
      mailFrom: 'bounce@example.com',
      rcptTo: ['bob@example.org', 'c@example.org'],
      clientIp: '192.0.2.1',
      helo: 'mx.example.com',
    },
  });
  const f = message.root.fields;
  assert.equal(getField(f, 'Legacy-Gateway'), 'gw.example.net');
  assert.equal(getField(f, 'Legacy-Converted'), '2026-11-29T04:00:00Z');
  assert.equal(getField(f, 'Legacy-Message-Id'), '<m1@example.com>');
  assert.equal(getField(f, 'Message-Id'), '<m1@example.com>');
  assert.deepEqual(getFields(f, 'Legacy-Envelope-From'), ['<bounce@example.com>']);
  assert.deepEqual(getFields(f, 'Legacy-Envelope-To'), ['<bob@example.org>', '<c@example.org>']);
  assert.equal(getField(f, 'Legacy-Client'), 'ip=192.0.2.1; helo=mx.example.com');
  assert.deepEqual(getFields(f, 'Legacy-Auth'), []); // the forged one is gone
});

test('carryOriginal: the original octets travel beside the converted content', async () => {
  const raw = fixture('attachments.eml');
  const { message } = await convert(raw, { ...OPTS, carryOriginal: true });
  assert.equal(
    shape(message.root),
    'multipart/x-nmtp-legacy(multipart/mixed(multipart/related(text/html,image/png),application/pdf),application/x-nmtp-legacy-original)',
  );
  assert.equal(getField(message.root.fields, 'Subject'), 'files');
  const orig = (message.root as { readonly children: readonly Part[] }).children[1]!;
  assert.ok(Buffer.from('body' in orig ? orig.body : []).equals(raw));
});

// A DNS table for the authentication test; anything else is NXDOMAIN. Unit test of our
// mapping of mailauth's results, not a statement about real DNS.
function tableResolver(table: Record<string, string[][]>): DnsResolver {
  return async (name, rrtype) => {
    const hit = table[`${rrtype} ${name.toLowerCase()}`];
    if (hit !== undefined) return rrtype === 'TXT' ? hit : hit.flat();
    throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  };
}

test('authentication: SPF, DKIM, DMARC evaluated by mailauth and recorded', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const body = crlf(
    'From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: signed\nDate: Sun, 29 Nov 2026 04:00:00 +0000\nMessage-ID: <a1@example.com>\n\nhello\n',
  );
  const signed = await dkimSign(body, {
    signatureData: [{ signingDomain: 'example.com', selector: 'sel', privateKey: pem }],
  } as never);
  const raw = Buffer.concat([Buffer.from(signed.signatures), body]);
  const resolver = tableResolver({
    'TXT sel._domainkey.example.com': [[`v=DKIM1; k=rsa; p=${der}`]],
    'TXT example.com': [['v=spf1 ip4:192.0.2.1 -all']],
    'TXT _dmarc.example.com': [['v=DMARC1; p=reject']],
  });
  const envelope = {
    mailFrom: 'alice@example.com',
    rcptTo: ['bob@example.org'],
    clientIp: '192.0.2.1',
    helo: 'mx.example.com',
  };
  const ok = await convert(raw, { ...OPTS, envelope, auth: { resolver } });
  assert.deepEqual(getFields(ok.message.root.fields, 'Legacy-Auth'), [
    'spf=pass smtp.mailfrom=alice@example.com',
    'dkim=pass header.d=example.com header.s=sel',
    'dmarc=pass header.from=example.com',
  ]);
  // The same message from an address SPF does not allow, with the body altered.
  const tampered = Buffer.from(raw.toString('utf8').replace('hello', 'HELLO'));
  const bad = await convert(tampered, {
    ...OPTS,
    envelope: { ...envelope, clientIp: '198.51.100.7' },
    auth: { resolver },
  });
  assert.deepEqual(getFields(bad.message.root.fields, 'Legacy-Auth'), [
    'spf=fail smtp.mailfrom=alice@example.com',
    'dkim=neutral header.d=example.com header.s=sel',
    'dmarc=fail header.from=example.com',
  ]);
});

test('limits: parts, depth (multipart and rfc822), size, header size → coded errors', async () => {
  const H = 'From: a@example.com\n';
  // 10,000 parts
  let many = `${H}Content-Type: multipart/mixed; boundary=b\n\n`;
  for (let i = 0; i < 10_000; i++) many += '--b\nContent-Type: text/plain\n\nx\n';
  assert.equal(await code(crlf(`${many}--b--\n`)), 'NMTP_ERR_MIME_TOO_MANY_PARTS');
  // multipart nested 1,000 deep
  let deep = `${H}Content-Type: multipart/mixed; boundary=b0\n\n`;
  for (let i = 1; i < 1000; i++)
    deep += `--b${i - 1}\nContent-Type: multipart/mixed; boundary=b${i}\n\n`;
  assert.equal(await code(crlf(deep)), 'NMTP_ERR_MIME_TOO_DEEP');
  // message/rfc822 nested 1,000 deep
  let nested = 'x\n';
  for (let i = 0; i < 1000; i++) nested = `${H}Content-Type: message/rfc822\n\n${nested}`;
  assert.equal(await code(crlf(nested)), 'NMTP_ERR_MIME_TOO_DEEP');
  // size and header size
  const big = crlf(`${H}Subject: s\n\n${'x'.repeat(5000)}\n`);
  assert.equal(
    await code(big, { ...OPTS, limits: { maxMessageBytes: 4096 } }),
    'NMTP_ERR_MIME_TOO_LARGE',
  );
  const head = crlf(`${H}X-Big: ${'y'.repeat(70_000)}\n\nbody\n`);
  assert.equal(await code(head), 'NMTP_ERR_MIME_HEADER_TOO_LARGE');
  // within the limits the same shapes convert
  assert.equal(
    await code(crlf(deep.split('--b30')[0]! + '--b29--\n'), { ...OPTS, limits: { maxDepth: 40 } }),
    'ok',
  );
});

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

test('streaming input: any chunking gives the same result', async () => {
  for (const name of ['attachments.eml', 'qp-body.eml', 'charsets.eml', 'rfc822-nested.eml']) {
    const raw = fixture(name);
    const whole = encodeMessage((await convert(raw)).message);
    for (const size of [1, 3, 7, 64]) {
      const parts = encodeMessage((await convert(chunked(raw, size))).message);
      assert.deepEqual(parts, whole, `${name} in ${size}-octet chunks`);
    }
  }
});

test('a large base64 attachment streams through and decodes exactly', async () => {
  const payload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
  const b64 = payload.toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.concat([
    crlf(
      'From: a@example.com\nContent-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n',
    ),
    Buffer.from(b64),
    crlf('\n--z--\n'),
  ]);
  const { message } = await convert(chunked(raw, 65_536));
  const leaf = leaves(message.root)[0]!;
  assert.ok(!isContainerPart(leaf) && Buffer.from(leaf.body).equals(payload));
});

test('a 200 MB attachment is refused while streaming, without reading it all', async () => {
  let yielded = 0;
  const chunk = Buffer.alloc(1 << 20, 0x41); // "AAAA..." is valid base64
  async function* twoHundredMb(): AsyncGenerator<Uint8Array> {
    yield crlf(
      'From: a@example.com\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n',
    );
    for (let i = 0; i < 200; i++) {
      yielded += chunk.length;
      yield chunk;
    }
  }
  const before = process.memoryUsage().rss;
  await assert.rejects(legacyToFramed(twoHundredMb(), OPTS), { code: 'NMTP_ERR_MIME_TOO_LARGE' });
  // Stopped at the 64 MiB default, not after 200 MB.
  assert.ok(yielded <= 66 * 1024 * 1024, `read ${yielded} octets`);
  assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024);
});

test('framedPieces: the pieces are exactly encodeMessage, bodies not copied', async () => {
  for (const name of ['attachments.eml', 'rfc822-nested.eml', 'charsets.eml']) {
    const { message } = await convert(fixture(name));
    const { pieces, length } = framedPieces(message);
    const joined = Buffer.concat(pieces);
    assert.equal(joined.length, length);
    assert.ok(joined.equals(encodeMessage(message)), name);
    const bodies = leaves(message.root).map((l) => ('body' in l ? l.body : undefined));
    for (const b of bodies) if (b !== undefined && b.length > 0) assert.ok(pieces.includes(b));
  }
});

test('a failing or non-byte input stream is NMTP_ERR_MIME_INPUT', async () => {
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield crlf('From: a@example.com\n\nbody');
    throw new Error('connection reset');
  }
  await assert.rejects(legacyToFramed(failing(), OPTS), { code: 'NMTP_ERR_MIME_INPUT' });
  async function* notBytes(): AsyncGenerator<Uint8Array> {
    yield 42 as unknown as Uint8Array;
  }
  await assert.rejects(legacyToFramed(notBytes(), OPTS), { code: 'NMTP_ERR_MIME_INPUT' });
});

test('a header with 900 fields stays inside the framed header limits', async () => {
  const many = Array.from({ length: 900 }, (_, i) => `X-F${i}: value ${i}\n`).join('');
  const r = await convert(crlf(`From: a@example.com\n${many}\nbody\n`));
  const { decodeMessage } = await import('../../../src/core/frame/index.ts');
  decodeMessage(encodeMessage(r.message)); // default limits: 256 fields, 64 KiB
  assert.ok(r.warnings.some((w) => w.code === 'field-dropped-limit'));
});
