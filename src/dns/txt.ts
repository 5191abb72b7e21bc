/**
 * TXT lookups for the core's key and revocation checks, through node:dns pointed at the
 * configured servers. Maps resolver outcomes onto the core's three answers: a name that
 * does not exist (or has no TXT) is `nxdomain`, anything else that fails is `temperror`
 * (a DNS failure must defer, never fail a signature permanently).
 */
import { Resolver } from 'node:dns/promises';
import type { TxtAnswer, TxtResolver } from '../core/keys/index.ts';

const ABSENT = new Set(['ENOTFOUND', 'ENODATA']);

export interface DnsOptions {
  /** "host" or "host:port" entries; the system's servers when absent. */
  readonly servers?: readonly string[];
  /** Per-try timeout in milliseconds. */
  readonly timeoutMs?: number;
  readonly tries?: number;
}

export function dnsTxtResolver(options: DnsOptions = {}): TxtResolver {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (options.servers !== undefined) resolver.setServers([...options.servers]);
  return async (name: string): Promise<TxtAnswer> => {
    try {
      return { status: 'ok', records: await resolver.resolveTxt(name) };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (ABSENT.has(code)) return { status: 'nxdomain' };
      return { status: 'temperror', detail: `${code} ${(err as Error).message}`.trim() };
    }
  };
}

/** A resolver answering from fixed name → TXT text pairs (the CLI's --key-record). */
export function staticTxtResolver(records: ReadonlyMap<string, readonly string[]>): TxtResolver {
  return (name: string): TxtAnswer => {
    const txt = records.get(name.toLowerCase());
    return txt === undefined
      ? { status: 'nxdomain' }
      : { status: 'ok', records: txt.map((t) => [t]) };
  };
}
