/**
 * The gateway's DNS: SRV answers with a cache that honours each record's TTL, in front of
 * the static records of the configuration, and TXT answers (key records) static first.
 *
 * One SRV lookup serves both the router (NMTP or SMTP for a recipient's domain, §60.15: "A
 * domain with a `_nmtp-transfer._tcp` record is NMTP-capable: a sender (and a gateway
 * deciding between NMTP and legacy SMTP, per recipient domain) MUST use NMTP for it") and
 * the transfer client (where to connect), so a message is delivered to the servers whose
 * record routed it, not to a second answer that may differ.
 *
 * Why not node:dns: `Resolver.resolveSrv` gives no TTL, and a cache without the record's
 * TTL either keeps a withdrawn record too long or asks DNS for every RCPT. The query here is
 * the DNS wire format (RFC 1035, `dns-packet` for the codec) over UDP to the configured
 * servers, with TCP when the answer is truncated (RFC 7766); everything above the wire (the
 * record name, the "." target, the answer type) is src/dns/srv.ts's.
 */
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect, isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import { NmtpError } from '../core/errors/index.ts';
import { processDomain } from '../core/address/index.ts';
import type { TxtAnswer, TxtResolver } from '../core/keys/index.ts';
import { srvName, type NmtpService, type SrvAnswer, type SrvTarget } from '../dns/srv.ts';
import { dnsTxtResolver } from '../dns/txt.ts';
import type { GatewayConfig } from './config.ts';
import type { Clock } from './ports.ts';

/** The `routing` section (the composition root passes it with its own static records added). */
export type RoutingConfig = GatewayConfig['routing'];

/** An SRV answer with where it came from: what `nmtp-gateway route` shows as evidence. */
export type GatewaySrvAnswer = SrvAnswer & {
  readonly source: 'static' | 'dns';
  /** Seconds the answer is still good for (DNS answers; a temperror has none). */
  readonly ttl?: number;
  /** True when the answer came from the cache rather than a query just made. */
  readonly cached?: boolean;
};

/** Compatible with src/client's `SrvLookup`: the transfer client takes it as it is. */
export type GatewaySrvLookup = (service: NmtpService, domain: string) => Promise<GatewaySrvAnswer>;

/** One SRV query on the wire, with the TTL the cache needs. */
export type SrvQueryResult =
  | { readonly status: 'ok'; readonly targets: readonly SrvTarget[]; readonly ttl: number }
  | { readonly status: 'none' }
  | { readonly status: 'temperror'; readonly detail: string };

/** Asks DNS for the SRV records of one full name (e.g. `_nmtp-transfer._tcp.example.org`). */
export type SrvQuery = (name: string) => Promise<SrvQueryResult>;

export interface WireOptions {
  /** HOST:PORT (IPv6 in brackets) or a bare IP (port 53); empty: the system's servers. */
  readonly servers?: readonly string[];
  /** Per-try timeout in milliseconds. */
  readonly timeoutMs?: number;
  /** Rounds over all servers before giving up with a temperror. */
  readonly tries?: number;
}

interface Server {
  readonly host: string;
  readonly port: number;
}

/** "1.2.3.4", "1.2.3.4:53", "::1", "[::1]:5353", "host:53" (as config and node:dns write them). */
export function parseServer(text: string): Server {
  const bracket = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  if (bracket) return { host: bracket[1]!, port: Number(bracket[2]) };
  if (isIP(text) !== 0) return { host: text, port: 53 };
  const m = /^([^:]+):(\d{1,5})$/.exec(text);
  if (m && Number(m[2]) <= 65535) return { host: m[1]!, port: Number(m[2]) };
  throw new NmtpError('NMTP_ERR_GW_CONFIG_INVALID', `DNS server ${JSON.stringify(text)}`);
}

/**
 * RFC 2181 §8: a TTL is an unsigned 31-bit number; "a TTL value with the most significant
 * bit set ... should be treated as if the entire value received was zero".
 */
