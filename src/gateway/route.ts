/**
 * Per-recipient routing: NMTP or SMTP for each RCPT, the way Postfix's transport(5) table
 * decides a next hop, with DNS deciding what the table does not.
 *
 * Rules, first match wins:
 *   1. `routing.addresses`: the recipient itself (a half-migrated domain);
 *   2. `routing.domains`: its domain;
 *   3. the domains of `nmtp.receiver.domains` (the gateway's own NMTP receiver) are NMTP;
 *   4. `routing.default`: `nmtp` or `smtp`, or `dns`: NMTP when the domain publishes
 *      `_nmtp-transfer._tcp` (static record or DNS), SMTP when it does not, no decision
 *      (temperror) when DNS failed — §60.15: "A domain with a `_nmtp-transfer._tcp` record
 *      is NMTP-capable: a sender (and a gateway deciding between NMTP and legacy SMTP, per
 *      recipient domain) MUST use NMTP for it."
 *
 * The recipient is a legacy forward-path (RFC 5321, with RFC 6531 UTF-8), parsed by the
 * core's one strict mapping (§20.9.1). One that NMTP cannot carry exactly (a quoted local
 * part with a space, a local part NFC would change) is still a valid legacy address: it
 * may go to SMTP, as given; a rule that sends it to NMTP makes it `invalid`
 * (NMTP_ERR_ADDR_LEGACY_UNMAPPABLE), because the gateway never guesses which NMTP mailbox a
 * legacy string means. A domain literal has no domain to route by: invalid.
 *
 * Overrides compare one key form: the local part as the core's split gives it (quotes
 * removed, RFC 5321 §4.1.2) "@" the domain's A-label, lower case — for a mappable address
 * that is exactly its NMTP canonical form. Configuration keys may be written with U-labels
 * or in any case; a key that is not an address or a domain fails at start-up.
 */
import { NmtpError } from '../core/errors/index.ts';
import {
  addressVerdict,
  domainVerdict,
  fromLegacyAddress,
  homographVerdict,
  parseAddress,
  processDomain,
  splitLegacy,
  type Address,
} from '../core/address/index.ts';
import { srvName, type NmtpService, type SrvAnswer } from '../dns/srv.ts';
import type { GatewayConfig } from './config.ts';
import { configDomain, createSrvLookup, type GatewaySrvAnswer } from './dns.ts';
import type { Clock, RouteDecision, Router } from './ports.ts';

/**
 * The SRV lookup the router asks: a plain `SrvLookup` (src/client) works; the gateway's own
 * (src/gateway/dns.ts) adds where the answer came from and its TTL, for `why`.
 */
export type RouterSrv = (
  service: NmtpService,
  domain: string,
) => Promise<SrvAnswer & Partial<Pick<GatewaySrvAnswer, 'source' | 'ttl' | 'cached'>>>;

export interface RouterOptions {
  readonly config: GatewayConfig;
  /** The SRV lookup; default: src/gateway/dns.ts's over `config.routing` and `now`. */
  readonly srv?: RouterSrv;
  readonly now?: Clock;
}

type Transport = 'nmtp' | 'smtp';

/** A recipient as routing sees it. */
interface Recipient {
  /** The override key: unquoted local part "@" A-label domain. */
  readonly key: string;
  readonly domainAscii: string;
  /** The NMTP address, or why there is none (LEGACY_UNMAPPABLE). */
  readonly nmtp: Address | NmtpError;
}

const coded = (e: unknown): NmtpError => {
  if (e instanceof NmtpError) return e;
  throw e;
};

/**
 * Parses a recipient with the core's mapping; an unmappable one keeps its domain (checked
 * by the same IDNA processing) so that it can still be routed to SMTP.
 */
function parseRecipient(input: string): Recipient | NmtpError {
  try {
    const a = fromLegacyAddress(input);
    return { key: a.canonical, domainAscii: a.domainAscii, nmtp: a };
  } catch (e) {
    const err = coded(e);
    if (err.code !== 'NMTP_ERR_ADDR_LEGACY_UNMAPPABLE') return err;
    try {
      // fromLegacyAddress got past the split to say "unmappable": both succeed again.
      const { local, domain } = splitLegacy(input);
      const d = processDomain(domain);
      // "A gateway MUST refuse an address whose domain is minimally restrictive or
      // unrestricted." (§20.7.3) — whichever way it leaves.
      const verdict = addressVerdict(homographVerdict(local), domainVerdict(d.unicode));
      if (verdict.action === 'refuse') {
        return new NmtpError('NMTP_ERR_ADDR_HOMOGRAPH_REFUSED', verdict.reasons.join(', '));
      }
      return { key: `${local}@${d.ascii}`, domainAscii: d.ascii, nmtp: err };
    } catch (e2) {
      return coded(e2);
    }
  }
}

/** The key of a configured address: legacy syntax (quotes allowed) or NMTP syntax. */
function configAddress(text: string, key: string, to: Transport): string {
  const r = parseRecipient(text);
  if (!(r instanceof NmtpError)) {
    if (to === 'nmtp' && r.nmtp instanceof NmtpError) {
      throw new NmtpError(
        'NMTP_ERR_GW_CONFIG_INVALID',
        `${key}: ${JSON.stringify(text)} cannot be routed to nmtp: ${r.nmtp.message}`,
      );
    }
    return r.key;
  }
  try {
    // NMTP local parts may hold "(" ")" ":" ";" "[" "]" unquoted (§20.9.2): accept them.
    return parseAddress(text).canonical;
  } catch (e) {
    const err = coded(e);
    throw new NmtpError(
      'NMTP_ERR_GW_CONFIG_INVALID',
      `${key}: ${JSON.stringify(text)} is not an address: ${r.message}; as NMTP: ${err.message}`,
    );
  }
}

