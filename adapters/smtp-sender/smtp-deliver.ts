/**
 * The gateway's SMTP client ("smtp" in Postfix's split): one SMTP transaction per queue job
 * (per recipient domain toward MX hosts), over a small pool of nodemailer SMTPConnections per
 * server (./pool.ts: connect, STARTTLS per `tls`, AUTH when configured; `pool` limits as
 * nodemailer's pooled transport had them), the queue's legacy message handed to
 * `SMTPConnection.send` as it is, with the envelope given explicitly: one Buffer read from
 * the queue's file (its size is known), or a stream above 1 MiB. No Mail object, MimeNode or
 * per-message stream pipeline is built (sendMail's `raw` did, at 16–19 % of the gateway's
 * main thread in the reverse bench); SMTPConnection writes SIZE, BODY=8BITMIME, SMTPUTF8 and
 * the DSN parameters and dot-stuffs the data exactly as it did under sendMail.
 *
 *   - Where to: the smarthost (`mode: 'smarthost'`, the default: Postfix beside the
 *     gateway), or each recipient domain's MX hosts (`mode: 'mx'`, config `smtpOut.mode: mx`
 *     or `smarthost.host: ""`): RFC 5321 §5.1 order, the implicit MX, null MX (RFC 7505)
 *     refused 556 5.1.10, as adapters/smtp-sender/mx.ts decides. A request whose recipients
 *     span several domains is split per domain and the answers merged (the queue sends one
 *     domain per request in this mode, each inside its domain's limit: src/queue/work.ts). The next MX host
 *     (address) is tried when one answered nothing about the recipients (connection
 *     refused, a 4xx/5xx greeting, TLS trouble, a lost connection), at most `maxAddresses`
 *     per domain (Postfix smtp_mx_address_limit); STARTTLS toward MX hosts is opportunistic
 *     by default (Postfix `may`). One pool per host address.
 *   - Per-recipient answers: the RCPT reply of each refused recipient, the final reply to
 *     the message for the accepted ones, each with its enhanced code (RFC 2034 §4: the
 *     first token of the text); a 2xx says whether the server offered DSN (`dsn`), so
 *     whether NOTIFY=SUCCESS reached it and a success DSN may come back. A refusal of MAIL
 *     FROM or of the message answers every recipient of the transaction. A connection that
 *     fails first (refused, timeout, STARTTLS or AUTH trouble) answers none: `failure`,
 *     which the queue treats as temporary.
 *   - The reverse-path is the request's: '' is the null sender, `MAIL FROM:<>` (DSNs).
 *   - RFC 3461 parameters travel on: RET and ENVID from the entry's meta, NOTIFY and ORCPT
 *     from each recipient's. nodemailer takes one NOTIFY/ORCPT per transaction, so
 *     recipients with different ones go in separate transactions over the same pool; it
 *     writes them only when the server's EHLO offered DSN (smtp-connection `_setEnvelope`
 *     and `_getDsnRcptToArgs` check `_supportedExtensions.includes('DSN')`).
 *   - SMTPUTF8 (RFC 6531 §3.2): a message that needs it (a non-ASCII envelope address, or
 *     UTF-8 header fields of a message received with SMTPUTF8) goes only to a server that
 *     offers it; otherwise its recipients are refused 553 5.6.7 (address) / 554 5.6.9
 *     (header), NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED, as Postfix does. nodemailer itself would
 *     send the UTF-8 octets regardless, so the server's EHLO is learnt first.
 *   - BODY=8BITMIME when the entry says the message is 8bit (`use8BitMime`), SIZE from the
 *     file.
 *   - Capabilities known ahead: `capabilities(destination?)` is what the smarthost's (or the
 *     destination domain's MX host's) last EHLO offered, while `capabilityTtl` lasts;
 *     `probe(destination?)` connects, EHLOs and QUITs when that is not known. The NMTP side
 *     asks them at RCPT time (a non-ASCII address toward a server without SMTPUTF8, 8-bit
 *     or 7-bit conversion).
 *
 * The message bytes reach the wire unchanged apart from SMTP's dot-stuffing:
 * SMTPConnection's DataStream only rewrites bare CR and LF, which a queued message never
 * holds (smtp-in refuses them, the DSN builder writes none).
 */
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import MimeNode from 'nodemailer/lib/mime-node';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { leadingEnhancedStatus, parseNotify } from '../../src/core/delivery/index.ts';
import type {
  Json,
  SmtpDeliverFn,
  SmtpDeliverOutcome,
  SmtpDeliverRequest,
} from '../../src/queue/port.ts';
import { addressLiteral, mxDomain, type MxResolver } from './mx.ts';
import { smtpPool, type PoolMessage, type SmtpPool } from './pool.ts';