const sane = (ttl: number | undefined): number =>
  ttl === undefined || ttl < 0 || ttl > 0x7fffffff ? 0 : ttl;

const sameName = (a: string, b: string): boolean =>
  a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

type Reply = dnsPacket.DecodedPacket & { rcode?: string };

/**
 * What a response says about `name`'s SRV records. NOERROR with records (following CNAMEs
 * from the question name) is `ok` with the smallest TTL on the chain; NOERROR without them
 * (NODATA) and NXDOMAIN are `none`; any other rcode is the server's failure: next server.
 */
function readSrvReply(name: string, reply: Reply): SrvQueryResult | { failed: string } {
  const rcode = reply.rcode ?? 'NOERROR';
  if (rcode === 'NXDOMAIN') return { status: 'none' };
  if (rcode !== 'NOERROR') return { failed: rcode };
  const names = [name];
  let ttl = Number.POSITIVE_INFINITY;
  const targets: SrvTarget[] = [];
  // Answers may list a CNAME before its target's records (RFC 1034 §3.6.2): follow it.
  for (const a of reply.answers ?? []) {
    if (!names.some((n) => sameName(n, a.name))) continue;
    if (a.type === 'CNAME') {
      names.push(a.data);
      ttl = Math.min(ttl, sane(a.ttl));
    } else if (a.type === 'SRV') {
      ttl = Math.min(ttl, sane(a.ttl));
      const target = a.data.target.replace(/\.$/, '');
      // "A Target of '.' means that the service is decidedly not available" (RFC 2782).
      if (target === '' || target === '.') continue;
      targets.push({
        name: target,
        port: a.data.port,
        priority: a.data.priority ?? 0,
        weight: a.data.weight ?? 0,
      });
    }
  }
  if (targets.length === 0) return { status: 'none' };
  return { status: 'ok', targets, ttl: Number.isFinite(ttl) ? ttl : 0 };
}

/** True when `reply` answers our query `id` for `name` (not a stray or spoofed datagram). */
function answersQuery(reply: Reply, id: number, name: string): boolean {
  const q = reply.questions?.[0];
  return (
    reply.id === id &&
    reply.type === 'response' &&
    q !== undefined &&
    q.type === 'SRV' &&
    sameName(q.name, name)
  );
}

function udpExchange(server: Server, query: Buffer, id: number, name: string, ms: number) {
  return new Promise<Reply>((resolve, reject) => {
    const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const done = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error(`timeout after ${ms} ms`))), ms);
    socket.on('error', (e) => done(() => reject(e)));
    socket.on('message', (msg) => {
      let reply: Reply;
      try {
        reply = dnsPacket.decode(msg) as Reply;
      } catch {
        return; // not DNS: keep waiting for the real answer until the timeout
      }
      if (answersQuery(reply, id, name)) done(() => resolve(reply));
    });
    // A connected socket takes datagrams from the server's address and port only.
    socket.connect(server.port, server.host, () => socket.send(query));
  });
}

function tcpExchange(server: Server, query: Buffer, id: number, name: string, ms: number) {
  return new Promise<Reply>((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error(`timeout after ${ms} ms`))), ms);
    socket.on('error', (e) => done(() => reject(e)));
    socket.on('close', () => done(() => reject(new Error('closed before answering'))));
    // RFC 1035 §4.2.2: over TCP a message is prefixed with its two-octet length.
    const framed = Buffer.alloc(2 + query.length);
    framed.writeUInt16BE(query.length, 0);
    query.copy(framed, 2);
    socket.on('connect', () => socket.write(framed));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      done(() => {
        try {
          const reply = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))) as Reply;
          if (answersQuery(reply, id, name)) resolve(reply);
          else reject(new Error('TCP answer does not match the query'));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  });
}

function packetOf(id: number, name: string): dnsPacket.Packet {
  return {
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'SRV', class: 'IN', name }],
  };
}

