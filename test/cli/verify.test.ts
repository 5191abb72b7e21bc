/**
 * `nmtp verify` as a delivery check (issue 12): with --rcpt and --from-domain its exit
 * status is the replay rule's verdict (§30.7), so a correctly relayed message — whose
 * author signature names the list, not the final recipient — exits 0; --now checks time
 * bounds at a chosen moment; errors name an address once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import { signMessage } from '../../src/core/message/index.ts';

const cli = fileURLToPath(new URL('../../src/cli/nmtp.ts', import.meta.url));
const nmtp = (args: string[], input: Uint8Array) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { input, maxBuffer: 1 << 24 });

const seed = (n: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => n + i);
const author = keyPairFromSeed(seed(0));
const list = keyPairFromSeed(seed(64));
const T = 1795000000;
const records = [
  '--key-record',
  `${domainKeyName('s1', 'example.org')}=${printDomainKeyRecord({ publicKey: author.publicKey, flags: '' })}`,
  '--key-record',
  `${domainKeyName('s1', 'lists.example.com')}=${printDomainKeyRecord({ publicKey: list.publicKey, flags: '' })}`,
];

const sign = (bytes: Uint8Array, domain: string, key: typeof author, rcpt: string): Uint8Array =>
  signMessage(bytes, {
    key,
    domain,
    selector: 's1',
    recipients: [rcpt],
    signedAt: T,
    expiresAt: T + 86400,
    salt: new Uint8Array(16).fill(domain.length),
  });

const content = encodeMessage({
  trace: [],
  root: {
    fields: [
      { name: 'From', value: '<alice@example.org>' },
      { name: 'Subject', value: 'to the list' },
    ],
    body: new TextEncoder().encode('hello\n'),
  },
});
// The author signs for the list; the list signs its copy for bob (§30.7).
const relayed = sign(
  sign(content, 'example.org', author, 'all@lists.example.com'),
  'lists.example.com',
  list,
  'bob@example.net',
);

test('a correctly relayed message is a delivery (exit 0) though the author signature is not for bob', () => {
  const r = nmtp(
    [
      'verify',
      '--rcpt',
      'bob@example.net',
      '--from-domain',
      'lists.example.com',
      '--now',
      String(T + 60),
      ...records,
    ],
    relayed,
  );
  const text = r.stdout.toString();
  assert.match(text, /signature 1: not-for-recipient/);
  assert.match(text, /signature 2: valid/);
  assert.match(text, /replay rule: ok/);
  assert.match(text, /verdict: deliver/);
  assert.equal(r.status, 0, text + r.stderr.toString());
});

test('the same message from another domain, or for another recipient, is rejected (exit 1)', () => {
  for (const args of [
    ['--rcpt', 'bob@example.net', '--from-domain', 'example.org'],
    ['--rcpt', 'carol@example.net', '--from-domain', 'lists.example.com'],
  ]) {
    const r = nmtp(['verify', ...args, '--now', String(T + 60), ...records], relayed);
    assert.match(r.stdout.toString(), /verdict: reject/);
    assert.equal(r.status, 1, r.stdout.toString());
  }
});

test('--now checks the time bounds at that moment (unix seconds or a UTC date-time)', () => {
  const args = [
    'verify',
    '--rcpt',
    'bob@example.net',
    '--from-domain',
    'lists.example.com',
    ...records,
  ];
  assert.equal(nmtp([...args, '--now', '2026-11-18T20:00:00Z'], relayed).status, 0);
  const late = nmtp([...args, '--now', String(T + 86401)], relayed);
  assert.match(late.stdout.toString(), /signature 2: expired/);
  assert.equal(late.status, 1);
  assert.equal(nmtp([...args, '--now', 'tomorrow'], relayed).status, 2);
  // Without the replay rule: every signature must be valid.
  assert.equal(nmtp(['verify', '--now', String(T + 60), ...records], relayed).status, 0);
  // --rcpt alone would be a verdict nobody asked for.
  assert.equal(nmtp(['verify', '--rcpt', 'bob@example.net', ...records], relayed).status, 2);
});

test('a DNS failure is "retry later" (75), not a rejection', () => {
  const r = nmtp(
    [
      'verify',
      '--rcpt',
      'bob@example.net',
      '--from-domain',
      'lists.example.com',
      '--now',
      String(T + 60),
      '--dns-server',
      '127.0.0.1:9',
    ],
    relayed,
  );
  assert.equal(r.status, 75, r.stdout.toString() + r.stderr.toString());
});

test('an address that is not canonical is named once in the error', () => {
  const bad = encodeMessage({
    trace: [],
    root: { fields: [{ name: 'From', value: '<alice@Example.org>' }], body: new Uint8Array(0) },
  });
  const r = nmtp(['verify', ...records], bad);
  const err = r.stderr.toString();
  assert.equal(r.status, 65);
  assert.match(err, /NMTP_ERR_ADDR_NOT_CANONICAL|expected "alice@example\.org"/);
  assert.equal(err.split('alice@example.org').length - 1, 1, err);
});
