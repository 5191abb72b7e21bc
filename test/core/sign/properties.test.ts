/**
 * Properties: any signature we make verifies for each of its recipients and no other, and
 * changing any single character of the signed part, or any bit of the signature, makes it
 * fail — for both implementations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  nativeEd25519,
  nobleEd25519,
  parseSignatureField,
  signContent,
  verifySignature,
} from '../../../src/core/sign/index.ts';
import { keyPairFromSeed, printDomainKeyRecord } from '../../../src/core/keys/index.ts';
import { mapResolver } from './helpers.ts';

const key = keyPairFromSeed(new Uint8Array(32).fill(3));
const resolveTxt = mapResolver({
  'k1._nmtpkey.example.org': [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
});
const address = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9.]{1,12}$/),
    fc.constantFrom('example.net', 'example.com', 'xn--bcher-kva.example'),
  )
  .map(([l, d]) => `${l}@${d}`);

test('sign → verify: valid for every listed recipient, not-for-recipient otherwise; tampering fails', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uniqueArray(address, { minLength: 1, maxLength: 5 }),
      address,
      fc.integer({ min: 0, max: 2 ** 31 }),
      fc.nat(),
      async (digest, salt, recipients, stranger, t, pos) => {
        const field = signContent({
          digest,
          domain: 'example.org',
          selector: 'k1',
          signedAt: t,
          expiresAt: t + 600,
          recipients,
          salt,
          key,
        });
        for (const impl of [nativeEd25519, nobleEd25519]) {
          const ctx = { digest, resolveTxt, now: t + 1, impl };
          for (const r of recipients)
            assert.equal((await verifySignature(field, { ...ctx, recipient: r })).status, 'valid');
          if (!recipients.includes(stranger)) {
            assert.equal(
              (await verifySignature(field, { ...ctx, recipient: stranger })).status,
              'not-for-recipient',
            );
          }
          // Change one character of the signed part (keeping the syntax when possible).
          const cut = field.indexOf('; b=');
          const i = pos % cut;
          const c = field[i]!;
          const swapped = /[0-9]/.test(c)
            ? String((Number(c) + 1) % 10)
            : /[a-z]/.test(c)
              ? c === 'z'
                ? 'a'
                : String.fromCharCode(c.charCodeAt(0) + 1)
              : c === 'A'
                ? 'B'
                : 'A';
          const tampered = field.slice(0, i) + swapped + field.slice(i + 1);
          assert.notEqual(
            (await verifySignature(tampered, { ...ctx, recipient: recipients[0]! })).status,
            'valid',
            tampered,
          );
        }
        const sig = parseSignatureField(field).signature;
        const flipped = Uint8Array.from(sig);
        flipped[pos % 64] = flipped[pos % 64]! ^ (1 << (pos % 8));
        const input = new TextEncoder().encode(
          `NMTP-SIG-1\n${field.slice(0, field.indexOf('; b='))}`,
        );
        assert.equal(nativeEd25519.verify(key.publicKey, input, flipped), false);
        assert.equal(nobleEd25519.verify(key.publicKey, input, flipped), false);
      },
    ),
    { numRuns: 40 },
  );
});