/**
 * SRV queries over the wire to `servers` in order, `tries` rounds: the first server that
 * answers NOERROR or NXDOMAIN decides; timeouts, refusals and SERVFAIL move on; when every
 * try failed the answer is a temperror naming each failure.
 */
export function wireSrvQuery(options: WireOptions = {}): SrvQuery {
  const timeoutMs = options.timeoutMs ?? 3000;
  const tries = options.tries ?? 2;
  const configured = options.servers ?? [];
  // The system's servers as node:dns read them from resolv.conf (once, as node:dns does).
  const servers = (configured.length > 0 ? configured : new Resolver().getServers()).map(
    parseServer,
  );
  return async (name) => {
    if (servers.length === 0) return { status: 'temperror', detail: 'no DNS servers' };
    const failures: string[] = [];
    for (let round = 0; round < tries; round++) {
      for (const server of servers) {
        const at = `${server.host}:${server.port}`;
        const id = randomInt(0, 0x10000);
        const query = dnsPacket.encode(packetOf(id, name));
        try {
          let reply = await udpExchange(server, query, id, name, timeoutMs);
          // "the TC bit ... the client SHOULD retry over TCP" (RFC 7766 §5, RFC 1035 §4.2.1)
          if (reply.flag_tc) reply = await tcpExchange(server, query, id, name, timeoutMs);
          const r = readSrvReply(name, reply);
          if (!('failed' in r)) return r;
          failures.push(`${at}: ${r.failed}`);
        } catch (e) {
          failures.push(`${at}: ${(e as Error).message}`);
        }
      }
    }
    return { status: 'temperror', detail: `${name}: ${failures.join('; ')}` };
  };
}

/**
 * The DNS name to ask for `domain`: its A-label form (U-labels and any case accepted).
 * Names NMTP refuses as domains (a single label in a test) are still asked, lower-cased,
 * when they are ASCII; anything else has no record.
 */
function dnsDomain(domain: string): string | undefined {
  try {
    return processDomain(domain).ascii;
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    const plain = domain.replace(/\.$/, '').toLowerCase();
    return /^[\x21-\x7e]+$/.test(plain) ? plain : undefined;
  }
}

/** A configured domain in A-label form, or a configuration error naming the key. */
export function configDomain(domain: string, key: string): string {
  try {
    return processDomain(domain).ascii;
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    throw new NmtpError(
      'NMTP_ERR_GW_CONFIG_INVALID',
      `${key}: ${JSON.stringify(domain)} is not a domain: ${e.message}`,
    );
  }
}

export interface SrvLookupOptions {
  /** The cache's clock; default Date.now. */
  readonly now?: Clock;
  /** The wire query; default `wireSrvQuery` to `routing.dnsServers`. */
  readonly query?: SrvQuery;
  /** Bound on cached names (oldest dropped first); default 10000. */
  readonly maxEntries?: number;
}

interface Entry {
  readonly answer: SrvQueryResult & { status: 'ok' | 'none' };
  readonly expires: number;
}

/**
 * The SRV lookup: static records first (`routing.staticRecords.srv`: a domain listed there
 * never asks DNS, for the transfer service), then the cache, then one query per name at a
 * time (concurrent lookups of one name share it). A record is kept its TTL clamped to
 * [0, maxTtl]; "none" is kept `negativeTtl`; a temperror is never kept, so the next RCPT
 * asks again.
 */
