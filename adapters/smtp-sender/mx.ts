/**
 * Where mail for a recipient domain goes when the gateway delivers to the legacy internet
 * itself (smtpOut.mode: mx) rather than through a smarthost: RFC 5321 §5.1 and RFC 7505.
 *
 *   - MX records by preference, equal preferences in random order ("If there are multiple
 *     destinations with the same preference ... the SMTP client SHOULD randomize them");
 *   - no MX record: the implicit MX, the domain's own A/AAAA ("the domain name ... is
 *     treated as if it was associated with an implicit MX RR, with a preference of 0");
 *   - a null MX (`0 .`, RFC 7505 §3): the domain takes no mail, a permanent 556 5.1.10;
 *   - the gateway's own name among the MX hosts: it and every less preferred one are
 *     dropped ("MUST discard all records with preference values equal to or greater than
 *     its own"); nothing left is Postfix's "mail loops back to myself" (5.4.6);
 *   - an address literal (`user@[192.0.2.1]`) is that address, without DNS.
 *
 * Static records (smtpOut.staticMx) answer their domains before DNS, as the routing's static
 * SRV/TXT records do; DNS is node:dns pointed at routing.dnsServers. Nothing is cached here:
 * an MX answer is used once per delivery, and the resolver in front of us caches by TTL.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { processDomain } from '../../src/core/address/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';

/** One MX record: its exchange ("" or "." = null MX) and preference. */
export interface MxRecord {
  readonly exchange: string;
  readonly preference: number;
  /** The port of this host (static records only; default the deliverer's port). */
  readonly port?: number;
}

/** A static MX record of the configuration (smtpOut.staticMx). */
export interface StaticMx extends MxRecord {
  readonly domain: string;
}

/** A host to try, in order: an MX exchange, the implicit MX, or an address literal. */
export interface MxHost {
  readonly name: string;
  readonly port?: number;
  /** The domain itself (no MX record): an address it does not have is a permanent error. */
  readonly implicit?: boolean;
}

export type MxRoute =
  | { readonly status: 'ok'; readonly hosts: readonly MxHost[]; readonly source: 'static' | 'dns' }
  /** RFC 7505 null MX: the domain accepts no mail. */
  | { readonly status: 'null' }
  /** The domain does not exist (NXDOMAIN): permanent. */
  | { readonly status: 'nxdomain'; readonly detail: string }
  /** Only the gateway itself (or less preferred hosts) are MX hosts. */
  | { readonly status: 'loop' }
  | { readonly status: 'temperror'; readonly detail: string };

export type AddressAnswer =
  | { readonly status: 'ok'; readonly addresses: readonly string[] }
  | { readonly status: 'none'; readonly detail: string }
  | { readonly status: 'temperror'; readonly detail: string };

export interface MxResolver {
  /** The hosts of a recipient domain (A-label or U-label; an address literal in brackets). */
  route(domain: string): Promise<MxRoute>;
  /** A host's addresses, IPv4 first; an IP address is itself. */
  addresses(host: string): Promise<AddressAnswer>;
}

const isNull = (exchange: string): boolean => exchange === '' || exchange === '.';
const bare = (name: string): string => name.replace(/\.$/, '').toLowerCase();

/** A domain as DNS is asked for it: A-labels, lower case, no trailing dot. */
export function mxDomain(domain: string): string {
  const d = domain.replace(/\.$/, '');
  try {
    return processDomain(d).ascii;
  } catch (e) {
    if (!(e instanceof NmtpError)) throw e;
    // A name NMTP refuses as a domain (one label, in a test) is still asked as it is.
    return d.toLowerCase();
  }
}

/**
 * The MX records of a domain as the hosts to try (RFC 5321 §5.1), or why there are none.
 * `self` is the gateway's own host name; `random` in [0, 1) shuffles equal preferences.
 */
export function orderMx(
  records: readonly MxRecord[],
  o: { readonly self?: string; readonly random?: () => number } = {},
): MxRoute & { status: 'ok' | 'null' | 'loop' } {
  const real = records.filter((r) => !isNull(r.exchange));
  // RFC 7505 §3: "A domain that advertises a null MX MUST NOT advertise any other MX RR";
  // one that does anyway still names hosts, which are tried.
  if (real.length === 0) return { status: 'null' };
  const random = o.random ?? Math.random;
  let kept = real;
  const self = o.self === undefined ? undefined : bare(o.self);
  const own = real.filter((r) => bare(r.exchange) === self);
  if (own.length > 0) {
    const mine = Math.min(...own.map((r) => r.preference));
    kept = real.filter((r) => r.preference < mine);
    if (kept.length === 0) return { status: 'loop' };
  }
  // Shuffle (Fisher–Yates), then a stable sort by preference keeps ties in random order.
  const shuffled = [...kept];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  shuffled.sort((a, b) => a.preference - b.preference);
  return {
    status: 'ok',
    hosts: shuffled.map((r) => ({
      name: r.exchange.replace(/\.$/, ''),
      ...(r.port === undefined ? {} : { port: r.port }),
    })),
    source: 'dns',
  };
}

