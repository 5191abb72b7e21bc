/**
 * `nmtp convert` as a person uses it: a real-world message from the shared corpus to a
 * framed message and back to legacy MIME, through the command line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const corpus = new URL('../../../shared/corpus/mail-gem/', import.meta.url);
const nmtp = (args: string[], input: Uint8Array) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { input, maxBuffer: 1 << 24 });

test('legacy → framed → legacy through the CLI keeps the decoded subject', () => {
  const eml = readFileSync(new URL('plain_emails/basic_email.eml', corpus));
  const framed = nmtp(
    ['convert', '--to', 'framed', '--gateway', 'gw.example.net', '--mail-from', 'a@example.org'],
    eml,
  );
  assert.equal(framed.status, 0, framed.stderr.toString());
  assert.match(framed.stdout.toString(), /^NMTP\/1\r\n/);
  assert.match(framed.stdout.toString(), /\r\nLegacy-Gateway: gw\.example\.net\r\n/);

  const inspect = nmtp(['inspect'], framed.stdout);
  assert.equal(inspect.status, 0, inspect.stderr.toString());

  const legacy = nmtp(['convert', '--to', 'legacy'], framed.stdout);
  assert.equal(legacy.status, 0, legacy.stderr.toString());
  const subject = /^Subject: (.*)$/m.exec(eml.toString())?.[1]?.trim();
  assert.ok(subject);
  assert.ok(legacy.stdout.toString().includes(`Subject: ${subject}`), legacy.stdout.toString());
  assert.match(legacy.stdout.toString(), /^MIME-Version: 1\.0\r$/m);
});

test('a non-ASCII address toward a peer without SMTPUTF8 is a coded, permanent error', () => {
  const eml = new TextEncoder().encode(
    'From: Zoë <zoë@example.org>\r\nTo: <bob@example.net>\r\nSubject: hi\r\n\r\nbody\r\n',
  );
  const framed = nmtp(['convert', '--to', 'framed'], eml);
  assert.equal(framed.status, 0, framed.stderr.toString());
  const legacy = nmtp(['convert', '--to', 'legacy'], framed.stdout);
  assert.equal(legacy.status, 65);
  assert.match(legacy.stderr.toString(), /NMTP_ERR_LEGACY_ADDRESS_NEEDS_SMTPUTF8/);
  const utf8 = nmtp(['convert', '--to', 'legacy', '--smtputf8'], framed.stdout);
  assert.equal(utf8.status, 0, utf8.stderr.toString());
  assert.match(utf8.stdout.toString(), /^From: Zoë <zoë@example\.org>\r$/m);
});
