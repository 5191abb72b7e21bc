/**
 * SRV discovery of NMTP servers (RFC 2782) through node:dns pointed at the configured
 * servers. Section 60 leaves the names to this layer (§60.2: "Host and port discovery by
 * DNS SRV records is part of the server/client work"); they are:
 *
 *     _nmtp-transfer._tcp.<domain>     transfer service (server to server)
 *     _nmtp-submission._tcp.<domain>   submission service (a user's client)
 *
 * Targets are ordered by priority (lowest first) and, within one priority, by RFC 2782's
 * weighted random selection; the caller tries them in order and falls back to the next on
 * failure. A single target "." means the service is decidedly not available.
 */
import { Resolver } from 'node:dns/promises';
import type { DnsOptions } from './txt.ts';

export type NmtpService = 'transfer' | 'submission';

export interface SrvTarget {
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

export type SrvAnswer =
  | { readonly status: 'ok'; readonly targets: readonly SrvTarget[] }
  | { readonly status: 'none' }
  | { readonly status: 'temperror'; readonly detail: string };

export function srvName(service: NmtpService, domain: string): string {
  return `_nmtp-${service}._tcp.${domain}`;
}

/**
 * RFC 2782 ordering: ascending priority; inside a priority, repeatedly pick a target with
 * probability weight/sum (weight-0 targets first in the running order, so they are picked
 * only rarely). `random` returns a number in [0, 1) and is a parameter for tests.
 */
export function orderTargets(
  targets: readonly SrvTarget[],
  random: () => number = Math.random,
): SrvTarget[] {
  const byPriority = new Map<number, SrvTarget[]>();
  for (const t of targets) byPriority.set(t.priority, [...(byPriority.get(t.priority) ?? []), t]);
  const out: SrvTarget[] = [];
  for (const p of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...byPriority.get(p)!].sort((a, b) => a.weight - b.weight);
    while (pool.length > 0) {
      const sum = pool.reduce((n, t) => n + t.weight, 0);
      const pick = random() * (sum + 1);
      let running = 0;
      let i = pool.findIndex((t) => (running += t.weight) >= pick);
      if (i < 0) i = pool.length - 1;
      out.push(pool.splice(i, 1)[0]!);
    }
  }
  return out;
}

export function dnsSrvResolver(
  options: DnsOptions = {},
): (service: NmtpService, domain: string) => Promise<SrvAnswer> {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (options.servers !== undefined) resolver.setServers([...options.servers]);
  return async (service, domain) => {
    try {
      const records = await resolver.resolveSrv(srvName(service, domain));
      const targets = records
        .map((r) => ({ name: r.name, port: r.port, priority: r.priority, weight: r.weight }))
        // "A Target of '.' means that the service is decidedly not available" (RFC 2782).
        .filter((t) => t.name !== '' && t.name !== '.');
      return targets.length === 0 ? { status: 'none' } : { status: 'ok', targets };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === 'ENOTFOUND' || code === 'ENODATA') return { status: 'none' };
      return { status: 'temperror', detail: `${code} ${(err as Error).message}`.trim() };
    }
  };
}