/** "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3) as the address, else undefined. */
export function addressLiteral(domain: string): string | undefined {
  const m = /^\[(?:IPv6:)?([^\]]+)\]$/i.exec(domain);
  if (m === null) return undefined;
  const ip = m[1]!;
  const v = isIP(ip);
  if (v === 0) return undefined;
  // The IPv6 form needs its tag, the IPv4 form must not have it.
  if ((v === 6) !== /^\[IPv6:/i.test(domain)) return undefined;
  return ip;
}

export interface MxResolverOptions {
  /** DNS servers, HOST:PORT (IPv6 in brackets); empty or absent: the system's. */
  readonly servers?: readonly string[];
  readonly staticMx?: readonly StaticMx[];
  /** The gateway's own host name (MX loop detection). */
  readonly self?: string;
  readonly random?: () => number;
  readonly timeoutMs?: number;
  readonly tries?: number;
}

const errCode = (e: unknown): string => (e as { code?: string }).code ?? '';
/** No such name, or no record of the type asked for. */
const NXDOMAIN = 'ENOTFOUND';
const NODATA = 'ENODATA';

export function dnsMxResolver(o: MxResolverOptions = {}): MxResolver {
  const resolver = new Resolver({ timeout: o.timeoutMs ?? 3000, tries: o.tries ?? 2 });
  if (o.servers !== undefined && o.servers.length > 0) resolver.setServers([...o.servers]);
  const statics = new Map<string, MxRecord[]>();
  for (const r of o.staticMx ?? []) {
    const d = mxDomain(r.domain);
    statics.set(d, [...(statics.get(d) ?? []), r]);
  }
  const order = (records: readonly MxRecord[]): MxRoute =>
    orderMx(records, {
      ...(o.self === undefined ? {} : { self: o.self }),
      ...(o.random === undefined ? {} : { random: o.random }),
    });

  return {
    async route(domain) {
      const literal = addressLiteral(domain);
      if (literal !== undefined)
        return { status: 'ok', hosts: [{ name: literal }], source: 'static' };
      const d = mxDomain(domain);
      const fixed = statics.get(d);
      if (fixed !== undefined) {
        const r = order(fixed);
        return r.status === 'ok' ? { ...r, source: 'static' } : r;
      }
      try {
        const records = await resolver.resolveMx(d);
        if (records.length > 0) {
          return order(records.map((r) => ({ exchange: r.exchange, preference: r.priority })));
        }
      } catch (e) {
        const code = errCode(e);
        if (code === NXDOMAIN) return { status: 'nxdomain', detail: `${d}: no such domain` };
        if (code !== NODATA) {
          return { status: 'temperror', detail: `MX ${d}: ${code} ${(e as Error).message}`.trim() };
        }
      }
      // RFC 5321 §5.1: no MX record, the domain is its own (implicit) MX.
      return { status: 'ok', hosts: [{ name: d, implicit: true }], source: 'dns' };
    },

    async addresses(host) {
      if (isIP(host) !== 0) return { status: 'ok', addresses: [host] };
      const name = mxDomain(host);
      const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
      const addresses = [
        ...(v4.status === 'fulfilled' ? v4.value : []),
        ...(v6.status === 'fulfilled' ? v6.value : []),
      ];
      if (addresses.length > 0) return { status: 'ok', addresses };
      const failed = [v4, v6].flatMap((r) =>
        r.status === 'rejected' ? [r.reason as unknown] : [],
      );
      const temporary = failed.filter((e) => errCode(e) !== NXDOMAIN && errCode(e) !== NODATA);
      if (temporary.length === 0) return { status: 'none', detail: `${name}: no A or AAAA record` };
      return {
        status: 'temperror',
        detail: `A/AAAA ${name}: ${temporary.map((e) => `${errCode(e)} ${(e as Error).message}`.trim()).join('; ')}`,
      };
    },
  };
}
