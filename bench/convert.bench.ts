/**
 * legacy → framed conversion throughput, side by side with mailparser's simpleParser (the
 * floor a naive gateway pays) on the same inputs in the same run, plus peak RSS for the
 * 25 MB case measured in child processes (one per converter) so each starts clean.
 *
 *   node --import tsx bench/convert.bench.ts
 *
 * convert and simpleParser are measured interleaved (they take turns in ~100 ms slices), so
 * load from other jobs on a shared machine affects both alike; the last column is their ratio.
 *
 * "convert" = legacyToFramed (streaming split, CTE decode, charset, header mapping) and
 * framedPieces (the framed bytes as ordered pieces, ready to write to a socket; every
 * header block is encoded and validated), i.e. the whole conversion to wire bytes without
 * gathering them into one buffer. "convert (file)" = legacyToFramedFile (bodies over 1 MiB
 * spilled to a spool file in os.tmpdir() and streamed back). "to legacy" = framedToLegacyChunks
 * over the converted message (8BITMIME peer, no SMTPUTF8), every chunk consumed; its MB/s
 * counts the legacy octets produced.
 */
import { spawnSync } from 'node:child_process';
import {
  createReadStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { framedPieces, legacyToFramed, legacyToFramedFile } from '../adapters/mime/index.ts';
import { framedToLegacyChunks } from '../adapters/legacy/index.ts';
import type { FramedMessage } from '../src/core/frame/index.ts';

const OPTS = { gateway: 'gw.example.net', now: 0, limits: { maxMessageBytes: 64 * 1024 * 1024 } };

function attachmentMessage(textBytes: number, attachmentBytes: number): Buffer {
  const text = 'Grüße aus Köln — 12345 lorem ipsum dolor sit amet.\r\n'.repeat(
    Math.max(1, Math.floor(textBytes / 55)),
  );
  const head =
    'From: "Ålice" <alice@example.com>\r\nTo: bob@example.org\r\n' +
    'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Sun, 29 Nov 2026 04:00:00 +0000\r\n' +
    'Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n';
  if (attachmentBytes === 0) {
    return Buffer.from(
      `${head}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}`,
    );
  }
  const att = Buffer.alloc(attachmentBytes);
  for (let i = 0; i < att.length; i++) att[i] = (i * 2654435761) >>> 24;
  const b64 = att.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    `${head}Content-Type: multipart/mixed; boundary="=_b_="\r\n\r\n--=_b_=\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}\r\n` +
      `--=_b_=\r\nContent-Type: application/octet-stream\r\n` +
      `Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
      `${b64}\r\n--=_b_=--\r\n`,
  );
}

const INPUTS = {
  '4 KB': () => attachmentMessage(4000, 0),
  '100 KB (attachment)': () => attachmentMessage(2000, 72 * 1024),
  '25 MB (attachment)': () => attachmentMessage(2000, 18 * 1024 * 1024),
} as const;

async function convert(raw: Buffer): Promise<number> {
  const { message } = await legacyToFramed(raw, OPTS);
  return framedPieces(message).length;
}
async function convertFile(raw: Buffer): Promise<number> {
  const r = await legacyToFramedFile(raw, OPTS);
  let n = 0;
  for await (const p of r.pieces) n += p.length;
  return n;
}
const LEGACY_OPTS = { smtputf8: false, eightBitMime: true };
function toLegacy(message: FramedMessage): number {
  let n = 0;
  for (const c of framedToLegacyChunks(message, LEGACY_OPTS)) n += c.length;
  return n;
}
async function parse(raw: Buffer): Promise<number> {
  const m = await simpleParser(raw);
  return m.attachments.length;
}

async function rate(fn: (b: Buffer) => Promise<number>, raw: Buffer, seconds: number) {
  for (let i = 0; i < 2; i++) await fn(raw); // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || n < 3) {
    await fn(raw);
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return { perSec: n / elapsed, mbPerSec: (n * raw.length) / elapsed / 1e6 };
}

/**
 * Rates of several functions measured side by side: they take turns in slices of about
 * 100 ms for `seconds` each in total, so a change of machine load (other jobs on shared
 * cores) hits all of them alike instead of whichever happened to run during it.
 */
async function interleaved(
  fns: readonly ((b: Buffer) => Promise<number>)[],
  raw: Buffer,
  seconds: number,
): Promise<{ perSec: number; mbPerSec: number }[]> {
  for (const fn of fns) for (let i = 0; i < 2; i++) await fn(raw); // warm up
  const n = fns.map(() => 0);
  const spent = fns.map(() => 0);
  const slice = 0.1;
  for (let round = 0; round < Math.ceil(seconds / slice); round++) {
    for (const [k, fn] of fns.entries()) {
      const start = process.hrtime.bigint();
      let elapsed: number;
      do {
        await fn(raw);
        n[k]!++;
        elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      } while (elapsed < slice);
      spent[k]! += elapsed;
    }
  }
  return fns.map((_, k) => ({
    perSec: n[k]! / spent[k]!,
    mbPerSec: (n[k]! * raw.length) / spent[k]! / 1e6,
  }));
}

/**
 * Child mode: convert the 25 MB message streamed from a file (as an SMTP DATA stream
 * would arrive) and print the baseline RSS (runtime and modules loaded, after GC) and the
 * peak RSS sampled every 2 ms during the conversion.
 */
async function child(which: string, file: string): Promise<void> {
  const size = statSync(file).size;
  (globalThis as { gc?: () => void }).gc?.();
  let base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  if (which === 'to legacy') {
    // The framed message is in memory before the baseline: what is measured is the output.
    stream.destroy();
    const { message } = await legacyToFramed(readFileSync(file), OPTS);
    (globalThis as { gc?: () => void }).gc?.();
    base = process.memoryUsage().rss;
    peak = base;
    toLegacy(message);
  } else if (which === 'convert (file)') {
    const r = await legacyToFramedFile(stream, OPTS);
    for await (const p of r.pieces) void p;
  } else if (which === 'convert') {
    const { message } = await legacyToFramed(stream, OPTS);
    framedPieces(message);
  } else {
    await simpleParser(stream);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  clearInterval(timer);
  console.log(JSON.stringify({ size, base, peak }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} threads)`,
  );
  const rows = [
    '| input | octets | convert msg/s | convert MB/s | convert (file) msg/s | convert (file) MB/s | legacy octets | to legacy msg/s | to legacy MB/s | simpleParser msg/s | simpleParser MB/s | convert ÷ simpleParser |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [name, make] of Object.entries(INPUTS)) {
    const raw = make();
    const secs = raw.length > 1e6 ? 4 : 2;
    const [c, p] = (await interleaved([convert, parse], raw, secs)) as [
      { perSec: number; mbPerSec: number },
      { perSec: number; mbPerSec: number },
    ];
    const { message } = await legacyToFramed(raw, OPTS);
    const out = toLegacy(message);
    const l = await rate(async () => toLegacy(message), raw, secs);
    const lMb = (l.perSec * out) / 1e6;
    const f = raw.length > 1e6 ? await rate(convertFile, raw, secs) : undefined;
    const fc = f === undefined ? '—' : f.perSec.toFixed(1);
    const fm = f === undefined ? '—' : f.mbPerSec.toFixed(1);
    rows.push(
      `| ${name} | ${raw.length} | ${c.perSec.toFixed(1)} | ${c.mbPerSec.toFixed(1)} | ${fc} | ${fm} | ${out} | ${l.perSec.toFixed(1)} | ${lMb.toFixed(1)} | ${p.perSec.toFixed(1)} | ${p.mbPerSec.toFixed(1)} | ${(c.perSec / p.perSec).toFixed(2)} |`,
    );
  }
  for (const r of rows) console.log(r);
  const self = fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-bench-'));
  const file = join(dir, 'large.eml');
  writeFileSync(file, INPUTS['25 MB (attachment)']());
  console.log(
    '\n| 25 MB peak RSS | input MB | baseline RSS MB | peak RSS MB | peak − baseline MB | (peak − baseline) / input |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const which of ['convert', 'convert (file)', 'to legacy', 'simpleParser']) {
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', self, '--child', which, file],
      { encoding: 'utf8' },
    );
    const { size, base, peak } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<
      string,
      number
    >;
    const mb = (n: number): string => (n / 1048576).toFixed(1);
    console.log(
      `| ${which} | ${mb(size!)} | ${mb(base!)} | ${mb(peak!)} | ${mb(peak! - base!)} | ${((peak! - base!) / size!).toFixed(2)} |`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
}

await main();
