/**
 * Interop with a generic tool: our Signature verifies with exactly the command the spec
 * gives, openssl-made signatures verify with our code, and the worked example in
 * docs/protocol.md equals test/vectors/signature/worked-example.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  nativeEd25519,
  nobleEd25519,
  parseSignatureField,
  signedInput,
  signContent,
} from '../../../src/core/sign/index.ts';
import {
  keyPairFromSeed,
  publicKeyToPem,
  seedToPem,
  publicKeyFromPem,
} from '../../../src/core/keys/index.ts';
import example from '../../vectors/signature/worked-example.json' with { type: 'json' };

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function inTemp<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'nmtp-openssl-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Exactly the verification command the spec gives (§30.9), run in the temp directory. */
const SPEC_VERIFY = [
  'pkeyutl',
  '-verify',
  '-pubin',
  '-inkey',
  'pub.pem',
  '-rawin',
  '-in',
  'signed-input.bin',
  '-sigfile',
  'sig.bin',
];

function openssl(dir: string, args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8' });
}

test('worked example: the field recomputes from its stated inputs, and its digest is SHA-256 of the root part', () => {
  const key = keyPairFromSeed(hex(example.seed_hex));
  assert.equal(Buffer.from(key.publicKey).toString('hex'), example.public_key_hex);
  const digest = inTemp((dir) => {
    writeFileSync(join(dir, 'root.bin'), example.root_part_text);
    return openssl(dir, ['dgst', '-sha256', '-r', 'root.bin']).slice(0, 64);
  });
  assert.equal(digest, example.digest_hex);
  const field = signContent({
    digest: hex(example.digest_hex),
    domain: example.domain,
    selector: example.selector,
    signedAt: example.signed_at,
    expiresAt: example.expires_at,
    recipients: example.recipients,
    salt: hex(example.salt_hex),
    key,
  });
  assert.equal(field, example.field_value);
  assert.equal(new TextDecoder().decode(signedInput(field)), example.signed_input_text);
});

test('worked example: the spec shows exactly the vector', () => {
  const spec = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  assert.ok(spec.includes(example.field_value), 'field value in spec');
  assert.ok(spec.includes(example.signed_input_text.replace('\n', '\n')), 'signed input in spec');
  assert.ok(spec.includes(example.dns_record), 'DNS record in spec');
  assert.ok(
    spec.includes(example.seed_hex) && spec.includes(example.salt_hex),
    'seed and salt in spec',
  );
});

test('openssl verifies our signature with the exact command of the spec', () => {
  inTemp((dir) => {
    const key = keyPairFromSeed(hex(example.seed_hex));
    writeFileSync(join(dir, 'pub.pem'), publicKeyToPem(key.publicKey));
    writeFileSync(join(dir, 'signed-input.bin'), signedInput(example.field_value));
    writeFileSync(join(dir, 'sig.bin'), parseSignatureField(example.field_value).signature);
    const out = openssl(dir, SPEC_VERIFY);
    assert.match(out, /Signature Verified Successfully/);
  });
});

test('openssl rejects a tampered signed input', () => {
  inTemp((dir) => {
    const key = keyPairFromSeed(hex(example.seed_hex));
    writeFileSync(join(dir, 'pub.pem'), publicKeyToPem(key.publicKey));
    writeFileSync(
      join(dir, 'signed-input.bin'),
      signedInput(example.field_value.replace('t=1795000000', 't=1795000001')),
    );
    writeFileSync(join(dir, 'sig.bin'), parseSignatureField(example.field_value).signature);
    assert.throws(() => openssl(dir, SPEC_VERIFY));
  });
});

test('reverse: openssl signs with a PEM private key (ours and its own), both our verifiers accept', () => {
  inTemp((dir) => {
    const input = signedInput(example.field_value);
    writeFileSync(join(dir, 'signed-input.bin'), input);
    // 1. A key we exported as PKCS#8 PEM: openssl's signature equals ours byte for byte.
    writeFileSync(join(dir, 'ours.pem'), seedToPem(hex(example.seed_hex)));
    openssl(dir, [
      'pkeyutl',
      '-sign',
      '-inkey',
      'ours.pem',
      '-rawin',
      '-in',
      'signed-input.bin',
      '-out',
      'sig1.bin',
    ]);
    const sig1 = new Uint8Array(readFileSync(join(dir, 'sig1.bin')));
    assert.deepEqual(sig1, parseSignatureField(example.field_value).signature);
    // 2. A key openssl generated itself; we read its public key from the PEM it writes.
    openssl(dir, ['genpkey', '-algorithm', 'ed25519', '-out', 'theirs.pem']);
    openssl(dir, ['pkey', '-in', 'theirs.pem', '-pubout', '-out', 'theirs.pub.pem']);
    openssl(dir, [
      'pkeyutl',
      '-sign',
      '-inkey',
      'theirs.pem',
      '-rawin',
      '-in',
      'signed-input.bin',
      '-out',
      'sig2.bin',
    ]);
    const pub = publicKeyFromPem(readFileSync(join(dir, 'theirs.pub.pem'), 'utf8'));
    const sig2 = new Uint8Array(readFileSync(join(dir, 'sig2.bin')));
    for (const impl of [nativeEd25519, nobleEd25519]) {
      assert.equal(impl.verify(pub, input, sig2), true, impl.name);
      assert.equal(impl.verify(pub, input.subarray(1), sig2), false, impl.name);
    }
  });
});

test('openssl verifies the worked-example certificate (NMTP-CERT-1 signed input) under the domain key', async () => {
  const { certificateSignedInput, parseCertificate } =
    await import('../../../src/core/keys/index.ts');
  const spec = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  const cert = /^Certificate: (.*)$/m.exec(spec)![1]!;
  inTemp((dir) => {
    writeFileSync(
      join(dir, 'pub.pem'),
      publicKeyToPem(keyPairFromSeed(hex(example.seed_hex)).publicKey),
    );
    writeFileSync(join(dir, 'signed-input.bin'), certificateSignedInput(cert));
    writeFileSync(join(dir, 'sig.bin'), parseCertificate(cert).signature);
    const out = openssl(dir, SPEC_VERIFY);
    assert.match(out, /Signature Verified Successfully/);
  });
});

test('the command the tests run is the one the spec prints', () => {
  const spec = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  assert.ok(spec.includes(`openssl ${SPEC_VERIFY.join(' ')}\n`));
});
