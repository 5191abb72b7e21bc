/**
 * The gateway's DNS (src/gateway/dns.ts): the SRV cache with an injected clock and query
 * (TTL expiry, the maxTtl clamp, negative caching, temperrors never kept, one query for
 * concurrent lookups), static records, the TXT lookup, and the wire query against small
 * DNS responders on loopback written with the same codec (truncation → TCP, CNAME chains,
 * rcodes, stray datagrams, TTLs with the high bit, timeouts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { validateConfig } from '../../src/gateway/config.ts';
import {
  createSrvLookup,
  createTxtLookup,
  parseServer,
  wireSrvQuery,
  type SrvQuery,
  type SrvQueryResult,
} from '../../src/gateway/dns.ts';

const NAME = '_nmtp-transfer._tcp.example.org';
const MX = { name: 'mx.example.org', port: 4025, priority: 0, weight: 0 };

function harness(routing: object = {}, answers: Record<string, SrvQueryResult> = {}) {
  let t = 5_000_000;
  const asked: string[] = [];
  const query: SrvQuery = (name) => {
    asked.push(name);
    return Promise.resolve(answers[name] ?? { status: 'none' });
  };
  const config = validateConfig({ routing });
  const srv = createSrvLookup(config.routing, { now: () => t, query });
  return { srv, asked, answers, advance: (ms: number) => void (t += ms) };
}

test('an answer is kept exactly its TTL', async () => {
  const h = harness({}, { [NAME]: { status: 'ok', targets: [MX], ttl: 30 } });
  assert.deepEqual(await h.srv('transfer', 'example.org'), {
    status: 'ok',
    targets: [MX],
    source: 'dns',
    ttl: 30,
  });
  h.answers[NAME] = { status: 'ok', targets: [{ ...MX, name: 'mx2.example.org' }], ttl: 30 };
  h.advance(29_999);
  const cached = await h.srv('transfer', 'example.org');
  assert.equal(cached.status === 'ok' && cached.targets[0]!.name, 'mx.example.org');
  assert.equal(cached.cached, true);
  assert.equal(cached.ttl, 1);
  h.advance(1);
  const fresh = await h.srv('transfer', 'example.org');
  assert.equal(fresh.status === 'ok' && fresh.targets[0]!.name, 'mx2.example.org');
  assert.equal(fresh.cached, undefined);
  assert.equal(h.asked.length, 2);
});

test('TTLs are clamped to [0, maxTtl]; TTL 0 is never kept', async () => {
  const h = harness({ maxTtl: 60 }, { [NAME]: { status: 'ok', targets: [MX], ttl: 86_400 } });
  assert.equal((await h.srv('transfer', 'example.org')).ttl, 60);
  h.advance(59_999);
  await h.srv('transfer', 'example.org');
  assert.equal(h.asked.length, 1);
  h.advance(1);
  await h.srv('transfer', 'example.org');
  assert.equal(h.asked.length, 2);

  const z = harness({}, { [NAME]: { status: 'ok', targets: [MX], ttl: 0 } });
  await z.srv('transfer', 'example.org');
  await z.srv('transfer', 'example.org');
  assert.equal(z.asked.length, 2);

  // maxTtl 0 turns the cache off.
  const off = harness({ maxTtl: 0, negativeTtl: 300 });
  await off.srv('transfer', 'example.org');
  await off.srv('transfer', 'example.org');
  assert.equal(off.asked.length, 2);
});

test('"none" is kept negativeTtl', async () => {
  const h = harness({ negativeTtl: 120 });
  assert.deepEqual(await h.srv('transfer', 'example.org'), {
    status: 'none',
    source: 'dns',
    ttl: 120,
  });
  h.answers[NAME] = { status: 'ok', targets: [MX], ttl: 300 };
  h.advance(119_000);
  assert.equal((await h.srv('transfer', 'example.org')).status, 'none');
  h.advance(1_000);
  assert.equal((await h.srv('transfer', 'example.org')).status, 'ok');
  assert.equal(h.asked.length, 2);
});

test('a temperror is never kept; a query that throws is a temperror', async () => {
  const h = harness({}, { [NAME]: { status: 'temperror', detail: 'timeout' } });
  const a = await h.srv('transfer', 'example.org');
  assert.deepEqual(a, { status: 'temperror', detail: 'timeout', source: 'dns' });
  h.answers[NAME] = { status: 'ok', targets: [MX], ttl: 300 };
  assert.equal((await h.srv('transfer', 'example.org')).status, 'ok');
  assert.equal(h.asked.length, 2);

  const config = validateConfig({});
  const srv = createSrvLookup(config.routing, {
    now: () => 0,
    query: () => Promise.reject(new Error('socket exploded')),
  });
  const t = await srv('transfer', 'example.org');
  assert.equal(t.status, 'temperror');
  assert.match(t.status === 'temperror' ? t.detail : '', /socket exploded/);
});

test('concurrent lookups of one name share one query', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let n = 0;
  const config = validateConfig({});
  const srv = createSrvLookup(config.routing, {
    now: () => 0,
    query: async () => {
      n++;
      await gate;
      return { status: 'ok', targets: [MX], ttl: 10 };
    },
  });
  const all = Promise.all([1, 2, 3].map(() => srv('transfer', 'example.org')));
  release();
  assert.deepEqual(
    (await all).map((a) => a.status),
    ['ok', 'ok', 'ok'],
  );
  assert.equal(n, 1);
});

test('names are asked in A-label form, lower case; services are kept apart', async () => {
  const h = harness();
  await h.srv('transfer', 'Bücher.EXAMPLE');
  await h.srv('transfer', 'xn--bcher-kva.example');
  await h.srv('submission', 'xn--bcher-kva.example');
  assert.deepEqual(h.asked, [
    '_nmtp-transfer._tcp.xn--bcher-kva.example',
    '_nmtp-submission._tcp.xn--bcher-kva.example',
  ]);
});

test('the cache is bounded: the oldest name goes first', async () => {
  let t = 0;
  const asked: string[] = [];
  const config = validateConfig({});
  const srv = createSrvLookup(config.routing, {
    now: () => t,
    maxEntries: 2,
    query: (name) => {
      asked.push(name);
      return Promise.resolve({ status: 'ok', targets: [MX], ttl: 100 });
    },
  });
  for (const d of ['a.example', 'b.example', 'c.example', 'b.example', 'a.example']) {
    await srv('transfer', d);
    t += 1;
  }
  assert.deepEqual(
    asked.map((n) => n.split('.')[2]),
    ['a', 'b', 'c', 'a'],
  );
});

test('static SRV records answer without DNS, for the transfer service only', async () => {
  const h = harness({
    staticRecords: {
      srv: [
        { domain: 'bücher.example', target: 'nmtp1.example.', port: 4025, priority: 10 },
        { domain: 'XN--BCHER-KVA.example', target: 'nmtp2.example', port: 4026, weight: 5 },
      ],
    },
  });
  assert.deepEqual(await h.srv('transfer', 'xn--bcher-kva.example'), {
    status: 'ok',
    targets: [
      { name: 'nmtp1.example', port: 4025, priority: 10, weight: 0 },
      { name: 'nmtp2.example', port: 4026, priority: 0, weight: 5 },
    ],
    source: 'static',
  });
  assert.deepEqual(h.asked, []);
  await h.srv('submission', 'bücher.example');
  assert.deepEqual(h.asked, ['_nmtp-submission._tcp.xn--bcher-kva.example']);
});

test('TXT: static records first (one record per entry), DNS for the rest', async () => {
  const config = validateConfig({
    routing: {
      staticRecords: {
        txt: [
          { name: 'GW1._nmtpkey.Bücher.Example', value: 'v=nmtp1; k=ed25519; p=AAAA' },
          { name: 'gw1._nmtpkey.xn--bcher-kva.example.', value: 'second' },
        ],
      },
    },
  });
  const asked: string[] = [];
  const txt = createTxtLookup(config.routing, {
    dns: (name) => {
      asked.push(name);
      return { status: 'nxdomain' };
    },
  });
  assert.deepEqual(await txt('gw1._nmtpkey.xn--bcher-kva.example'), {
    status: 'ok',
    records: [['v=nmtp1; k=ed25519; p=AAAA'], ['second']],
  });
  assert.deepEqual(await txt('other._nmtpkey.example.org'), { status: 'nxdomain' });
  assert.deepEqual(asked, ['other._nmtpkey.example.org']);
});

test('DNS server addresses as config and node:dns write them', () => {
  assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseServer('127.0.0.53'), { host: '127.0.0.53', port: 53 });
  assert.deepEqual(parseServer('::1'), { host: '::1', port: 53 });
  assert.deepEqual(parseServer('[::1]:5353'), { host: '::1', port: 5353 });
  assert.throws(() => parseServer('nope'), /NMTP_ERR_GW_CONFIG_INVALID|DNS server/);
});

// ---- the wire ----

type Handler = (q: dnsPacket.DecodedPacket, via: 'udp' | 'tcp') => dnsPacket.Packet[] | undefined;

interface Responder {
  readonly address: string;
  readonly udpQueries: number;
  close(): Promise<void>;
}

/**
 * A DNS server on 127.0.0.1 (UDP and TCP on one port) that answers with whatever `handle`
 * returns for a query: several packets (stray ones first), or none (silence).
 */