type Tls = 'none' | 'opportunistic' | 'require';

interface CommonOptions {
  /**
   * STARTTLS: `none` never, `opportunistic` when offered (no certificate check, as Postfix's
   * `may`: a failed check would otherwise stop mail that plaintext would carry), `require`
   * refuses to send without it (certificate checked unless `tlsOptions` say otherwise).
   */
  readonly tls: Tls;
  /** EHLO name: the gateway's host name. */
  readonly name: string;
  /** Pool per server: connections at once (default 5), messages per connection (100), idle ms (4 min). */
  readonly pool?: {
    readonly maxConnections?: number;
    readonly maxMessages?: number;
    readonly idleTimeout?: number;
  };
  /** Extra options for tls.connect (a private CA, servername …). */
  readonly tlsOptions?: ConnectionOptions;
  /** Milliseconds: connect, greeting, idle socket (nodemailer's defaults 2 min, 30 s, 10 min). */
  readonly timeouts?: {
    readonly connection?: number;
    readonly greeting?: number;
    readonly socket?: number;
  };
  /** How long what a server's EHLO offered is trusted, ms (default 10 minutes). */
  readonly capabilityTtl?: number;
  /** Unix milliseconds (default Date.now). */
  readonly now?: () => number;
}

/** Every message to one smarthost (the default). */
export interface SmarthostDelivererOptions extends CommonOptions {
  readonly mode?: 'smarthost';
  readonly host: string;
  readonly port: number;
  readonly auth?: { readonly user: string; readonly pass: string };
}

/** Each recipient domain's MX hosts (RFC 5321 §5.1). */
export interface MxDelivererOptions extends CommonOptions {
  readonly mode: 'mx';
  /** MX and address lookups (adapters/smtp-sender/mx.ts `dnsMxResolver`). */
  readonly resolver: MxResolver;
  /** The port MX hosts are connected on (default 25); a static record may name its own. */
  readonly port?: number;
  /** Host addresses tried per domain and delivery (default 5, Postfix smtp_mx_address_limit). */
  readonly maxAddresses?: number;
  /** Servers whose pools are kept (least recently used closed past it; default 256). */
  readonly maxPools?: number;
}

export type SmtpDelivererOptions = SmarthostDelivererOptions | MxDelivererOptions;

/** What a server's EHLO offered, as far as it changes what the gateway sends. */
export interface SmtpCapabilities {
  readonly smtputf8: boolean;
  readonly eightBitMime: boolean;
  readonly dsn: boolean;
  /** SIZE's value when offered (0: offered without a fixed limit); undefined: not offered. */
  readonly size?: number;
}

export type SmtpDeliverer = SmtpDeliverFn & {
  /**
   * What the server mail for `destination` goes to offered in its last EHLO, while
   * `capabilityTtl` lasts; undefined when not known (never connected, or too long ago).
   * Smarthost mode: the smarthost, whatever `destination`. MX mode: `destination` is a
   * recipient domain (or address), answered by the MX host that last served or was probed
   * for it; undefined without a destination.
   */
  capabilities(destination?: string): SmtpCapabilities | undefined;
  /**
   * As capabilities(), connecting (EHLO, then QUIT) when not known; concurrent probes of
   * one server share one connection. MX mode: the first MX host (address) in order that
   * answers EHLO. Undefined when no server could be reached (or, MX mode, the domain takes
   * no mail: null MX, no such domain).
   */
  probe(destination?: string): Promise<SmtpCapabilities | undefined>;
  /** Closes the pools' idle connections; a transaction in progress finishes first. */
  close(): Promise<void>;
};

type Answer = SmtpDeliverOutcome['recipients'][number];

/** A reply as nodemailer hands it over: "550-5.1.1 first\n550 5.1.1 last". */
interface ParsedReply {
  readonly code: number;
  readonly enhanced?: string;
  readonly text: string;
}

/** The nodemailer error fields this adapter reads. */
interface MailerError extends Error {
  code?: string;
  command?: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
  rejectedErrors?: MailerError[];
}

interface SendInfo {
  accepted: string[];
  rejected: string[];
  rejectedErrors?: MailerError[];
  response: string;
  ehlo?: string[];
}

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
const ERR_SMTPUTF8 = 'NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED';
/** How far into a message its header block is looked for (smtp-in's limit is far below). */
const HEADER_SCAN = 1 << 20;
/** Messages above this size are streamed to the server; smaller ones go as one Buffer. */
const STREAM_OVER = 1 << 20;

