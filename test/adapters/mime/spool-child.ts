/**
 * Child process of spool.test.ts (and a helper for it): converts a message with a 200 MB
 * base64 attachment, generated on the fly, with legacyToFramedFile, and prints one JSON line
 * with the output length and RSS before and at peak (process.resourceUsage().maxRSS).
 *
 *   node --import tsx test/adapters/mime/spool-child.ts <spool-dir>
 */
import { readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';

const B64_LINE_BYTES = 57; // 76 base64 characters per line

/** A multipart message whose application/octet-stream attachment has `size` octets. */
export async function* attachmentMessage(size: number): AsyncGenerator<Uint8Array> {
  yield Buffer.from(
    'From: alice@example.com\r\nTo: bob@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n' +
      'see attached\r\n--b\r\nContent-Type: application/octet-stream\r\n' +
      'Content-Disposition: attachment; filename="big.bin"\r\n' +
      'Content-Transfer-Encoding: base64\r\n\r\n',
  );
  // 1000 lines per chunk, each chunk's octets derived from a counter (not all the same).
  let done = 0;
  let block = 0;
  while (done < size) {
    const n = Math.min(size - done, B64_LINE_BYTES * 1000);
    const raw = createHash('sha256').update(String(block++)).digest();
    const bytes = Buffer.alloc(n, raw);
    yield Buffer.from(bytes.toString('base64').replace(/.{76}/g, '$&\r\n') + '\r\n');
    done += n;
  }
  yield Buffer.from('--b--\r\n');
}

async function main(dir: string): Promise<void> {
  const { legacyToFramedFile } = await import('../../../adapters/mime/index.ts');
  const size = 200 * 1000 * 1000;
  const opts = { gateway: 'gw.example.net', now: 0, limits: { maxMessageBytes: 400 * 2 ** 20 } };
  // Warm up (modules, JIT) on a small message, then take the baseline.
  const warm = await legacyToFramedFile(attachmentMessage(1 << 20), opts, { spoolDir: dir });
  for await (const p of warm.pieces) void p;
  globalThis.gc?.();
  const baselineRss = process.memoryUsage.rss();
  let peakRss = baselineRss;
  const sample = (): void => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, 5);
  const r = await legacyToFramedFile(attachmentMessage(size), opts, { spoolDir: dir });
  let output = 0;
  for await (const p of r.pieces) output += p.length;
  clearInterval(timer);
  sample();
  // maxRSS (KiB) catches peaks between samples.
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  assert(output === r.length);
  const spoolLeft = readdirSync(dir).length;
  console.log(JSON.stringify({ attachment: size, output, baselineRss, peakRss, spoolLeft }));
}

function assert(ok: boolean): void {
  if (!ok) throw new Error('output length differs from the announced length');
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').at(-1)!)) {
  await main(process.argv[2] ?? '.');
}
