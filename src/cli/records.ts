/**
 * Static DNS records given on the command line, so endpoints can find each other with no
 * DNS server set up by hand (the README's two-endpoint walk-through):
 *
 *   --key-record NAME=TXT    a domain key record (`nmtp keys generate` prints the flag)
 *   --srv DOMAIN=HOST:PORT   the transfer service of DOMAIN (`_nmtp-transfer._tcp`, §60.2)
 *
 * A name given here is answered from here; every other name goes to DNS (`--dns-server`
 * or the system's), so one static record does not hide the rest of the world.
 */
import type { TxtAnswer, TxtResolver } from '../core/keys/index.ts';
import { dnsSrvResolver, type NmtpService, type SrvAnswer } from '../dns/srv.ts';
import { dnsTxtResolver, staticTxtResolver } from '../dns/txt.ts';
import { hostPort, UsageError } from './args.ts';

export const RECORD_OPTIONS = {
  'key-record': { type: 'string', multiple: true },
  srv: { type: 'string', multiple: true },
} as const;

export const RECORD_USAGE =
  '[--key-record NAME=TXT…] [--srv DOMAIN=HOST:PORT…  (static records: no DNS server needed)]';

function dnsOptions(v: Record<string, unknown>): { servers?: string[] } {
  const servers = v['dns-server'] as string[] | undefined;
  return servers === undefined ? {} : { servers };
}

/** NAME=VALUE pairs of a repeated flag, names case-folded. */
function pairs(v: Record<string, unknown>, flag: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const p of (v[flag] as string[] | undefined) ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${flag} takes NAME=VALUE, got "${p}"`);
    const name = p.slice(0, eq).toLowerCase().replace(/\.$/, '');
    map.set(name, [...(map.get(name) ?? []), p.slice(eq + 1)]);
  }
  return map;
}

/** TXT: the --key-record names from the flags, the rest from DNS. */
export function txtResolverFrom(v: Record<string, unknown>): TxtResolver {
  const dns = dnsTxtResolver(dnsOptions(v));
  const fixed = pairs(v, 'key-record');
  if (fixed.size === 0) return dns;
  const local = staticTxtResolver(fixed);
  return (name: string): Promise<TxtAnswer> | TxtAnswer =>
    fixed.has(name.toLowerCase().replace(/\.$/, '')) ? local(name) : dns(name);
}

/** SRV: the --srv domains from the flags (transfer service), the rest from DNS. */
export function srvLookupFrom(
  v: Record<string, unknown>,
): (service: NmtpService, domain: string) => Promise<SrvAnswer> {
  const dns = dnsSrvResolver(dnsOptions(v));
  const fixed = new Map<string, SrvAnswer>();
  for (const [domain, targets] of pairs(v, 'srv')) {
    fixed.set(domain, {
      status: 'ok',
      // In the order given, as if each had a lower priority than the one before.
      targets: targets.map((t, i) => {
        const { host, port } = hostPort(t, 'srv');
        return { name: host, port, priority: i, weight: 0 };
      }),
    });
  }
  return (service, domain) => {
    const answer = service === 'transfer' ? fixed.get(domain.toLowerCase()) : undefined;
    return answer === undefined ? dns(service, domain) : Promise.resolve(answer);
  };
}