/** "550 5.1.1 text": code, the enhanced code when its class agrees, the rest as text. */
export function parseReply(response: string): ParsedReply | undefined {
  const lines = response.split(/\r?\n/).filter((l) => l.trim() !== '');
  const m = /^([1-5]\d\d)(?:[ -]|$)/.exec(lines[0] ?? '');
  if (m === null) return undefined;
  const code = Number(m[1]);
  const bodies = lines.map((l) => l.replace(/^\d{3}(?:[ -]|$)/, ''));
  const enhanced = leadingEnhancedStatus(bodies[0] ?? '');
  // RFC 3463 §3.1: the class of the enhanced code must agree with the reply's.
  const agrees = enhanced !== undefined && enhanced[0] === String(code)[0];
  const text = bodies
    .map((b) =>
      agrees && b.trimStart().startsWith(enhanced) ? b.trimStart().slice(enhanced.length) : b,
    )
    .map((b) => b.trim())
    .filter((b) => b !== '')
    .join(' ');
  return agrees ? { code, enhanced, text } : { code, text };
}

/** What an EHLO reply's keyword lines (without the reply code) offer. */
export function capabilitiesOf(ehloLines: readonly string[]): SmtpCapabilities {
  const lines = ehloLines.map((l) => l.trim());
  const has = (re: RegExp): boolean => lines.some((l) => re.test(l));
  // RFC 1870 §4: "SIZE" with an optional maximum; 0 (or none) declares no fixed maximum.
  const size = lines.map((l) => /^SIZE(?:[ \t]+(\d+))?$/i.exec(l)).find((m) => m !== null);
  return {
    smtputf8: has(/^SMTPUTF8\b/i),
    eightBitMime: has(/^8BITMIME\b/i),
    dsn: has(/^DSN\b/i),
    ...(size === undefined ? {} : { size: Number(size?.[1] ?? 0) }),
  };
}

/**
 * An envelope address as nodemailer's MimeNode writes it (it reparses and may re-encode):
 * what sendMail wrote, kept now that SMTPConnection gets the address as given.
 */
function wireAddress(address: string): string | undefined {
  const hit = wireCache.get(address);
  if (hit !== undefined) return hit === false ? undefined : hit;
  // setEnvelope replaces the node's envelope and is synchronous: one node serves every call
  // (a new one per address cost random bytes for its boundary, a sizeable part of smtp-out).
  envelopeNode.setEnvelope({ from: false, to: [address] });
  const to = envelopeNode.getEnvelope().to;
  const wire = to.length === 1 ? to[0] : undefined;
  if (wireCache.size >= WIRE_CACHE) wireCache.delete(wireCache.keys().next().value!);
  wireCache.set(address, wire ?? false);
  return wire;
}
const envelopeNode = new MimeNode('text/plain');
/** Addresses seen lately and how they go out (false: refused); oldest dropped first. */
const wireCache = new Map<string, string | false>();
const WIRE_CACHE = 4096;

function str(j: Json | undefined, key: string): string | undefined {
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return undefined;
  const v = (j as Record<string, Json | undefined>)[key];
  return typeof v === 'string' ? v : undefined;
}

function flag(j: Json | undefined, key: string): boolean {
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return false;
  return (j as Record<string, Json | undefined>)[key] === true;
}

/** NOTIFY as the RFC spells it, or nothing when the value is not one. */
function notifyOf(meta: Json | undefined): string | undefined {
  const v = str(meta, 'notify');
  if (v === undefined) return undefined;
  try {
    const n = parseNotify(v);
    return n === 'NEVER' ? 'NEVER' : [...n].join(',');
  } catch {
    return undefined;
  }
}

/**
 * ORCPT as "type;address" (nodemailer xtext-encodes it). RFC 6533 §3: a non-ASCII address
 * has the "utf-8" type and is written in utf-8-addr-xtext, non-ASCII characters (and "+",
 * "=", "\\", which QCHAR excludes) as \x{HEX}, so nothing is left for xtext to encode.
 */
function orcptOf(meta: Json | undefined): string | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  const o = (meta as Record<string, Json | undefined>)['orcpt'];
  const type = str(o, 'type');
  const address = str(o, 'address');
  if (type === undefined || address === undefined || !/^[A-Za-z0-9-]+$/.test(type))
    return undefined;
  const t = type.toLowerCase();
  if (t === 'utf-8' || (t === 'rfc822' && NON_ASCII.test(address))) {
    const x = [...address]
      .map((c) => {
        const cp = c.codePointAt(0)!;
        return cp > 0x7e || cp < 0x21 || c === '+' || c === '=' || c === '\\'
          ? `\\x{${cp.toString(16).toUpperCase()}}`
          : c;
      })
      .join('');
    return `utf-8;${x}`;
  }
  return `${t};${address}`;
}