export function createSrvLookup(
  routing: RoutingConfig,
  o: SrvLookupOptions = {},
): GatewaySrvLookup {
  const now = o.now ?? Date.now;
  const query = o.query ?? wireSrvQuery({ servers: routing.dnsServers });
  const maxEntries = o.maxEntries ?? 10_000;
  const statics = new Map<string, SrvTarget[]>();
  routing.staticRecords.srv.forEach((r, i) => {
    const domain = configDomain(r.domain, `routing.staticRecords.srv[${i}].domain`);
    const target = { name: r.target.replace(/\.$/, ''), port: r.port, priority: r.priority };
    statics.set(domain, [...(statics.get(domain) ?? []), { ...target, weight: r.weight }]);
  });
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<GatewaySrvAnswer>>();

  const remember = (name: string, answer: Entry['answer'], seconds: number): void => {
    const ttl = Math.min(Math.max(seconds, 0), routing.maxTtl);
    if (ttl === 0) return;
    if (cache.size >= maxEntries) {
      const t = now();
      for (const [k, e] of cache) if (e.expires <= t) cache.delete(k);
      // Still full: drop the oldest (a Map iterates in insertion order).
      while (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    }
    cache.delete(name);
    cache.set(name, { answer, expires: now() + ttl * 1000 });
  };

  const ask = async (name: string): Promise<GatewaySrvAnswer> => {
    let r: SrvQueryResult;
    try {
      r = await query(name);
    } catch (e) {
      // Unknown errors are temporary (src/core/errors/policy.ts).
      r = { status: 'temperror', detail: `${name}: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (r.status === 'temperror') return { ...r, source: 'dns' };
    const seconds = r.status === 'ok' ? r.ttl : routing.negativeTtl;
    remember(name, r, seconds);
    return { ...answerOf(r), source: 'dns', ttl: Math.min(Math.max(seconds, 0), routing.maxTtl) };
  };

  return async (service, domain) => {
    const d = dnsDomain(domain);
    if (d === undefined) return { status: 'none', source: 'dns', ttl: 0 };
    const fixed = service === 'transfer' ? statics.get(d) : undefined;
    if (fixed !== undefined) return { status: 'ok', targets: fixed, source: 'static' };
    const name = srvName(service, d);
    const hit = cache.get(name);
    const t = now();
    if (hit !== undefined) {
      if (t < hit.expires) {
        const ttl = Math.ceil((hit.expires - t) / 1000);
        return { ...answerOf(hit.answer), source: 'dns', ttl, cached: true };
      }
      cache.delete(name);
    }
    const pending = inflight.get(name);
    if (pending !== undefined) return pending;
    const p = ask(name).finally(() => inflight.delete(name));
    inflight.set(name, p);
    return p;
  };
}

const answerOf = (r: SrvQueryResult & { status: 'ok' | 'none' }): SrvAnswer =>
  r.status === 'ok' ? { status: 'ok', targets: r.targets } : { status: 'none' };

/** A TXT name from the configuration, as the core asks for it: ASCII, lower case. */
function txtName(name: string, key: string): string {
  const plain = name.replace(/\.$/, '');
  if (/^[\x21-\x7e]+$/.test(plain)) return plain.toLowerCase();
  // A U-label domain under `selector._nmtpkey.`: the labels after the last "_" label.
  const labels = plain.split('.');
  const cut = labels.findLastIndex((l) => l.startsWith('_')) + 1;
  const domain = configDomain(labels.slice(cut).join('.'), key);
  return [...labels.slice(0, cut).map((l) => l.toLowerCase()), domain].join('.');
}

export interface TxtLookupOptions {
  /** The DNS resolver behind the static records; default src/dns/txt.ts to `dnsServers`. */
  readonly dns?: TxtResolver;
}

/**
 * TXT for key and revocation records: `routing.staticRecords.txt` answers its names (one
 * record per entry, so two entries of one name are two records), DNS answers the rest.
 */
export function createTxtLookup(routing: RoutingConfig, o: TxtLookupOptions = {}): TxtResolver {
  const fixed = new Map<string, string[][]>();
  routing.staticRecords.txt.forEach((r, i) => {
    const name = txtName(r.name, `routing.staticRecords.txt[${i}].name`);
    fixed.set(name, [...(fixed.get(name) ?? []), [r.value]]);
  });
  const servers = routing.dnsServers;
  const dns = o.dns ?? dnsTxtResolver(servers.length > 0 ? { servers } : {});
  return (name: string): Promise<TxtAnswer> | TxtAnswer => {
    const records = fixed.get(name.replace(/\.$/, '').toLowerCase());
    return records !== undefined ? { status: 'ok', records } : dns(name);
  };
}