async function responder(handle: Handler): Promise<Responder> {
  const udp: Socket = createSocket('udp4');
  let udpQueries = 0;
  udp.on('message', (msg, rinfo) => {
    udpQueries++;
    const q = dnsPacket.decode(msg);
    for (const p of handle(q, 'udp') ?? [])
      udp.send(dnsPacket.encode(p), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const port = udp.address().port;
  const tcp: Server = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      for (const p of handle(q, 'tcp') ?? []) s.write(dnsPacket.streamEncode(p));
      s.end();
    });
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${port}`,
    get udpQueries() {
      return udpQueries;
    },
    async close() {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

const reply = (
  q: dnsPacket.DecodedPacket,
  answers: dnsPacket.Answer[],
  extra: { flags?: number; rcode?: number; id?: number } = {},
): dnsPacket.Packet => ({
  type: 'response',
  id: extra.id ?? q.id ?? 0,
  // rcode is the low four bits of the flags word.
  flags: (extra.flags ?? 0) | (extra.rcode ?? 0),
  questions: q.questions ?? [],
  answers,
});

const srvRR = (name: string, target: string, port: number, ttl: number): dnsPacket.Answer => ({
  type: 'SRV',
  name,
  ttl,
  class: 'IN',
  data: { target, port, priority: 1, weight: 2 },
});

const open: Responder[] = [];
after(async () => {
  for (const r of open) await r.close();
});
async function serve(handle: Handler): Promise<Responder> {
  const r = await responder(handle);
  open.push(r);
  return r;
}

test('wire: an SRV answer with its TTL; a CNAME on the way lowers it', async () => {
  const r = await serve((q) => {
    const name = q.questions![0]!.name;
    if (name === NAME) return [reply(q, [srvRR(NAME, 'mx.example.org', 4025, 300)])];
    return [
      reply(q, [
        { type: 'CNAME', name, ttl: 40, class: 'IN', data: 'alias.example.org' },
        srvRR('alias.example.org', 'mx.alias.example', 4026, 600),
      ]),
    ];
  });
  const query = wireSrvQuery({ servers: [r.address], timeoutMs: 2000, tries: 1 });
  assert.deepEqual(await query(NAME), {
    status: 'ok',
    targets: [{ name: 'mx.example.org', port: 4025, priority: 1, weight: 2 }],
    ttl: 300,
  });
  assert.deepEqual(await query('_nmtp-transfer._tcp.other.example'), {
    status: 'ok',
    targets: [{ name: 'mx.alias.example', port: 4026, priority: 1, weight: 2 }],
    ttl: 40,
  });
});

test('wire: NXDOMAIN, NODATA and a "." target are "none"', async () => {
  const r = await serve((q) => {
    const name = q.questions![0]!.name;
    if (name.startsWith('_nmtp-transfer._tcp.nx.')) return [reply(q, [], { rcode: 3 })];
    if (name.startsWith('_nmtp-transfer._tcp.dot.')) return [reply(q, [srvRR(name, '.', 0, 300)])];
    // An SRV record for another name is not an answer to this one.
    return [reply(q, [srvRR('_nmtp-transfer._tcp.elsewhere.example', 'mx.example', 1, 300)])];
  });
  const query = wireSrvQuery({ servers: [r.address], timeoutMs: 2000, tries: 1 });
  assert.deepEqual(await query('_nmtp-transfer._tcp.nx.example'), { status: 'none' });
  assert.deepEqual(await query('_nmtp-transfer._tcp.dot.example'), { status: 'none' });
  assert.deepEqual(await query('_nmtp-transfer._tcp.nodata.example'), { status: 'none' });
});

test('wire: a TTL with the high bit set counts as 0 (RFC 2181 §8)', async () => {
  const r = await serve((q) => [reply(q, [srvRR(NAME, 'mx.example.org', 4025, 0x80000000)])]);
  const query = wireSrvQuery({ servers: [r.address], timeoutMs: 2000, tries: 1 });
  const a = await query(NAME);
  assert.equal(a.status === 'ok' && a.ttl, 0);
});

test('wire: a truncated UDP answer is asked again over TCP', async () => {
  const r = await serve((q, via) =>
    via === 'udp'
      ? [reply(q, [], { flags: dnsPacket.TRUNCATED_RESPONSE })]
      : [reply(q, [srvRR(NAME, 'mx.example.org', 4025, 77)])],
  );
  const query = wireSrvQuery({ servers: [r.address], timeoutMs: 2000, tries: 1 });
  assert.deepEqual(await query(NAME), {
    status: 'ok',
    targets: [{ name: 'mx.example.org', port: 4025, priority: 1, weight: 2 }],
    ttl: 77,
  });
});

test('wire: datagrams that do not answer the query are ignored', async () => {
  const r = await serve((q) => [
    // Wrong id, then wrong question, then the real answer.
    reply(q, [srvRR(NAME, 'forged.example', 1, 9999)], { id: ((q.id ?? 0) + 1) & 0xffff }),
    {
      ...reply(q, [srvRR(NAME, 'forged.example', 1, 9999)]),
      questions: [{ type: 'SRV', name: 'x.example' }],
    },
    reply(q, [srvRR(NAME, 'mx.example.org', 4025, 5)]),
  ]);
  const query = wireSrvQuery({ servers: [r.address], timeoutMs: 2000, tries: 1 });
  const a = await query(NAME);
  assert.equal(a.status === 'ok' && a.targets[0]!.name, 'mx.example.org');
});

test('wire: SERVFAIL moves to the next server; all failing is a temperror naming each', async () => {
  const bad = await serve((q) => [reply(q, [], { rcode: 2 })]);
  const good = await serve((q) => [reply(q, [srvRR(NAME, 'mx.example.org', 4025, 5)])]);
  const query = wireSrvQuery({ servers: [bad.address, good.address], timeoutMs: 2000, tries: 1 });
  assert.equal((await query(NAME)).status, 'ok');

  const silent = await serve(() => undefined);
  const failing = wireSrvQuery({
    servers: [bad.address, silent.address],
    timeoutMs: 200,
    tries: 2,
  });
  const t = await failing(NAME);
  assert.equal(t.status, 'temperror');
  const detail = t.status === 'temperror' ? t.detail : '';
  assert.match(detail, new RegExp(`${bad.address}: SERVFAIL`));
  assert.match(detail, new RegExp(`${silent.address}: timeout after 200 ms`));
  // Two rounds over both servers.
  assert.equal(silent.udpQueries, 2);
});
