/**
 * The router and the gateway's SRV lookup against a real DNS server (dnsmasq on loopback):
 * a domain publishing `_nmtp-transfer._tcp` routes to NMTP with the record's real TTL, a
 * domain without it to SMTP, a changed record is seen once the TTL has run out (and not
 * before), the transfer client reads the same answers, and a DNS server that is gone is a
 * temperror. The cache's clock is injected, so "before" and "after" the TTL are exact; one
 * last check waits out the TTL on the real clock.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsmasq, type DnsRecords, type DnsServer } from '../harness/dnsmasq.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { createSrvLookup, createTxtLookup } from '../../src/gateway/dns.ts';
import { createRouter } from '../../src/gateway/route.ts';
import { transferTargets } from '../../src/client/transfer.ts';
import type { RouteDecision } from '../../src/gateway/ports.ts';

const TTL = 2;
const SRV = '_nmtp-transfer._tcp.nmtp.example';
const records = (target: string, port: number): DnsRecords => ({
  srv: new Map([[SRV, [{ target, port, priority: 0, weight: 0 }]]]),
  txt: new Map([['gw1._nmtpkey.nmtp.example', ['v=nmtp1; k=ed25519; p=x']]]),
});

let dns: DnsServer;
let port: number;

before(async () => {
  dns = await startDnsmasq(records('mx1.nmtp.example', 4025), { ttl: TTL });
  port = Number(dns.address.split(':')[1]);
});
after(async () => {
  await dns.stop();
});

/** dnsmasq keeps its records for life: a changed record is a new server at the same address. */
async function republish(target: string, p: number): Promise<void> {
  await dns.stop();
  dns = await startDnsmasq(records(target, p), { ttl: TTL, port });
}

const brief = (d: RouteDecision): string =>
  d.transport === 'nmtp' || d.transport === 'smtp'
    ? `${d.transport} ${d.via} ${d.address}`
    : d.transport;

test('routes by the real SRV record and its TTL; sees a changed record after the TTL', async () => {
  const config = validateConfig({ routing: { dnsServers: [dns.address] } });
  let t = 1_000_000;
  const srv = createSrvLookup(config.routing, { now: () => t });
  const router = createRouter({ config, srv });

  const d = await router.route('Alice@NMTP.example');
  assert.equal(brief(d), 'nmtp dns-srv Alice@nmtp.example');
  assert.equal(d.why, `dns-srv: ${SRV} → mx1.nmtp.example:4025 (ttl ${TTL})`);

  const legacy = await router.route('bob@legacy.example');
  assert.equal(brief(legacy), 'smtp dns-none bob@legacy.example');

  await republish('mx2.nmtp.example', 4026);
  // Within the TTL the cached answer stands (for the router and the transfer client alike).
  t += TTL * 1000 - 1;
  const cached = await router.route('carol@nmtp.example');
  assert.match(cached.why, /mx1\.nmtp\.example:4025 \(ttl 1, cached\)$/);
  assert.deepEqual(await transferTargets('nmtp.example', srv), [
    { host: 'mx1.nmtp.example', port: 4025 },
  ]);
  // At the TTL the record is asked again.
  t += 1;
  const fresh = await router.route('carol@nmtp.example');
  assert.equal(fresh.why, `dns-srv: ${SRV} → mx2.nmtp.example:4026 (ttl ${TTL})`);
  assert.deepEqual(await transferTargets('nmtp.example', srv), [
    { host: 'mx2.nmtp.example', port: 4026 },
  ]);
});

test('a withdrawn record sends the domain to SMTP once the TTL has passed (real clock)', async () => {
  await republish('mx3.nmtp.example', 4027);
  const config = validateConfig({ routing: { dnsServers: [dns.address] } });
  const router = createRouter({ config, now: Date.now });
  assert.equal(brief(await router.route('dave@nmtp.example')), 'nmtp dns-srv dave@nmtp.example');
  const started = Date.now();
  await dns.stop();
  dns = await startDnsmasq({}, { ttl: TTL, port });
  // Wait out the TTL, however long the restart took.
  await sleep(Math.max(0, started + TTL * 1000 + 100 - Date.now()));
  assert.equal(brief(await router.route('dave@nmtp.example')), 'smtp dns-none dave@nmtp.example');
});

test('no DNS server answering is a temperror, and nothing is cached from it', async () => {
  await republish('mx1.nmtp.example', 4025);
  const config = validateConfig({ routing: { dnsServers: [dns.address] } });
  const t = 0;
  const srv = createSrvLookup(config.routing, { now: () => t });
  const router = createRouter({ config, srv });
  await dns.stop();
  const d = await router.route('erin@nmtp.example');
  assert.equal(d.transport, 'temperror');
  assert.match(
    d.why,
    new RegExp(`^dns-temperror: ${SRV.replaceAll('.', '\\.')}: 127\\.0\\.0\\.1:${port}: `),
  );
  dns = await startDnsmasq(records('mx1.nmtp.example', 4025), { ttl: TTL, port });
  assert.equal(brief(await router.route('erin@nmtp.example')), 'nmtp dns-srv erin@nmtp.example');
});

test('TXT: static records answer first, the DNS server the rest', async () => {
  const config = validateConfig({
    routing: {
      dnsServers: [dns.address],
      staticRecords: { txt: [{ name: 'gw2._nmtpkey.nmtp.example', value: 'static' }] },
    },
  });
  const txt = createTxtLookup(config.routing);
  assert.deepEqual(await txt('gw2._nmtpkey.nmtp.example'), { status: 'ok', records: [['static']] });
  assert.deepEqual(await txt('gw1._nmtpkey.nmtp.example'), {
    status: 'ok',
    records: [['v=nmtp1; k=ed25519; p=x']],
  });
  assert.deepEqual(await txt('gw3._nmtpkey.nmtp.example'), { status: 'nxdomain' });
});
