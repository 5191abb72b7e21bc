/**
 * The gateway's configuration: one schema (zod), its embedded defaults, and the loader
 * that reads a YAML file over them. `config/gateway.yaml` documents every option with its
 * default; test/gateway/config.test.ts proves that file and this schema agree.
 *
 * Validation happens once, at start-up (`nmtp-gateway check-config`, `start`): an error
 * names the key and the value it refused. Secrets come from the environment (`*Env` keys
 * name the variable), never from the file.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NmtpError } from '../core/errors/index.ts';

/** "host:port" with a port 0–65535 (0 = any free port, for tests). */
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):([0-9]{1,5})$/, 'expected HOST:PORT')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port above 65535');

const cidr = z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()]);
const seconds = z.number().int().nonnegative();
const transport = z.enum(['nmtp', 'smtp']);

const listener = z.strictObject({
  /** `smtp` (Postfix's smtp: transport) or `lmtp` (lmtp:, one reply per recipient). */
  protocol: z.enum(['smtp', 'lmtp']),
  listen: hostPort,
});

const smtpLimits = z.strictObject({
  /** Postfix message_size_limit (10240000): announced in SIZE, refused with 552 5.3.4. */
  messageSize: z.number().int().positive().default(10_240_000),
  /** Postfix header_size_limit (102400): the legacy header block, refused with 552 5.3.4. */
  headerSize: z.number().int().positive().default(102_400),
  /** Postfix mime_nesting_limit (100); capped by the converter's depth limit (30). */
  mimeDepth: z.number().int().positive().default(30),
  /** Postfix smtpd_recipient_limit (1000): 452 4.5.3 past it. */
  recipients: z.number().int().positive().default(1000),
  /** Postfix smtpd_client_connection_count_limit (50): 421 4.7.0 past it. */
  connectionsPerClient: z.number().int().positive().default(50),
  /** All SMTP connections at once (Postfix default_process_limit, 100). */
  connections: z.number().int().positive().default(100),
  /** Postfix smtpd_timeout (300 s): a command or a DATA line must arrive within it. */
  commandTimeout: seconds.default(300),
  /** Whole DATA phase at most (Postfix has none; smtpd_timeout per read): 0 = none. */
  dataTimeout: seconds.default(600),
  /**
   * Minimum DATA rate in octets/s, averaged after the first `commandTimeout` (Postfix
   * smtpd_min_data_rate, 500); a slower client gets 421 4.4.2 and is disconnected.
   */
  minDataRate: z.number().int().nonnegative().default(500),
});

const relay = z.strictObject({
  /** Postfix mynetworks: clients allowed to relay to any recipient. */
  networks: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
  /** Postfix relay_domains: recipient domains accepted from any client. */
  domains: z.array(z.string().min(1)).default([]),
  /** Single recipient addresses accepted from any client. */
  recipients: z.array(z.string().min(1)).default([]),
});

const smtp = z.strictObject({
  listeners: z.array(listener).default([{ protocol: 'smtp', listen: '127.0.0.1:2525' }]),
  /** Greeting and Received host name; default: gateway.hostname. */
  banner: z.string().optional(),
  /** STARTTLS certificate and key (PEM files); absent: a self-signed one made once. */
  tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
  /** Refuse MAIL before STARTTLS (Postfix smtpd_tls_security_level = encrypt). */
  requireTls: z.boolean().default(false),
  /**
   * Seconds to wait before the 220 greeting; a client that talks first gets 421 and is
   * disconnected (postscreen_greet_wait, an early-talker test). 0 = greet at once, as
   * Postfix's smtpd does. Fractions allowed (smtp-server's fixed pause was 0.1).
   */
  greetPause: z.number().nonnegative().max(60).default(0),
  /**
   * Threads that convert and sign messages (the cleanup service, src/gateway/cleanup.ts),
   * beside the event loop that serves the sessions; 0 = on the event loop. Default: the
   * CPUs less one, between 1 and 4 (`auto`, `cleanupThreads` below).
   */
  cleanupThreads: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default('auto'),
  /**
   * Seconds a cleanup thread may go without answering a job before it is stopped and
   * replaced; its jobs fail as temporary (451). Not on the event loop (cleanupThreads 0).
   */
  cleanupTimeout: z.number().positive().max(3600).default(60),
  limits: smtpLimits.default(smtpLimits.parse({})),
  relay: relay.default(relay.parse({})),
  /**
   * LMTP only: how long to wait after the message is queued for the NMTP receiver's own
   * answer, given instead of a later DSN (seconds; 0 = answer 250 once queued).
   */
  answerBudget: seconds.default(5),
});

