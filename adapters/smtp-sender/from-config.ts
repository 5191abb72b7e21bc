/**
 * The SMTP deliverer's options from the gateway configuration (`smarthost`, `smtpOut`,
 * `routing.dnsServers`, `gateway.hostname`), so the composition root (src/cli/gateway-start)
 * has one call to make. MX delivery is chosen by `smtpOut.mode: mx` or an empty
 * `smarthost.host`.
 */
import type { GatewayConfig } from '../../src/gateway/config.ts';
import { dnsMxResolver, type MxResolver } from './mx.ts';
import type { SmtpDelivererOptions } from './smtp-deliver.ts';

export type SmtpOutConfig = Pick<GatewayConfig, 'smarthost' | 'smtpOut'> & {
  readonly gateway: Pick<GatewayConfig['gateway'], 'hostname'>;
  readonly routing: Pick<GatewayConfig['routing'], 'dnsServers'>;
  readonly queue: Pick<GatewayConfig['queue'], 'perDestination'>;
};

/** Which way legacy mail leaves: the smarthost, or each recipient domain's MX hosts. */
export function smtpOutMode(c: Pick<GatewayConfig, 'smarthost' | 'smtpOut'>): 'smarthost' | 'mx' {
  return c.smtpOut.mode === 'mx' || c.smarthost.host === '' ? 'mx' : 'smarthost';
}

export interface FromConfigOptions {
  /** Where `smarthost.userEnv` / `passwordEnv` are read (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** MX lookups instead of DNS to routing.dnsServers with smtpOut.staticMx (a test's). */
  readonly resolver?: MxResolver;
}

export function smtpDelivererOptions(
  c: SmtpOutConfig,
  o: FromConfigOptions = {},
): SmtpDelivererOptions {
  const env = o.env ?? process.env;
  const common = {
    name: c.gateway.hostname,
    capabilityTtl: c.smtpOut.capabilityTtl * 1000,
    // As many connections to a server as the queue lets deliveries run to one destination
    // (Postfix: up to default_destination_concurrency_limit smtp processes to the relayhost),
    // so that no delivery the queue started waits for a connection.
    pool: { maxConnections: c.queue.perDestination },
  };
  if (smtpOutMode(c) === 'mx') {
    return {
      ...common,
      mode: 'mx',
      tls: c.smtpOut.tls,
      port: c.smtpOut.port,
      maxAddresses: c.smtpOut.maxAddresses,
      resolver:
        o.resolver ??
        dnsMxResolver({
          servers: c.routing.dnsServers,
          staticMx: c.smtpOut.staticMx,
          self: c.gateway.hostname,
        }),
    };
  }
  const s = c.smarthost.host;
  const i = s.lastIndexOf(':');
  const { userEnv, passwordEnv } = c.smarthost;
  return {
    ...common,
    host: s.slice(0, i).replace(/^\[|\]$/g, ''),
    port: Number(s.slice(i + 1)),
    tls: c.smarthost.tls,
    ...(userEnv !== undefined && passwordEnv !== undefined
      ? { auth: { user: env[userEnv] ?? '', pass: env[passwordEnv] ?? '' } }
      : {}),
  };
}
