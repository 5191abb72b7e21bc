/**
 * Benchmark (not a test): framed-message decode/encode throughput, side by side with
 * mailparser's simpleParser on the equivalent MIME message and with plain SHA-256 over the
 * same bytes.
 *
 *   node --import tsx bench/frame.bench.ts
 *
 * The framed decoder validates every header and hashes the whole root part (the content
 * digest), so SHA-256 over the message is its natural ceiling; mailparser is what a legacy
 * pipeline pays to get the same structure out of MIME.
 */
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { simpleParser } from 'mailparser';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  decodeMessage,
  encodeMessage,
  type FramedMessage,
} from '../src/core/frame/index.ts';

const MB = 1e6;

/** Deterministic pseudo-random bytes (xorshift), so runs compare like with like. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function prose(n: number): string {
  const words = 'the quick brown fox jumps over a lazy dog while über-fast ÆØÅ mail flows'.split(
    ' ',
  );
  let s = '';
  let line = '';
  for (let i = 0; s.length < n; i++) {
    line += (line ? ' ' : '') + words[i % words.length];
    if (line.length > 70) {
      s += line + '\r\n';
      line = '';
    }
  }
  return s.slice(0, n);
}

interface Content {
  readonly text: string;
  readonly html: string;
  readonly attachments: readonly { name: string; type: string; bytes: Uint8Array }[];
}

function content(size: number): Content {
  return {
    text: prose(Math.floor(size * 0.05)),
    html: `<html><body><p>${prose(Math.floor(size * 0.05)).replaceAll('\r\n', '</p>\r\n<p>')}</p></body></html>`,
    attachments: [
      { name: 'report.pdf', type: 'application/pdf', bytes: noise(Math.floor(size * 0.6), 1) },
      { name: 'photo.jpg', type: 'image/jpeg', bytes: noise(Math.floor(size * 0.3), 2) },
    ],
  };
}

const HEAD = {
  from: 'Ann Example <ann@example.org>',
  to: 'Bob Example <bob@example.net>',
  subject: 'Quarterly report',
  date: '2026-11-29T03:40:00Z',
};

function framed(c: Content): FramedMessage {
  const te = new TextEncoder();
  return {
    trace: [{ name: 'Trace', value: 'by mx.example.net' }],
    root: {
      fields: [
        { name: 'From', value: HEAD.from },
        { name: 'To', value: HEAD.to },
        { name: 'Subject', value: HEAD.subject },
        { name: 'Date', value: HEAD.date },
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'multipart/alternative' }],
          children: [
            { fields: [{ name: 'Content-Type', value: 'text/plain' }], body: te.encode(c.text) },
            { fields: [{ name: 'Content-Type', value: 'text/html' }], body: te.encode(c.html) },
          ],
        },
        ...c.attachments.map((a) => ({
          fields: [
            { name: 'Content-Type', value: a.type },
            { name: 'Content-Disposition', value: 'attachment' },
            { name: 'Content-Filename', value: a.name },
          ],
          body: a.bytes,
        })),
      ],
    },
  };
}

/** The same content as RFC 5322 + MIME: 8bit text, base64 attachments in 76-column lines. */
function mime(c: Content): Buffer {
  const b64 = (bytes: Uint8Array): string =>
    (
      Buffer.from(bytes)
        .toString('base64')
        .match(/.{1,76}/g) ?? []
    ).join('\r\n');
  const parts = [
    'From: Ann Example <ann@example.org>',
    'To: Bob Example <bob@example.net>',
    'Subject: Quarterly report',
    'Date: Sun, 29 Nov 2026 03:40:00 +0000',
    'Message-ID: <bench@example.org>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="mixed-b"',
    '',
    '--mixed-b',
    'Content-Type: multipart/alternative; boundary="alt-b"',
    '',
    '--alt-b',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    c.text,
    '--alt-b',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    c.html,
    '--alt-b--',
  ];
  for (const a of c.attachments) {
    parts.push(
      '--mixed-b',
      `Content-Type: ${a.type}; name="${a.name}"`,
      `Content-Disposition: attachment; filename="${a.name}"`,
      'Content-Transfer-Encoding: base64',
      '',
      b64(a.bytes),
    );
  }
  parts.push('--mixed-b--', '');
  return Buffer.from(parts.join('\r\n'), 'utf8');
}

/** Median MB/s of `fn` over `bytes` input octets, run for at least `minMs`. */
async function measure(bytes: number, fn: () => unknown, minMs = 1500): Promise<number> {
  await fn(); // warm-up
  const rates: number[] = [];
  const start = performance.now();
  while (performance.now() - start < minMs || rates.length < 5) {
    const t0 = performance.now();
    await fn();
    rates.push(bytes / MB / ((performance.now() - t0) / 1000));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}

function streamDecode(bytes: Uint8Array, chunk: number): void {
  const d = new FrameDecoder();
  for (let at = 0; at < bytes.length; at += chunk) {
    d.push(bytes.subarray(at, at + chunk));
    for (let ev = d.next(); ev !== NEED_MORE && ev !== END; ev = d.next());
  }
  d.finish();
}

const rows: string[] = [];
const out = (s: string): void => {
  rows.push(s);
  console.log(s);
};

out(`node ${process.version}, ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}`);
out('');
out(
  '| message | framed size | MIME size | decode (1 buffer) | decode (64 KiB chunks) | encode | SHA-256 | mailparser | decode ÷ mailparser | decode ÷ SHA-256 |',
);
out('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const size of [1 * MB, 10 * MB]) {
  const c = content(size);
  const tree = framed(c);
  const bytes = encodeMessage(tree);
  const mimeBytes = mime(c);
  // Sanity: both forms carry the same attachments.
  const parsed = await simpleParser(mimeBytes);
  if (
    parsed.attachments.length !== 2 ||
    parsed.attachments[0]!.size !== c.attachments[0]!.bytes.length
  ) {
    throw new Error('MIME form does not match');
  }
  const decode = await measure(bytes.length, () => decodeMessage(bytes));
  const chunked = await measure(bytes.length, () => streamDecode(bytes, 64 * 1024));
  const encode = await measure(bytes.length, () => encodeMessage(tree));
  const sha = await measure(bytes.length, () => createHash('sha256').update(bytes).digest());
  // mailparser's rate is over the same content (framed octets), so the ratio compares time
  // per message; its MIME input is ~1.3x larger because of base64.
  const mp = await measure(bytes.length, () => simpleParser(mimeBytes), 3000);
  const f = (x: number): string => `${x.toFixed(0)} MB/s`;
  out(
    `| ${size / MB} MB | ${bytes.length} B | ${mimeBytes.length} B | ${f(decode)} | ${f(chunked)} | ${f(encode)} | ${f(sha)} | ${f(mp)} | ${(decode / mp).toFixed(1)}× | ${(decode / sha).toFixed(2)} |`,
  );
}