/** Whether the header block of the message holds any octet above 0x7f. */
async function headerIsUtf8(pieces: AsyncIterable<Uint8Array>): Promise<boolean> {
  let seen = 0;
  // The last three octets of the previous piece, so a CRLFCRLF split across pieces is found.
  let tail = Buffer.alloc(0);
  for await (const p of pieces) {
    const b = Buffer.concat([tail, Buffer.from(p.buffer, p.byteOffset, p.length)]);
    const end = b.indexOf('\r\n\r\n');
    const head = end < 0 ? b : b.subarray(0, end);
    if (head.some((x) => x > 0x7f)) return true;
    if (end >= 0) return false;
    seen += p.length;
    if (seen >= HEADER_SCAN) return false;
    tail = Buffer.from(b.subarray(Math.max(0, b.length - 3)));
  }
  return false;
}

/** The message in one Buffer: its pieces copied into a buffer of its known size. */
async function wholeMessage(source: {
  size: number;
  pieces(view: 'full'): AsyncIterable<Uint8Array>;
}): Promise<Buffer> {
  const out = Buffer.allocUnsafe(source.size);
  let n = 0;
  // Should the file hold more than its recorded size, nothing is cut off.
  const more: Buffer[] = [];
  for await (const p of source.pieces('full')) {
    if (more.length === 0 && n + p.length <= out.length) {
      out.set(p, n);
      n += p.length;
    } else more.push(Buffer.from(p));
  }
  return more.length === 0 ? out.subarray(0, n) : Buffer.concat([out.subarray(0, n), ...more]);
}

/** A server the deliverer sends to: its pool and what its EHLO offered. */
interface Hop {
  readonly key: string;
  /** How replies and failures name it: the smarthost's host, or "mx.example[192.0.2.1]:25". */
  readonly label: string;
  /** The server as each of its answers names it (`relay`): "host:port" or "name[addr]:port". */
  readonly relay: string;
  readonly connection: SMTPConnection.Options;
  readonly pool: SmtpPool;
  known?: { readonly caps: SmtpCapabilities; readonly at: number };
  probing?: Promise<SmtpCapabilities | undefined>;
  /** Deliveries using it now (a pool in use is not closed to make room). */
  busy: number;
}

/** What one request is, shared by its per-server attempts. */
interface Job {
  readonly req: SmtpDeliverRequest;
  readonly from: string;
  readonly wireOf: ReadonlyMap<string, string>;
  readonly byWire: ReadonlyMap<string, readonly string[]>;
  /** Whether the header block holds UTF-8 (read once, when first needed). */
  readonly utf8Header: () => Promise<boolean>;
}

interface Attempt {
  readonly answers: readonly Answer[];
  readonly failure?: string;
}

/** The domain a destination (a domain or an address) is delivered by: A-labels, lower case. */
function domainKey(destination: string): string {
  const d = destination.slice(destination.lastIndexOf('@') + 1);
  return addressLiteral(d) !== undefined ? d : mxDomain(d);
}

