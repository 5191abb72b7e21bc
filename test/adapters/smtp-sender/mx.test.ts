/**
 * The MX order (RFC 5321 §5.1, RFC 7505), address literals, the reading of an EHLO reply,
 * and the SMTP deliverer's options from the configuration. Delivery itself runs against
 * real servers in test/integration/smtp-deliver-mx.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressLiteral, mxDomain, orderMx } from '../../../adapters/smtp-sender/mx.ts';
import { capabilitiesOf } from '../../../adapters/smtp-sender/smtp-deliver.ts';
import { smtpDelivererOptions, smtpOutMode } from '../../../adapters/smtp-sender/from-config.ts';
import { validateConfig } from '../../../src/gateway/config.ts';

const names = (r: ReturnType<typeof orderMx>): string[] =>
  r.status === 'ok' ? r.hosts.map((h) => h.name) : [r.status];

/** A random source that replays the given values. */
const replay = (...v: number[]): (() => number) => {
  let i = 0;
  return () => v[i++ % v.length]!;
};

test('MX hosts by preference, lowest first; equal preferences in random order', () => {
  const records = [
    { exchange: 'c.example.', preference: 30 },
    { exchange: 'a1.example', preference: 10 },
    { exchange: 'b.example', preference: 20 },
    { exchange: 'a2.example', preference: 10 },
  ];
  const seen = new Set<string>();
  for (const r of [replay(0), replay(0.99), replay(0.5, 0.1, 0.9), Math.random]) {
    const order = names(orderMx(records, { random: r }));
    assert.deepEqual(order.slice(2), ['b.example', 'c.example']);
    assert.deepEqual([...order.slice(0, 2)].sort(), ['a1.example', 'a2.example']);
    seen.add(order.slice(0, 2).join(' '));
  }
  // Both orders of the tie occur, depending on the random source.
  assert.deepEqual([...seen].sort(), ['a1.example a2.example', 'a2.example a1.example']);
});

test('a null MX (RFC 7505) takes no mail; alongside real hosts it is ignored', () => {
  assert.deepEqual(orderMx([{ exchange: '', preference: 0 }]), { status: 'null' });
  assert.deepEqual(orderMx([{ exchange: '.', preference: 0 }]), { status: 'null' });
  assert.deepEqual(
    names(
      orderMx([
        { exchange: '.', preference: 0 },
        { exchange: 'mx.example', preference: 10 },
      ]),
    ),
    ['mx.example'],
  );
  // A static record keeps its port.
  const r = orderMx([{ exchange: '127.0.0.1', preference: 0, port: 2525 }]);
  assert.deepEqual(r.status === 'ok' ? r.hosts : r, [{ name: '127.0.0.1', port: 2525 }]);
});

test('the gateway among the MX hosts: it and every less preferred host are dropped', () => {
  const records = [
    { exchange: 'primary.example', preference: 10 },
    { exchange: 'GW.example.net.', preference: 20 },
    { exchange: 'peer.example', preference: 20 },
    { exchange: 'last.example', preference: 30 },
  ];
  assert.deepEqual(names(orderMx(records, { self: 'gw.example.net' })), ['primary.example']);
  assert.deepEqual(
    orderMx(
      [
        { exchange: 'gw.example.net', preference: 10 },
        { exchange: 'other.example', preference: 10 },
      ],
      { self: 'gw.example.net' },
    ),
    { status: 'loop' },
  );
});

test('address literals and the domain asked for', () => {
  assert.equal(addressLiteral('[192.0.2.1]'), '192.0.2.1');
  assert.equal(addressLiteral('[IPv6:2001:db8::1]'), '2001:db8::1');
  assert.equal(addressLiteral('[ipv6:::1]'), '::1');
  // The IPv6 form needs its tag and the IPv4 form must not have it.
  assert.equal(addressLiteral('[2001:db8::1]'), undefined);
  assert.equal(addressLiteral('[IPv6:192.0.2.1]'), undefined);
  assert.equal(addressLiteral('[mx.example]'), undefined);
  assert.equal(addressLiteral('example.org'), undefined);
  assert.equal(mxDomain('Bücher.Example.'), 'xn--bcher-kva.example');
  assert.equal(mxDomain('LOCALHOST'), 'localhost');
});

