import type { TxtResolver } from '../../../src/core/keys/index.ts';

/** A TXT resolver over a plain map (name → records); a missing name is NXDOMAIN. */
export function mapResolver(dns: Record<string, string[]>): TxtResolver {
  return (name) =>
    Object.hasOwn(dns, name)
      ? { status: 'ok', records: dns[name]!.map((r) => [r]) }
      : { status: 'nxdomain' };
}
