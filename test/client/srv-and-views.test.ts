/** SRV target ordering (RFC 2782), the views a client sends, and DATA's announcement. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { keyPairFromSeed } from '../../src/core/keys/index.ts';
import { signMessage } from '../../src/core/message/index.ts';
import { orderTargets, srvName, type SrvTarget } from '../../src/dns/srv.ts';
import { announce, viewOf } from '../../src/client/transfer.ts';

const t = (name: string, priority: number, weight: number): SrvTarget => ({
  name,
  port: 4025,
  priority,
  weight,
});

test('SRV names', () => {
  assert.equal(srvName('transfer', 'example.net'), '_nmtp-transfer._tcp.example.net');
  assert.equal(srvName('submission', 'example.net'), '_nmtp-submission._tcp.example.net');
});

test('targets are ordered by priority first, whatever the weights', () => {
  const order = orderTargets([t('c', 30, 100), t('a', 10, 0), t('b', 20, 5)], () => 0.5);
  assert.deepEqual(
    order.map((x) => x.name),
    ['a', 'b', 'c'],
  );
});

test('within a priority, selection follows the running weight sum (random is a parameter)', () => {
  const pool = [t('x', 10, 10), t('y', 10, 30), t('z', 10, 0)];
  // Running order is by weight: z(0) y(30)… sorted ascending: z 0, x 10, y 30; sum 40.
  // random 0 → pick 0 → z (running 0 ≥ 0); the rest then follow the same rule.
  assert.deepEqual(
    orderTargets(pool, () => 0).map((x) => x.name),
    ['z', 'x', 'y'],
  );
  // random 0.99 → pick 40.59 → nothing reaches it → last (y); then x (11 of 11), then z.
  assert.deepEqual(
    orderTargets(pool, () => 0.99).map((x) => x.name),
    ['y', 'x', 'z'],
  );
  // Over many draws the heavier target comes first about three times as often as x.
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 48271) % 2147483647) - 1) / 2147483646;
  const first = { x: 0, y: 0, z: 0 } as Record<string, number>;
  for (let i = 0; i < 4000; i++) first[orderTargets(pool, rnd)[0]!.name]!++;
  assert.ok(first.y! > 2.3 * first.x! && first.y! < 3.7 * first.x!, JSON.stringify(first));
  assert.ok(first.z! < first.x!, JSON.stringify(first));
});

const key = keyPairFromSeed(randomBytes(32));
const signed = signMessage(
  encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'Subject', value: 'views' },
        { name: 'Content-Type', value: 'text/plain' },
      ],
      body: new TextEncoder().encode('body\r\n'),
    },
  }),
  {
    key,
    domain: 'example.org',
    selector: 's1',
    recipients: ['bob@example.net'],
    signedAt: 1795000000,
    expiresAt: 1795086400,
    salt: new Uint8Array(16),
  },
);

test('views: full, digest, signers (version + trace block), headers (+ root header block)', () => {
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  assert.equal(viewOf(signed, 'full'), signed);
  assert.equal(viewOf(signed, 'digest').length, 0);
  const signers = text(viewOf(signed, 'signers'));
  assert.match(signers, /^NMTP\/1\r\nSignature: v=1; [^\r\n]*\r\n\r\n$/);
  const headers = text(viewOf(signed, 'headers'));
  assert.ok(headers.startsWith(signers));
  // The root header block as the encoder wrote it (Content-Length first), with its empty line.
  assert.equal(
    headers.slice(signers.length),
    'Content-Length: 6\r\nSubject: views\r\nContent-Type: text/plain\r\n\r\n',
  );
  // The root part is itself the text/plain leaf: the text view is the full message.
  assert.equal(viewOf(signed, 'text'), signed);
});

test('text view of a multipart: headers view, then the first text/plain leaf, complete', () => {
  const utf8 = new TextEncoder();
  const m = encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'Subject', value: 'mixed' },
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'application/octet-stream' }],
          body: new Uint8Array([1, 2, 3]),
        },
        {
          fields: [{ name: 'Content-Type', value: 'multipart/alternative' }],
          children: [
            {
              fields: [{ name: 'Content-Type', value: 'text/plain' }],
              body: utf8.encode('hi\r\n'),
            },
            { fields: [{ name: 'Content-Type', value: 'text/html' }], body: utf8.encode('<p>') },
          ],
        },
      ],
    },
  });
  const text = new TextDecoder().decode(viewOf(m, 'text'));
  const headers = new TextDecoder().decode(viewOf(m, 'headers'));
  assert.equal(
    text,
    `${headers}Content-Length: 4\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\n\r\n`,
  );
});

test('the DATA announcement: size, content digest, signer domains', () => {
  const a = announce(signed);
  assert.equal(a.size, signed.length);
  assert.match(a.digest, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(a.signers, ['example.org']);
});
