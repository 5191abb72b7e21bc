/**
 * Child process of pool.test.ts: sends a warm-up message, then a large one, both streamed
 * from files with deliver(), and prints one JSON line with the answer code, the message
 * size and RSS before and at peak (process.resourceUsage().maxRSS catches peaks between
 * samples).
 *
 *   node --import tsx test/client/send-child.ts <port> <ca-file> <seed-hex> <small> <big>
 */
import { readFileSync } from 'node:fs';
import { keyPairFromSeed } from '../../src/core/keys/index.ts';
import { deliver, fileSource } from '../../src/client/transfer.ts';

const [port, caFile, seedHex, small, big] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const identity = {
  domain: 'example.org',
  selector: 's1',
  key: keyPairFromSeed(Buffer.from(seedHex, 'hex')),
};
const o = {
  ca: readFileSync(caFile),
  srv: () =>
    Promise.resolve({
      status: 'ok' as const,
      targets: [{ name: '127.0.0.1', port: Number(port), priority: 0, weight: 0 }],
    }),
};

// Warm up (modules, JIT, TLS) on a small message, then take the baseline.
await deliver('example.net', ['warm@example.net'], await fileSource(small), identity, o);
globalThis.gc?.();
const baselineRss = process.memoryUsage.rss();
let peakRss = baselineRss;
const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 5);
const source = await fileSource(big);
const r = await deliver('example.net', ['big@example.net'], source, identity, o);
clearInterval(timer);
peakRss = Math.max(peakRss, process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024);
const code = r.recipients[0]?.reply.code ?? 0;
console.log(JSON.stringify({ code, size: source.size, baselineRss, peakRss }));
