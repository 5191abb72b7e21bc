/**
 * The `nmtp` command end to end against a real DNS server on loopback: a key is generated,
 * its TXT record served by dnsmasq, a message signed and verified through DNS, and the
 * verdicts checked when the key is missing or the DNS server is gone (temporary failure).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { startDnsmasq, type DnsServer } from '../harness/dnsmasq.ts';
import { dnsTxtResolver } from '../../src/dns/txt.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const nmtp = (args: string[], input?: Uint8Array) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    input: input ?? new Uint8Array(),
    maxBuffer: 1 << 24,
  });

const dir = mkdtempSync(join(tmpdir(), 'nmtp-cli-'));
let dns: DnsServer;
let message: Uint8Array;

before(async () => {
  const keyFile = join(dir, 'key.pem');
  const gen = nmtp([
    'keys',
    'generate',
    '--domain',
    'example.org',
    '--selector',
    'k1',
    '--out',
    keyFile,
  ]);
  assert.equal(gen.status, 0, gen.stderr.toString());
  const text = gen.stdout.toString();
  // The private key is in the file, for the owner only, and not printed.
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.doesNotMatch(text, /PRIVATE KEY/);
  const again = nmtp([
    'keys',
    'generate',
    '--domain',
    'example.org',
    '--selector',
    'k1',
    '--out',
    keyFile,
  ]);
  assert.equal(again.status, 2, 'an existing key file is never overwritten');
  assert.match(again.stderr.toString(), /exists: not overwritten/);
  const rec = nmtp([
    'dns-records',
    '--domain',
    'example.org',
    '--selector',
    'k1',
    '--key',
    join(dir, 'key.pem'),
  ]);
  assert.equal(rec.status, 0, rec.stderr.toString());
  const m = /^(\S+)\. IN TXT (.*)$/m.exec(rec.stdout.toString());
  assert.ok(m, rec.stdout.toString());
  const strings = JSON.parse(`[${m[2]!.replaceAll('" "', '", "')}]`) as string[];
  // The record printed by keys generate is the same record.
  assert.ok(text.includes(m[2]!));
  dns = await startDnsmasq({ txt: new Map([[m[1]!, strings]]) });
  message = encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'From', value: '<zoë@example.org>' },
        { name: 'Subject', value: 'über DNS' },
      ],
      body: new TextEncoder().encode('hi\r\n'),
    },
  });
});

after(async () => {
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the TXT resolver reads the key record from the DNS server', async () => {
  const answer = await dnsTxtResolver({ servers: [dns.address] })('k1._nmtpkey.example.org');
  assert.equal(answer.status, 'ok');
  const missing = await dnsTxtResolver({ servers: [dns.address] })('nope._nmtpkey.example.org');
  assert.equal(missing.status, 'nxdomain');
});

test('sign, then verify through DNS: valid for the bound recipient', () => {
  const signed = nmtp(
    [
      'sign',
      '--key',
      join(dir, 'key.pem'),
      '--domain',
      'example.org',
      '--selector',
      'k1',
      '--rcpt',
      'bob@bücher.example',
    ],
    message,
  );
  assert.equal(signed.status, 0, signed.stderr.toString());
  const ok = nmtp(
    [
      'verify',
      '--dns-server',
      dns.address,
      '--rcpt',
      'bob@xn--bcher-kva.example',
      '--from-domain',
      'example.org',
    ],
    signed.stdout,
  );
  assert.equal(ok.status, 0, ok.stdout.toString() + ok.stderr.toString());
  assert.match(ok.stdout.toString(), /signature 1: valid {2}d=example\.org s=k1/);
  assert.match(ok.stdout.toString(), /replay rule: ok/);

  // For another recipient the replay rule fails: the delivery verdict is "reject" (1).
  const other = nmtp(
    [
      'verify',
      '--dns-server',
      dns.address,
      '--rcpt',
      'eve@example.net',
      '--from-domain',
      'example.org',
    ],
    signed.stdout,
  );
  assert.equal(other.status, 1);
  assert.match(other.stdout.toString(), /not-for-recipient/);
  // --rcpt alone asks for no verdict the tool can give: a usage error.
  const half = nmtp(
    ['verify', '--dns-server', dns.address, '--rcpt', 'eve@example.net'],
    signed.stdout,
  );
  assert.equal(half.status, 2);
});

test('an unknown selector is an unknown key; a dead DNS server is temporary', async () => {
  const signed = nmtp(
    [
      'sign',
      '--key',
      join(dir, 'key.pem'),
      '--domain',
      'example.org',
      '--selector',
      'k2',
      '--rcpt',
      'bob@example.net',
    ],
    message,
  );
  assert.equal(signed.status, 0, signed.stderr.toString());
  const unknown = nmtp(['verify', '--dns-server', dns.address], signed.stdout);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stdout.toString(), /unknown-key .*NMTP_ERR_KEY_NOT_FOUND/);

  const dead = await startDnsmasq({});
  await dead.stop();
  const down = nmtp(['verify', '--dns-server', dead.address], signed.stdout);
  // Only DNS failures: "retry later" (75, EX_TEMPFAIL), not a verdict.
  assert.equal(down.status, 75);
  assert.match(down.stdout.toString(), /NMTP_ERR_KEY_LOOKUP_FAILED/);
});

test('malformed input gets a coded error and the data-error exit status', () => {
  const r = nmtp(
    ['inspect'],
    new TextEncoder().encode('NMTP/1\r\n\r\nContent-Length: 99\r\n\r\nshort'),
  );
  assert.equal(r.status, 65);
  assert.match(r.stderr.toString(), /NMTP_ERR_FRAME_TRUNCATED/);
});

test('demo runs and verifies', () => {
  const r = nmtp(['demo']);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /replay rule: ok/);
});

test('every command answers --help', () => {
  for (const c of [
    ['demo'],
    ['keys', 'generate'],
    ['dns-records'],
    ['sign'],
    ['verify'],
    ['inspect'],
  ]) {
    const r = nmtp([...c, '--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout.toString(), /^usage: nmtp /);
  }
  assert.equal(nmtp(['no-such-command']).status, 2);
});