/** Builds a key → transport table; two spellings of one key with different values fail. */
function table(
  entries: Record<string, Transport>,
  section: string,
  keyOf: (text: string, key: string, to: Transport) => string,
): Map<string, { readonly to: Transport; readonly written: string }> {
  const out = new Map<string, { to: Transport; written: string }>();
  for (const [text, to] of Object.entries(entries)) {
    const key = `${section}[${JSON.stringify(text)}]`;
    const k = keyOf(text, key, to);
    const seen = out.get(k);
    if (seen !== undefined && seen.to !== to) {
      throw new NmtpError(
        'NMTP_ERR_GW_CONFIG_INVALID',
        `${key}: ${to} contradicts ${section}[${JSON.stringify(seen.written)}]: ${seen.to} (both are ${k})`,
      );
    }
    out.set(k, { to, written: text });
  }
  return out;
}

const describeTargets = (a: SrvAnswer): string =>
  a.status !== 'ok'
    ? ''
    : [...a.targets]
        .sort((x, y) => x.priority - y.priority)
        .map((t) => `${t.name}:${t.port}`)
        .join(', ');

export function createRouter(o: RouterOptions): Router {
  const { config } = o;
  const { routing } = config;
  const srv: RouterSrv = o.srv ?? createSrvLookup(routing, { now: o.now ?? Date.now });
  const addresses = table(routing.addresses, 'routing.addresses', configAddress);
  const domains = table(routing.domains, 'routing.domains', configDomain);
  const receiver = new Map<string, string>();
  if (config.nmtp.receiver.enabled) {
    config.nmtp.receiver.domains.forEach((d, i) => {
      receiver.set(configDomain(d, `nmtp.receiver.domains[${i}]`), d);
    });
  }

  /** The decision once a rule chose `to`: NMTP needs the NMTP address. */
  const decide = (
    input: string,
    r: Recipient,
    to: Transport,
    via: Extract<RouteDecision, { transport: 'nmtp' | 'smtp' }>['via'],
    why: string,
  ): RouteDecision => {
    if (to === 'smtp') return { transport: 'smtp', address: input, via, why };
    if (r.nmtp instanceof NmtpError) {
      return invalid(input, r.nmtp, `${why}; but NMTP cannot carry it: ${r.nmtp.message}`);
    }
    return { transport: 'nmtp', address: r.nmtp.canonical, via, why };
  };

  return {
    async route(input) {
      const r = parseRecipient(input);
      if (r instanceof NmtpError) return invalid(input, r, `not a valid address: ${r.message}`);
      if (!(r.nmtp instanceof NmtpError) && r.nmtp.homograph.action === 'refuse') {
        // §20.7.3 again, for an address that maps.
        const reasons = r.nmtp.homograph.reasons.join(', ');
        const err = new NmtpError('NMTP_ERR_ADDR_HOMOGRAPH_REFUSED', reasons);
        return invalid(input, err, `homograph policy refuses ${r.nmtp.display}: ${reasons}`);
      }

      const byAddress = addresses.get(r.key);
      if (byAddress !== undefined) {
        const why = `address: routing.addresses[${JSON.stringify(byAddress.written)}] = ${byAddress.to}`;
        return decide(input, r, byAddress.to, 'address', why);
      }
      const byDomain = domains.get(r.domainAscii);
      if (byDomain !== undefined) {
        const why = `domain: routing.domains[${JSON.stringify(byDomain.written)}] = ${byDomain.to}`;
        return decide(input, r, byDomain.to, 'domain', why);
      }
      const own = receiver.get(r.domainAscii);
      if (own !== undefined) {
        const why = `receiver: ${JSON.stringify(own)} is in nmtp.receiver.domains (this gateway's NMTP receiver)`;
        return decide(input, r, 'nmtp', 'domain', why);
      }
      if (routing.default !== 'dns') {
        return decide(
          input,
          r,
          routing.default,
          'default',
          `default: routing.default = ${routing.default}`,
        );
      }

      const name = srvName('transfer', r.domainAscii);
      let a: Awaited<ReturnType<RouterSrv>>;
      try {
        a = await srv('transfer', r.domainAscii);
      } catch (e) {
        // Unknown errors are temporary (src/core/errors/policy.ts).
        a = { status: 'temperror', detail: e instanceof Error ? e.message : String(e) };
      }
      if (a.status === 'temperror') {
        const detail = a.detail.includes(name) ? a.detail : `${name}: ${a.detail}`;
        return { transport: 'temperror', address: input, why: `dns-temperror: ${detail}` };
      }
      if (a.status === 'none') {
        const kept =
          a.ttl === undefined ? '' : ` (negative, kept ${a.ttl} s${a.cached ? ', cached' : ''})`;
        return decide(input, r, 'smtp', 'dns-none', `dns-none: no ${name} record${kept}`);
      }
      if (a.source === 'static') {
        const why = `static-srv: ${name} → ${describeTargets(a)} (routing.staticRecords.srv)`;
        return decide(input, r, 'nmtp', 'static-srv', why);
      }
      const ttl = a.ttl === undefined ? '' : ` (ttl ${a.ttl}${a.cached ? ', cached' : ''})`;
      return decide(input, r, 'nmtp', 'dns-srv', `dns-srv: ${name} → ${describeTargets(a)}${ttl}`);
    },
  };
}

function invalid(address: string, e: NmtpError, why: string): RouteDecision {
  // An NmtpError's message starts with its code; a why built otherwise gets it appended.
  const coded = why.includes(e.code) ? why : `${why} (${e.code})`;
  return { transport: 'invalid', address, err: e.code, why: coded };
}