const srvRecord = z.strictObject({
  /** The recipient domain, e.g. example.org (the record is _nmtp-transfer._tcp.<domain>). */
  domain: z.string().min(1),
  target: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  priority: z.number().int().min(0).max(65535).default(0),
  weight: z.number().int().min(0).max(65535).default(0),
});

const txtRecord = z.strictObject({ name: z.string().min(1), value: z.string() });

const routing = z.strictObject({
  /** Per-address overrides (a half-migrated domain): address → nmtp | smtp. */
  addresses: z.record(z.string(), transport).default({}),
  /** Per-domain overrides: domain → nmtp | smtp. */
  domains: z.record(z.string(), transport).default({}),
  /** Without an override: `dns` = NMTP when the domain publishes _nmtp-transfer._tcp. */
  default: z.enum(['dns', 'nmtp', 'smtp']).default('dns'),
  /** Records used before (instead of) DNS, so a site or a test runs without a DNS server. */
  staticRecords: z
    .strictObject({
      srv: z.array(srvRecord).default([]),
      txt: z.array(txtRecord).default([]),
    })
    .default({ srv: [], txt: [] }),
  /** DNS servers (HOST:PORT); empty = the system's resolvers. */
  dnsServers: z.array(hostPort).default([]),
  /** Cache bounds for SRV answers (seconds): TTL clamped to [0, maxTtl]; a miss is kept negativeTtl. */
  maxTtl: seconds.default(3600),
  negativeTtl: seconds.default(300),
});

const nmtp = z.strictObject({
  /** The gateway's own NMTP receiver (local NMTP domains, and the reverse direction later). */
  receiver: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: hostPort.default('127.0.0.1:4025'),
      /** Domains whose mailboxes this receiver holds (the demo domain by default). */
      domains: z.array(z.string().min(1)).default(['demo.nmtp.test']),
      maildir: z.string().default('.nmtp-run/gateway/maildir'),
      /** The poll window given to senders of deferred recipients (§60.10.5), seconds. */
      minPoll: z.number().int().positive().default(60),
      maxPoll: z.number().int().positive().default(3600),
      cert: z.string().optional(),
      key: z.string().optional(),
    })
    .default({
      enabled: true,
      listen: '127.0.0.1:4025',
      domains: ['demo.nmtp.test'],
      maildir: '.nmtp-run/gateway/maildir',
      minPoll: 60,
      maxPoll: 3600,
    }),
  /** CA file trusted for NMTP peers' certificates (besides the system's). */
  peerCa: z.string().optional(),
  /** Trust any peer certificate (demo and tests on loopback only). */
  insecurePeers: z.boolean().default(false),
});

/**
 * The reverse direction (NMTP in → SMTP out, docs/protocol.md §52.6 and §52.12): which NMTP
 * recipients the gateway's NMTP receiver takes for the legacy side, and how their answers
 * are given.
 */
const reverse = z.strictObject({
  /** Legacy-hosted domains (the organisation's Postfix users) the receiver accepts for. */
  domains: z.array(z.string().min(1)).default(['legacy.nmtp.test']),
  /** Single legacy-hosted addresses (a half-migrated domain: these users stay on Postfix). */
  addresses: z.array(z.string().min(1)).default([]),
  /**
   * Transitional relay: accept any recipient whose domain the router sends to SMTP (it
   * publishes no _nmtp-transfer._tcp), and deliver it to the legacy internet.
   */
  relayAny: z.boolean().default(false),
  /**
   * Seconds to wait, in the NMTP session, for the legacy side's final answer before
   * answering deferred with a cookie (0 = always a cookie).
   */
  answerBudget: seconds.default(5),
  /**
   * When a 2xx of the smarthost becomes "accepted": `dsn` = only when its success DSN
   * (NOTIFY=SUCCESS) comes back, or `confirmWindow` seconds pass without a report, so a
   * late failure still reaches the NMTP sender; `smarthost` = at once. A peer that does not
   * offer DSN is always `smarthost`.
   */
  confirm: z.enum(['dsn', 'smarthost']).default('dsn'),
  confirmWindow: seconds.default(600),
  /** Local part of the return path (at gateway.domain) that legacy DSNs come back to. */
  returnPath: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/, 'a plain local part')
    .default('nmtp-return'),
  /**
   * DKIM signature and ARC seal of every converted message (RFC 6376, RFC 8617), so a
   * DMARC-checking legacy receiver can verify what the conversion changed. Needed when
   * relaying to the legacy internet (relayAny); optional toward the organisation's Postfix.
   */
  dkim: z
    .strictObject({
      domain: z.string().min(1),
      selector: z.string().min(1),
      /** PEM private key (RSA ≥ 1024 bits, 2048 advised; or Ed25519). */
      keyFile: z.string().min(1),
      arc: z.boolean().default(true),
      /**
       * The ARC key when the DKIM key is Ed25519 (ARC sets are RSA in practice): its
       * selector and RSA PEM file. Default: the DKIM selector and key.
       */
      arcSelector: z.string().min(1).optional(),
      arcKeyFile: z.string().min(1).optional(),
    })
    .optional(),
});

