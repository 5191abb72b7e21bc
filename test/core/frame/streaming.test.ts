/**
 * Streaming: a body far larger than any buffer passes through in bounded memory, as views
 * of the pushed chunks, and the digest is still right.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  END,
  FrameDecoder,
  NEED_MORE,
  SENTINEL_BYTES,
  encodeHeader,
  encodePreamble,
} from '../../../src/core/frame/index.ts';

const MiB = 1024 * 1024;

test('a 256 MiB body in 64 KiB chunks: bounded memory, every byte delivered, right digest', () => {
  const bodyLength = 256 * MiB;
  const chunkSize = 64 * 1024;
  const header = encodeHeader(
    [{ name: 'Content-Type', value: 'application/octet-stream' }],
    bodyLength,
  );
  const d = new FrameDecoder({ limits: { maxTotalBytes: 1024 * MiB } });
  const expected = createHash('sha256');
  let delivered = 0;
  let digest: Uint8Array | undefined;
  const drain = (): void => {
    for (let ev = d.next(); ev !== NEED_MORE && ev !== END; ev = d.next()) {
      if (ev.type === 'body') delivered += ev.bytes.length;
      if (ev.type === 'end') digest = ev.contentDigest;
    }
  };
  const push = (bytes: Uint8Array, hashed: boolean): void => {
    if (hashed) expected.update(bytes);
    d.push(bytes);
    drain();
  };

  push(encodePreamble([]), false);
  push(header, true);
  const before = process.memoryUsage();
  let peak = 0;
  for (let sent = 0, i = 0; sent < bodyLength; sent += chunkSize, i++) {
    // A fresh chunk each time: if the decoder kept references, memory would grow by 256 MiB.
    const chunk = new Uint8Array(chunkSize).fill(i & 0xff);
    push(chunk, true);
    if (i % 256 === 0) {
      const now = process.memoryUsage();
      peak = Math.max(
        peak,
        now.heapUsed + now.arrayBuffers - before.heapUsed - before.arrayBuffers,
      );
    }
  }
  push(SENTINEL_BYTES, true);
  d.finish();
  assert.equal(delivered, bodyLength);
  assert.deepEqual(digest, new Uint8Array(expected.digest()));
  // Generous: garbage not yet collected counts too. Retaining chunks would pass 256 MiB.
  assert.ok(peak < 96 * MiB, `memory grew by ${(peak / MiB).toFixed(1)} MiB`);
});