test('what an EHLO reply offers: SMTPUTF8, 8BITMIME, DSN, SIZE with or without a value', () => {
  assert.deepEqual(
    capabilitiesOf(['PIPELINING', 'SIZE 10240000', '8BITMIME', 'DSN', 'SMTPUTF8', 'CHUNKING']),
    { smtputf8: true, eightBitMime: true, dsn: true, size: 10_240_000 },
  );
  assert.deepEqual(capabilitiesOf(['size', '8bitmime']), {
    smtputf8: false,
    eightBitMime: true,
    dsn: false,
    size: 0,
  });
  // Keywords, not substrings: "DSNX" is not DSN, "XSIZE" is not SIZE.
  assert.deepEqual(capabilitiesOf(['DSNX', 'XSIZE 5', 'SMTPUTF8X']), {
    smtputf8: false,
    eightBitMime: false,
    dsn: false,
  });
});

test('from the configuration: the smarthost by default, MX with smtpOut.mode or an empty smarthost', () => {
  const env = { SH_USER: 'u', SH_PASS: 'p' };
  const def = validateConfig({});
  assert.equal(smtpOutMode(def), 'smarthost');
  assert.deepEqual(smtpDelivererOptions(def, { env }), {
    name: 'localhost',
    capabilityTtl: 600_000,
    pool: { maxConnections: 20 },
    host: '127.0.0.1',
    port: 25,
    tls: 'opportunistic',
  });
  const auth = validateConfig({
    smarthost: { host: '[::1]:2525', tls: 'require', userEnv: 'SH_USER', passwordEnv: 'SH_PASS' },
    smtpOut: { capabilityTtl: 30 },
  });
  assert.deepEqual(smtpDelivererOptions(auth, { env }), {
    name: 'localhost',
    capabilityTtl: 30_000,
    pool: { maxConnections: 20 },
    host: '::1',
    port: 2525,
    tls: 'require',
    auth: { user: 'u', pass: 'p' },
  });

  for (const doc of [{ smtpOut: { mode: 'mx' } }, { smarthost: { host: '' } }]) {
    const c = validateConfig({ ...doc, gateway: { hostname: 'gw.example.net' } });
    assert.equal(smtpOutMode(c), 'mx');
    const o = smtpDelivererOptions(c, { env });
    assert.equal(o.mode, 'mx');
    assert.deepEqual(o.pool, { maxConnections: 20 }, 'queue.perDestination');
    if (o.mode !== 'mx') continue;
    assert.deepEqual(
      { port: o.port, tls: o.tls, maxAddresses: o.maxAddresses, name: o.name },
      { port: 25, tls: 'opportunistic', maxAddresses: 5, name: 'gw.example.net' },
    );
    assert.equal(typeof o.resolver.route, 'function');
  }
});

test('static MX records are validated, naming the key', () => {
  const c = validateConfig({
    smtpOut: { staticMx: [{ domain: 'a.example', exchange: 'mx.a.example' }] },
  });
  assert.deepEqual(c.smtpOut.staticMx, [
    { domain: 'a.example', exchange: 'mx.a.example', preference: 0 },
  ]);
  assert.throws(
    () =>
      validateConfig({ smtpOut: { staticMx: [{ domain: 'a.example', exchange: 'x', port: 0 }] } }),
    /smtpOut\.staticMx\.0\.port/,
  );
  assert.throws(() => validateConfig({ smtpOut: { mode: 'direct' } }), /smtpOut\.mode.*"direct"/);
  assert.throws(() => validateConfig({ smarthost: { host: 'nohost' } }), /smarthost\.host/);
});
