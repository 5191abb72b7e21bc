/** Runs test/vectors/signature/vectors.json through verifySignature with both implementations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeEd25519, nobleEd25519, verifySignature } from '../../../src/core/sign/index.ts';
import { mapResolver } from './helpers.ts';
import data from '../../vectors/signature/vectors.json' with { type: 'json' };

for (const v of data.vectors) {
  test(`signature vector ${v.id}: ${v.description}`, async () => {
    for (const impl of [nativeEd25519, nobleEd25519]) {
      const result = await verifySignature(v.input.field_value, {
        digest: new Uint8Array(Buffer.from(v.input.digest_hex, 'hex')),
        resolveTxt: mapResolver(v.input.dns as Record<string, string[]>),
        now: v.input.now,
        recipient: v.input.recipient,
        certificates: v.input.certificates,
        impl,
      });
      const expected = v.expected as { status: string; code?: string };
      assert.equal(result.status, expected.status, `${impl.name}: ${result.detail ?? ''}`);
      assert.equal(result.code, expected.code, impl.name);
    }
  });
}
