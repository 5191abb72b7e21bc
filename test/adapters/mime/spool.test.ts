/**
 * legacyToFramedFile (spill-to-file body store, spec §50.8): byte-identical to the in-memory
 * path, the spool file is removed after success and failure, and memory stays bounded for a
 * 200 MB attachment (measured in a child process).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  legacyToFramed,
  legacyToFramedFile,
  type ConvertOptions,
  type SpoolOptions,
} from '../../../adapters/mime/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { encodeMessage } from '../../../src/core/frame/index.ts';
import { COMPOSED, compose, corpusFiles } from './helpers.ts';
import { attachmentMessage } from './spool-child.ts';

const OPTS: ConvertOptions = { gateway: 'gw.example.net', now: Date.UTC(2026, 10, 29, 4, 0, 0) };

function spoolDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-spool-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function collect(pieces: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const p of pieces) out.push(p);
  return Buffer.concat(out);
}

/** 'ok:<hex of the framed bytes>' or the error code, for either path. */
async function viaMemory(input: Uint8Array, opts: ConvertOptions): Promise<string> {
  try {
    return `ok:${Buffer.from(encodeMessage((await legacyToFramed(input, opts)).message)).toString('hex')}`;
  } catch (e) {
    if (e instanceof NmtpError) return e.code;
    throw e;
  }
}
async function viaFile(input: Uint8Array, opts: ConvertOptions, spool: SpoolOptions) {
  try {
    const r = await legacyToFramedFile(input, opts, spool);
    const bytes = await collect(r.pieces);
    assert.equal(bytes.length, r.length);
    return `ok:${bytes.toString('hex')}`;
  } catch (e) {
    if (e instanceof NmtpError) return e.code;
    throw e;
  }
}

test('file store output is byte-identical to the in-memory path on the whole corpus', async (t) => {
  const dir = spoolDir(t);
  const inputs: [string, Uint8Array][] = [...corpusFiles()].map(([k, p]) => [k, readFileSync(p)]);
  for (const [name, o] of COMPOSED) inputs.push([`composed/${name}`, await compose(o)]);
  let spilled = 0;
  for (const [key, bytes] of inputs) {
    for (const opts of [OPTS, { ...OPTS, carryOriginal: true }]) {
      const expected = await viaMemory(bytes, opts);
      // Threshold 0 spills every non-empty body; 64 mixes memory and file bodies.
      for (const spillThreshold of [0, 64]) {
        const got = await viaFile(bytes, opts, { spoolDir: dir, spillThreshold });
        assert.equal(got, expected, `${key} threshold ${spillThreshold}`);
        assert.deepEqual(readdirSync(dir), [], `${key}: spool file left behind`);
        if (got.startsWith('ok:')) spilled++;
      }
    }
  }
  assert.ok(spilled > 100);
});

test('a 3 MiB attachment (default threshold) is spilled and streamed back identically', async (t) => {
  const dir = spoolDir(t);
  const raw = await collect(attachmentMessage(3 * 1024 * 1024));
  const expected = encodeMessage((await legacyToFramed(raw, OPTS)).message);
  const r = await legacyToFramedFile(raw, OPTS, { spoolDir: dir });
  assert.equal(readdirSync(dir).length, 1, 'the body is in a spool file');
  assert.equal(r.length, expected.length);
  assert.ok(Buffer.from(expected).equals(await collect(r.pieces)));
  assert.deepEqual(readdirSync(dir), []);
});

test('the spool file is removed after a failure and by dispose()', async (t) => {
  const dir = spoolDir(t);
  const spool = { spoolDir: dir };
  // The input stream fails after 2 MiB of attachment have been spilled.
  async function* failing(): AsyncGenerator<Uint8Array> {
    let n = 0;
    for await (const c of attachmentMessage(8 * 1024 * 1024)) {
      yield c;
      if ((n += c.length) > 3 * 1024 * 1024) throw new Error('connection reset');
    }
  }
  await assert.rejects(legacyToFramedFile(failing(), OPTS, spool), { code: 'NMTP_ERR_MIME_INPUT' });
  assert.deepEqual(readdirSync(dir), []);
  // A limit hit after spilling.
  const limited = { ...OPTS, limits: { maxMessageBytes: 4 * 1024 * 1024 } };
  await assert.rejects(legacyToFramedFile(attachmentMessage(8 << 20), limited, spool), {
    code: 'NMTP_ERR_MIME_TOO_LARGE',
  });
  assert.deepEqual(readdirSync(dir), []);
  // Success but never iterated: dispose() removes it (twice is fine).
  const r = await legacyToFramedFile(attachmentMessage(2 << 20), OPTS, spool);
  assert.equal(readdirSync(dir).length, 1);
  r.dispose();
  r.dispose();
  assert.deepEqual(readdirSync(dir), []);
  // Iteration broken off early also removes it.
  const r2 = await legacyToFramedFile(attachmentMessage(2 << 20), OPTS, spool);
  for await (const p of r2.pieces) if (p.length > 0) break;
  assert.deepEqual(readdirSync(dir), []);
});

test('200 MB base64 attachment: peak RSS growth stays far below the attachment size', (t) => {
  const dir = spoolDir(t);
  const child = fileURLToPath(new URL('./spool-child.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, dir], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
    attachment: number;
    output: number;
    baselineRss: number;
    peakRss: number;
    spoolLeft: number;
  };
  t.diagnostic(
    `attachment ${m.attachment} B, output ${m.output} B, baseline RSS ${(m.baselineRss / 2 ** 20).toFixed(1)} MiB, peak ${(m.peakRss / 2 ** 20).toFixed(1)} MiB`,
  );
  assert.ok(m.attachment >= 200e6);
  assert.ok(m.output > m.attachment, 'the whole attachment came out');
  assert.equal(m.spoolLeft, 0);
  assert.ok(m.peakRss - m.baselineRss < 100e6, `RSS grew by ${m.peakRss - m.baselineRss}`);
});
