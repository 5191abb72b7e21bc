/**
 * `nmtp-gateway route ADDRESS…`: what the gateway would do with each recipient, and why —
 * Postfix's `postmap -q` against transport(5), with the DNS answer as evidence. One line
 * per address, tab-separated:
 *
 *     address  transport  via  why
 *
 * `transport` is nmtp, smtp, invalid or temperror; `via` is the rule (address, domain,
 * static-srv, dns-srv, dns-none, default), the NMTP_ERR_* code for an invalid address, "-"
 * for a temperror. Exit status (sysexits, as the `nmtp` command): 0 when every address was
 * routed, 65 (EX_DATAERR) when one is invalid — retrying cannot change that — else 75
 * (EX_TEMPFAIL) when DNS failed for one.
 */
import type { GatewayConfig } from './config.ts';
import type { Clock, RouteDecision } from './ports.ts';
import { createRouter, type RouterSrv } from './route.ts';

export interface RouteCommandOptions {
  /** Tests: the SRV lookup and clock; default the gateway's own DNS (config.routing). */
  readonly srv?: RouterSrv;
  readonly now?: Clock;
}

/** A field of a tab-separated line: tabs, line ends and other controls shown escaped. */
const field = (s: string): string =>
  // eslint-disable-next-line no-control-regex
  s.replace(/[\x00-\x1f\x7f]/g, (c) => {
    const named: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });

function line(input: string, d: RouteDecision): string {
  switch (d.transport) {
    case 'invalid':
      return [input, d.transport, d.err, d.why].map(field).join('\t');
    case 'temperror':
      return [input, d.transport, '-', d.why].map(field).join('\t');
    default: {
      // An NMTP recipient is delivered under its canonical form: show it when it differs.
      const as = d.address === input ? '' : `; as ${d.address}`;
      return [input, d.transport, d.via, `${d.why}${as}`].map(field).join('\t');
    }
  }
}

export async function routeCommand(
  config: GatewayConfig,
  addresses: readonly string[],
  out: (line: string) => void,
  o: RouteCommandOptions = {},
): Promise<number> {
  const router = createRouter({ config, ...o });
  let invalid = false;
  let temperror = false;
  // One at a time, in order: the lines follow the arguments, and a second address of a
  // domain is answered from the cache the first one filled.
  for (const input of addresses) {
    const d = await router.route(input);
    invalid ||= d.transport === 'invalid';
    temperror ||= d.transport === 'temperror';
    out(line(input, d));
  }
  return invalid ? 65 : temperror ? 75 : 0;
}