const smarthost = z.strictObject({
  /** Where legacy-routed mail and DSNs go (Postfix); HOST:PORT. "" = no smarthost: MX delivery. */
  host: z.union([hostPort, z.literal('')]).default('127.0.0.1:25'),
  /** STARTTLS when offered; `require` refuses to send without it. */
  tls: z.enum(['none', 'opportunistic', 'require']).default('opportunistic'),
  /** Environment variables holding SMTP AUTH credentials, if the smarthost wants them. */
  userEnv: z.string().optional(),
  passwordEnv: z.string().optional(),
});

/** A static MX record (RFC 5321 §5.1), used instead of DNS for its domain. */
const mxRecord = z.strictObject({
  domain: z.string().min(1),
  /** The MX host: a name, or an IP address; "." is a null MX (RFC 7505: no mail). */
  exchange: z.string().min(1),
  preference: z.number().int().min(0).max(65535).default(0),
  /** This host's port (default smtpOut.port): e.g. a test's server on an ephemeral port. */
  port: z.number().int().min(1).max(65535).optional(),
});

/** SMTP out (adapters/smtp-sender): the smarthost, or each recipient domain's MX hosts. */
const smtpOut = z.strictObject({
  /** `smarthost` (smarthost.host) or `mx`: the MX hosts of each recipient domain. */
  mode: z.enum(['smarthost', 'mx']).default('smarthost'),
  /** The port MX hosts are connected on. */
  port: z.number().int().min(1).max(65535).default(25),
  /** STARTTLS toward MX hosts: opportunistic = Postfix smtp_tls_security_level = may. */
  tls: z.enum(['none', 'opportunistic', 'require']).default('opportunistic'),
  /** Host addresses tried per domain and delivery (Postfix smtp_mx_address_limit, 5). */
  maxAddresses: z.number().int().positive().default(5),
  /** Seconds what a server's EHLO offered (SMTPUTF8, 8BITMIME, DSN, SIZE) is trusted. */
  capabilityTtl: seconds.default(600),
  /** MX records used before (instead of) DNS for their domains. */
  staticMx: z.array(mxRecord).default([]),
});

const retry = z.strictObject({
  /** Postfix minimal_backoff_time (300 s): the first retry. */
  initial: seconds.default(300),
  factor: z.number().min(1).default(2),
  /** Postfix maximal_backoff_time (4000 s). */
  maxInterval: seconds.default(3600),
  /** Postfix maximal_queue_lifetime (5 days). */
  maxAge: seconds.default(5 * 86400),
});

const queue = z.strictObject({
  backend: z.enum(['embedded', 'bullmq']).default('embedded'),
  /** Embedded backend's directory. */
  dir: z.string().default('.nmtp-run/gateway/queue'),
  /** BullMQ: the environment variable holding the Redis URL (redis://host:port/db). */
  redisUrlEnv: z.string().default('NMTP_GATEWAY_REDIS_URL'),
  /** BullMQ: key prefix shared by the processes of one cluster. */
  prefix: z.string().default('nmtp-gateway'),
  /** Entries worked on at once in one process (qmgr's active window). */
  concurrency: z.number().int().positive().default(100),
  /**
   * Postfix default_destination_concurrency_limit (20): deliveries to one destination at
   * once, and so the NMTP sessions (one transfer each at a time) or SMTP connections kept
   * to one server.
   */
  perDestination: z.number().int().positive().default(20),
  retry: retry.default(retry.parse({})),
  /** Seconds a finished entry stays visible to `queue show`. */
  keepDone: seconds.default(86400),
});

