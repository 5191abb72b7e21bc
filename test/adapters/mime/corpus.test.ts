/**
 * Every corpus message converts, or fails with the code the manifest expects
 * (test/fixtures/mime/manifest.json), and the result is a valid framed message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { legacyToFramed } from '../../../adapters/mime/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { decodeMessage, encodeMessage } from '../../../src/core/frame/index.ts';
import { COMPOSED, compose, corpusFiles, loadManifest, shape } from './helpers.ts';

const OPTS = { gateway: 'gw.example.net', now: Date.UTC(2026, 10, 29, 4, 0, 0) };

async function outcome(bytes: Uint8Array): Promise<{ code: string; warnings: string[] }> {
  try {
    const r = await legacyToFramed(bytes, OPTS);
    // The result must be a framed message the core codec accepts and reproduces.
    const encoded = encodeMessage(r.message);
    assert.deepEqual(encodeMessage(decodeMessage(encoded)), encoded);
    return { code: 'ok', warnings: r.warnings.map((w) => w.code) };
  } catch (e) {
    if (e instanceof NmtpError) return { code: e.code, warnings: [] };
    throw e; // anything else is a crash: the test fails
  }
}

test('manifest lists every corpus message and nothing else', () => {
  const files = [...corpusFiles().keys()].sort();
  const listed = Object.keys(loadManifest()).sort();
  assert.deepEqual(listed, files);
});

test('every corpus message has its expected outcome', async () => {
  const manifest = loadManifest();
  const counts = { ok: 0, failed: 0 };
  for (const [key, path] of corpusFiles()) {
    const expected = manifest[key]!;
    const got = await outcome(readFileSync(path));
    assert.equal(got.code, expected.outcome, key);
    if (expected.warnings !== undefined) assert.deepEqual(got.warnings, expected.warnings, key);
    counts[got.code === 'ok' ? 'ok' : 'failed']++;
  }
  assert.ok(counts.ok + counts.failed >= 100 - COMPOSED.length);
});

test('nodemailer-composed messages convert, keeping their shape', async () => {
  const shapes: Record<string, string> = {};
  for (const [name, options] of COMPOSED) {
    const raw = await compose(options);
    const { message } = await legacyToFramed(raw, OPTS);
    encodeMessage(message);
    shapes[name] = shape(message.root);
  }
  assert.equal(shapes['text-only'], 'text/plain');
  assert.equal(shapes['alternative'], 'multipart/alternative(text/plain,text/html)');
  assert.equal(shapes['inline-cid'], 'multipart/related(text/html,image/png)');
  assert.equal(shapes['rfc822-attachment'], 'multipart/mixed(text/plain,message/nmtp(text/plain))');
  assert.equal(shapes['many-attachments']!.split(',').length, 13);
});

test('corpus size: at least 100 messages in total', () => {
  assert.ok(corpusFiles().size + COMPOSED.length >= 100);
});