export function smtpDeliverer(o: SmtpDelivererOptions): SmtpDeliverer {
  const now = o.now ?? Date.now;
  const ttl = o.capabilityTtl ?? 600_000;
  const hops = new Map<string, Hop>();
  const maxPools = o.mode === 'mx' ? (o.maxPools ?? 256) : 1;

  function makeHop(
    key: string,
    label: string,
    host: string,
    port: number,
    servername?: string,
  ): Hop {
    const connection = {
      host,
      port,
      secure: false,
      name: o.name,
      // The name the certificate is checked against (SNI) when `host` is an MX's address.
      ...(servername === undefined || isIP(servername) !== 0 ? {} : { servername }),
      ignoreTLS: o.tls === 'none',
      requireTLS: o.tls === 'require',
      opportunisticTLS: o.tls === 'opportunistic',
      tls: { rejectUnauthorized: o.tls === 'require', ...o.tlsOptions },
      ...(o.timeouts?.connection === undefined ? {} : { connectionTimeout: o.timeouts.connection }),
      ...(o.timeouts?.greeting === undefined ? {} : { greetingTimeout: o.timeouts.greeting }),
      ...(o.timeouts?.socket === undefined ? {} : { socketTimeout: o.timeouts.socket }),
      logger: false,
    } as const;
    const auth = o.mode === 'mx' ? undefined : o.auth;
    const pool = smtpPool({
      connection,
      ...(auth === undefined ? {} : { auth }),
      ...(o.pool?.maxConnections === undefined ? {} : { maxConnections: o.pool.maxConnections }),
      ...(o.pool?.maxMessages === undefined ? {} : { maxMessages: o.pool.maxMessages }),
      ...(o.pool?.idleTimeout === undefined ? {} : { idleTimeout: o.pool.idleTimeout }),
    });
    const relay = label.includes('[') ? label : `${host}:${port}`;
    return { key, label, relay, connection, pool, busy: 0 };
  }

  /** The pool of one server, made on first use; the least recently used idle one goes. */
  function hopFor(host: string, port: number, servername?: string): Hop {
    const key = `${host}:${port}/${servername ?? ''}`;
    const hit = hops.get(key);
    if (hit !== undefined) {
      hops.delete(key);
      hops.set(key, hit);
      return hit;
    }
    const name = servername === undefined || servername === host ? '' : servername;
    const hop = makeHop(key, `${name}[${host}]:${port}`, host, port, servername);
    for (const [k, h] of hops) {
      if (hops.size < maxPools) break;
      if (h.busy > 0) continue;
      h.pool.close();
      hops.delete(k);
    }
    hops.set(key, hop);
    return hop;
  }

  const smarthost = o.mode === 'mx' ? undefined : makeHop('smarthost', o.host, o.host, o.port);
  if (smarthost !== undefined) hops.set(smarthost.key, smarthost);

  const fresh = (hop: Hop | undefined): SmtpCapabilities | undefined =>
    hop?.known !== undefined && now() - hop.known.at < ttl ? hop.known.caps : undefined;

  /** What a server offers: from a recent transaction, else from a fresh EHLO. */
  function probeHop(hop: Hop): Promise<SmtpCapabilities | undefined> {
    const known = fresh(hop);
    if (known !== undefined) return Promise.resolve(known);
    hop.probing ??= new Promise<SmtpCapabilities | undefined>((resolve) => {
      const probe = new SMTPConnection(hop.connection);
      // Unknown whenever the probe does not get as far as the EHLO reply (a second settle
      // is a no-op); an 'error' without a listener would end the process.
      probe.on('error', () => resolve(undefined));
      probe.once('end', () => resolve(undefined));
      probe.connect(() => {
        const reply = probe.lastServerResponse;
        // After a STARTTLS that failed, the last reply is not the EHLO: unknown.
        resolve(
          typeof reply === 'string' && /^250[ -]/.test(reply)
            ? capabilitiesOf(reply.split(/\r?\n/).map((l) => l.replace(/^\d{3}[ -]?/, '')))
            : undefined,
        );
        probe.quit();
      });
    })
      .then((caps) => {
        if (caps !== undefined) hop.known = { caps, at: now() };
        return caps;
      })
      .finally(() => {
        hop.probing = undefined;
      });
    return hop.probing;
  }

  async function sendOne(
    hop: Hop,
    from: string,
    to: readonly string[],
    dsn: { ret?: string; envid?: string; notify?: string; orcpt?: string },
    eightBit: boolean,
    source: { size: number; pieces(view: 'full'): AsyncIterable<Uint8Array> },
  ): Promise<SendInfo> {
    async function* copies(): AsyncGenerator<Buffer> {
      // A piece may be reused once the next is asked for; the stream may hold several.
      for await (const p of source.pieces('full')) yield Buffer.from(p);
    }
    // Read before a connection is taken, so none waits on the message file.
    const message: PoolMessage =
      source.size > STREAM_OVER
        ? () => Readable.from(copies(), { objectMode: false })
        : await wholeMessage(source);
    const hasDsn = Object.values(dsn).some((v) => v !== undefined);
    const info = (await hop.pool.send(
      {
        from: from === '' ? false : from,
        to: [...to],
        size: source.size,
        use8BitMime: eightBit,
        ...(hasDsn ? { dsn } : {}),
      },
      message,
    )) as SendInfo;
    if (info.ehlo !== undefined) hop.known = { caps: capabilitiesOf(info.ehlo), at: now() };
    return info;
  }

  /** One server's transactions for `rcpts` (the job's recipients of one destination). */
  async function viaHop(hop: Hop, job: Job, rcpts: readonly string[]): Promise<Attempt> {
    hop.busy++;
    try {
      const a = await transactions(hop, job, rcpts);
      // Which server answered: the log's relay= and a DSN's Remote-MTA (src/gateway/dsn.ts).
      return { ...a, answers: a.answers.map((x) => ({ ...x, relay: hop.relay })) };
    } finally {
      hop.busy--;
    }
  }

  async function transactions(hop: Hop, job: Job, rcpts: readonly string[]): Promise<Attempt> {
    const { req, from, wireOf, byWire } = job;
    const answers = new Map<string, Answer>();
    const what = smarthost === hop ? 'the smarthost' : `host ${hop.label}`;

    // RFC 6531 §3.2: without SMTPUTF8 offered, UTF-8 addresses and header fields are not sent.
    const utf8Address = NON_ASCII.test(from) || rcpts.some((r) => NON_ASCII.test(wireOf.get(r)!));
    const utf8Header = !utf8Address && flag(req.meta, 'smtputf8') && (await job.utf8Header());
    if (utf8Address || utf8Header) {
      const caps = await probeHop(hop);
      if (caps === undefined) {
        return { answers: [], failure: `could not learn whether ${what} offers SMTPUTF8` };
      }
      if (!caps.smtputf8) {
        const host = smarthost === hop ? (o as SmarthostDelivererOptions).host : hop.label;
        return {
          answers: rcpts.map((r) =>
            utf8Address
              ? {
                  rcpt: r,
                  code: 553,
                  enhanced: '5.6.7',
                  text: `SMTPUTF8 is required, but was not offered by host ${host} (${ERR_SMTPUTF8})`,
                }
              : {
                  rcpt: r,
                  code: 554,
                  enhanced: '5.6.9',
                  text: `SMTPUTF8 is required for UTF-8 header fields, but was not offered by host ${host} (${ERR_SMTPUTF8})`,
                },
          ),
        };
      }
    }

    // One transaction per distinct NOTIFY/ORCPT (nodemailer sends one for all recipients).
    const ret = str(req.meta, 'ret');
    const envid = str(req.meta, 'envid');
    const groups = new Map<string, { notify?: string; orcpt?: string; rcpts: string[] }>();
    req.recipients.forEach((rcpt, i) => {
      if (!rcpts.includes(rcpt)) return;
      const m = req.recipientMeta[i];
      const notify = notifyOf(m);
      const orcpt = orcptOf(m);
      const key = JSON.stringify([notify ?? null, orcpt ?? null]);
      const g = groups.get(key) ?? {
        ...(notify === undefined ? {} : { notify }),
        ...(orcpt === undefined ? {} : { orcpt }),
        rcpts: [],
      };
      g.rcpts.push(rcpt);
      groups.set(key, g);
    });

    const failures: string[] = [];
    await Promise.all(
      [...groups.values()].map(async (g) => {
        const wires = [...new Set(g.rcpts.map((r) => wireOf.get(r)!))];
        const answerWire = (wire: string, reply: ParsedReply, dsn?: boolean): void => {
          for (const r of byWire.get(wire.toLowerCase()) ?? []) {
            if (g.rcpts.includes(r)) {
              answers.set(r, { rcpt: r, ...reply, ...(dsn === undefined ? {} : { dsn }) });
            }
          }
        };
        const answerAll = (reply: ParsedReply): void => {
          for (const r of g.rcpts) answers.set(r, { rcpt: r, ...reply });
        };
        try {
          const info = await sendOne(
            hop,
            from,
            wires,
            {
              ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}),
              ...(envid === undefined ? {} : { envid }),
              ...(g.notify === undefined ? {} : { notify: g.notify }),
              ...(g.orcpt === undefined ? {} : { orcpt: g.orcpt }),
            },
            flag(req.meta, 'eightBit'),
            req.message,
          );
          const final = parseReply(info.response);
          for (const e of info.rejectedErrors ?? []) {
            const reply = e.response === undefined ? undefined : parseReply(e.response);
            if (e.recipient !== undefined && reply !== undefined) answerWire(e.recipient, reply);
          }
          // Whether NOTIFY/RET/ENVID went out: the EHLO of the connection that carried them.
          const dsn = (info.ehlo === undefined ? fresh(hop) : capabilitiesOf(info.ehlo))?.dsn;
          if (final !== undefined) {
            for (const w of info.accepted) {
              answerWire(w, final, Math.floor(final.code / 100) === 2 ? dsn : undefined);
            }
          }
        } catch (err) {
          const e = err as MailerError;
          const reply = e.response === undefined ? undefined : parseReply(e.response);
          if (e.code === 'EENVELOPE' && e.rejectedErrors !== undefined && e.command === 'RCPT TO') {
            // Every recipient refused: each has its own RCPT reply.
            for (const x of e.rejectedErrors) {
              const rr = x.response === undefined ? undefined : parseReply(x.response);
              if (x.recipient !== undefined && rr !== undefined) answerWire(x.recipient, rr);
            }
          } else if (
            (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') &&
            reply !== undefined &&
            (e.command === 'MAIL FROM' || e.command === 'DATA')
          ) {
            // MAIL FROM refused, DATA refused, or the message refused after the final ".":
            // the answer of the whole transaction is every recipient's.
            answerAll(reply);
          } else {
            // Nothing was said about the recipients: connection refused or lost, TLS, AUTH,
            // a timeout, the message file — temporary, the queue retries (or the next MX).
            failures.push(`${e.code ?? 'error'}: ${e.message}`.replace(/[\r\n]+/g, ' '));
          }
        }
      }),
    );
    return {
      answers: rcpts.flatMap((r) => {
        const a = answers.get(r);
        return a === undefined ? [] : [a];
      }),
      ...(failures.length === 0 ? {} : { failure: failures.join('; ') }),
    };
  }

  // MX mode: which server last served (or was probed for) a domain, for capabilities().
  const served = new Map<string, { readonly key: string; readonly at: number }>();
  const MAX_SERVED = 10_000;
  const remember = (domain: string, hop: Hop): void => {
    served.delete(domain);
    if (served.size >= MAX_SERVED) served.delete(served.keys().next().value!);
    served.set(domain, { key: hop.key, at: now() });
  };

  /**
   * The hosts of a domain in RFC 5321 §5.1 order, each address in turn (at most
   * `maxAddresses`), until `attempt` gives a result; or the answer for every recipient when
   * the domain takes no mail.
   */
  async function eachMx<T>(
    domain: string,
    attempt: (hop: Hop) => Promise<{ done: T } | { failure: string }>,
  ): Promise<
    | { status: 'done'; value: T }
    | { status: 'refused'; code: number; enhanced: string; text: string }
    | { status: 'failed'; failure: string }
  > {
    if (o.mode !== 'mx') throw new Error('eachMx is for the MX mode');
    const resolver = o.resolver;
    const maxAddresses = o.maxAddresses ?? 5;
    const route = await resolver.route(domain);
    switch (route.status) {
      case 'null':
        // RFC 7505 §4.1: "fail ... with a 556 reply code ... and an enhanced status code of 5.1.10".
        return {
          status: 'refused',
          code: 556,
          enhanced: '5.1.10',
          text: `Recipient address rejected: ${domain} accepts no mail (null MX) (NMTP_ERR_GW_NULL_MX)`,
        };
      case 'nxdomain':
        return {
          status: 'refused',
          code: 550,
          enhanced: '5.4.4',
          text: `Host or domain name not found: ${route.detail} (NMTP_ERR_GW_MX_NOT_FOUND)`,
        };
      case 'loop':
        return {
          status: 'refused',
          code: 554,
          enhanced: '5.4.6',
          text: `mail for ${domain} loops back to myself (NMTP_ERR_GW_MX_LOOP)`,
        };
      case 'temperror':
        return { status: 'failed', failure: route.detail };
      case 'ok':
        break;
    }
    const failures: string[] = [];
    let tried = 0;
    for (const h of route.hosts) {
      if (tried >= maxAddresses) break;
      const a = await resolver.addresses(h.name);
      if (a.status !== 'ok') {
        // The implicit MX without an address: the domain has no mail server at all.
        if (h.implicit === true && a.status === 'none') {
          return {
            status: 'refused',
            code: 550,
            enhanced: '5.4.4',
            text: `Host or domain name not found: ${a.detail} (NMTP_ERR_GW_MX_NOT_FOUND)`,
          };
        }
        failures.push(a.detail);
        continue;
      }
      for (const ip of a.addresses) {
        if (tried >= maxAddresses) break;
        tried++;
        const hop = hopFor(ip, h.port ?? o.port ?? 25, h.name);
        const r = await attempt(hop);
        if ('done' in r) {
          remember(domain, hop);
          return { status: 'done', value: r.done };
        }
        // RFC 5321 §5.1: "the SMTP client ... MUST try (and retry) each of the relevant
        // addresses in this list in order, until a delivery attempt succeeds".
        failures.push(`${hop.label}: ${r.failure}`);
      }
    }
    return {
      status: 'failed',
      failure: failures.length === 0 ? `no MX host of ${domain} to try` : failures.join('; '),
    };
  }

  /** One domain's recipients toward its MX hosts. */
  async function viaMx(domain: string, job: Job, rcpts: readonly string[]): Promise<Attempt> {
    const r = await eachMx<Attempt>(domain, async (hop) => {
      const a = await viaHop(hop, job, rcpts);
      // Anything said about a recipient ends the search; the rest are retried by the queue.
      return a.answers.length > 0 ? { done: a } : { failure: a.failure ?? 'no answer' };
    });
    if (r.status === 'done') return r.value;
    if (r.status === 'failed') return { answers: [], failure: r.failure };
    return {
      answers: rcpts.map((rcpt) => ({ rcpt, code: r.code, enhanced: r.enhanced, text: r.text })),
    };
  }

  const deliver: SmtpDeliverFn = async (req) => {
    const answers = new Map<string, Answer>();
    const refuse = (rcpt: string, code: number, enhanced: string, text: string): void => {
      answers.set(rcpt, { rcpt, code, enhanced, text });
    };

    // Envelope addresses go out as nodemailer's MimeNode writes them (IDN domains as
    // A-labels), as they did under sendMail, which reparsed them that way: the answers
    // come back under the address written, so each is mapped back to ours.
    const from = req.mailFrom === '' ? '' : wireAddress(req.mailFrom);
    const byWire = new Map<string, string[]>();
    const wireOf = new Map<string, string>();
    for (const rcpt of req.recipients) {
      const w = from === undefined ? undefined : wireAddress(rcpt);
      if (from === undefined) {
        refuse(rcpt, 553, '5.1.7', `bad sender address syntax (NMTP_ERR_ADDR_LEGACY_SYNTAX)`);
      } else if (w === undefined) {
        refuse(rcpt, 553, '5.1.3', `bad recipient address syntax (NMTP_ERR_ADDR_LEGACY_SYNTAX)`);
      } else {
        wireOf.set(rcpt, w);
        const k = w.toLowerCase();
        byWire.set(k, [...(byWire.get(k) ?? []), rcpt]);
      }
    }
    const sendable = req.recipients.filter((r) => wireOf.has(r));
    if (sendable.length === 0 || from === undefined) return { recipients: [...answers.values()] };

    let header: Promise<boolean> | undefined;
    const job: Job = {
      req,
      from,
      wireOf,
      byWire,
      utf8Header: () => (header ??= headerIsUtf8(req.message.pieces('full'))),
    };
    let attempts: Attempt[];
    if (smarthost !== undefined) {
      attempts = [await viaHop(smarthost, job, sendable)];
    } else {
      // The queue hands over one entry's recipients, whatever their domains: one delivery
      // per domain, at the same time, answers merged.
      const byDomain = new Map<string, string[]>();
      for (const r of sendable) {
        const d = domainKey(wireOf.get(r)!);
        byDomain.set(d, [...(byDomain.get(d) ?? []), r]);
      }
      attempts = await Promise.all([...byDomain].map(([d, rs]) => viaMx(d, job, rs)));
    }
    for (const a of attempts) for (const x of a.answers) answers.set(x.rcpt, x);
    const failures = attempts.flatMap((a) => (a.failure === undefined ? [] : [a.failure]));
    return {
      recipients: req.recipients.flatMap((r) => {
        const a = answers.get(r);
        return a === undefined ? [] : [a];
      }),
      ...(failures.length === 0 ? {} : { failure: failures.join('; ') }),
    };
  };

  const capabilities = (destination?: string): SmtpCapabilities | undefined => {
    if (smarthost !== undefined) return fresh(smarthost);
    if (destination === undefined) return undefined;
    const s = served.get(domainKey(destination));
    return s === undefined || now() - s.at >= ttl ? undefined : fresh(hops.get(s.key));
  };

  const probe = async (destination?: string): Promise<SmtpCapabilities | undefined> => {
    if (smarthost !== undefined) return probeHop(smarthost);
    if (destination === undefined) return undefined;
    const known = capabilities(destination);
    if (known !== undefined) return known;
    const r = await eachMx<SmtpCapabilities>(domainKey(destination), async (hop) => {
      const caps = await probeHop(hop);
      return caps === undefined ? { failure: 'no EHLO' } : { done: caps };
    });
    return r.status === 'done' ? r.value : undefined;
  };

  return Object.assign(deliver, {
    capabilities,
    probe,
    close: async (): Promise<void> => {
      for (const h of hops.values()) h.pool.close();
      hops.clear();
    },
  });
}