const dsn = z.strictObject({
  /** Postfix delay_warning_time: a "delayed" DSN once, this long after arrival (0 = never). */
  delayWarning: seconds.default(4 * 3600),
  /** Clients whose return paths are believed (backscatter rule, §52.5), besides relay.networks. */
  trustedNetworks: z.array(cidr).default([]),
  /** Send DSNs for mail from relay.networks clients (they are the organisation's own). */
  trustRelayNetworks: z.boolean().default(true),
});

const admin = z.strictObject({
  /** /metrics, /healthz, /readyz; loopback by default. Empty string = no admin listener. */
  listen: z.union([hostPort, z.literal('')]).default('127.0.0.1:9465'),
});

const log = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** `json` (one line per event), `pretty` (for a terminal), `auto` (pretty on a terminal). */
  format: z.enum(['json', 'pretty', 'auto']).default('auto'),
});

export const SERVICES = ['smtp-in', 'qmgr', 'nmtp-receiver', 'admin'] as const;

/** `gateway.heapGrowthPercent`'s default; `nmtp serve` uses it too (src/cli/runtime.ts). */
export const HEAP_GROWTH_PERCENT = 200;

const gateway = z.strictObject({
  /** Host name: SMTP greeting, Reporting-MTA of DSNs, the NMTP server name. */
  hostname: z.string().min(1).default('localhost'),
  /** The gateway's signing domain (d=) and Legacy-Gateway value. */
  domain: z.string().min(1).default('gateway.nmtp.test'),
  selector: z.string().min(1).default('gw1'),
  /** PKCS#8 PEM ed25519 key; absent: a demo key made once under stateDir. */
  keyFile: z.string().optional(),
  /** Where generated demo material (key, certificate) is kept. */
  stateDir: z.string().default('.nmtp-run/gateway'),
  /** Which services this process runs; all by default. */
  services: z.array(z.enum(SERVICES)).default([...SERVICES]),
  /** V8's --heap-growing-percent (src/cli/runtime.ts says why); 0 = V8's own choice. */
  heapGrowthPercent: z.number().int().min(0).max(1000).default(HEAP_GROWTH_PERCENT),
});

export const GatewayConfigSchema = z.strictObject({
  gateway: gateway.default(gateway.parse({})),
  smtp: smtp.default(smtp.parse({})),
  routing: routing.default(routing.parse({})),
  nmtp: nmtp.default(nmtp.parse({})),
  reverse: reverse.default(reverse.parse({})),
  smarthost: smarthost.default(smarthost.parse({})),
  smtpOut: smtpOut.default(smtpOut.parse({})),
  queue: queue.default(queue.parse({})),
  dsn: dsn.default(dsn.parse({})),
  admin: admin.default(admin.parse({})),
  log: log.default(log.parse({})),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

/** The embedded defaults: what `npm start` runs with no file. */
export const DEFAULT_CONFIG: GatewayConfig = GatewayConfigSchema.parse({});

/** Validates a parsed document; the error names every bad key and the value given. */
export function validateConfig(doc: unknown, source = 'config'): GatewayConfig {
  const r = GatewayConfigSchema.safeParse(doc ?? {});
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.map(String).join('.') || '(top level)';
    const given = valueAt(doc, i.path);
    const shown = given === undefined ? '' : ` (given: ${JSON.stringify(given)})`;
    return `${source}: ${key}: ${i.message}${shown}`;
  });
  throw new NmtpError('NMTP_ERR_GW_CONFIG_INVALID', lines.join('\n'));
}

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = doc;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** Reads and validates a YAML config file; `undefined` = the embedded defaults. */
export function loadConfig(file: string | undefined): GatewayConfig {
  if (file === undefined) return DEFAULT_CONFIG;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new NmtpError('NMTP_ERR_GW_CONFIG_INVALID', `${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new NmtpError('NMTP_ERR_GW_CONFIG_INVALID', `${file}: not YAML: ${(e as Error).message}`);
  }
  return validateConfig(doc, file);
}

/** `smtp.cleanupThreads` as a number: `auto` is the CPUs less one, between 1 and 4. */
export function cleanupThreads(v: number | 'auto', cpus: number): number {
  return v === 'auto' ? Math.min(4, Math.max(1, cpus - 1)) : v;
}
