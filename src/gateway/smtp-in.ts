/**
 * smtp-in: the gateway's SMTP receiving service (Postfix's smtpd + cleanup in one job). It
 * decides every SMTP event the listener adapter reports (src/gateway/ports.ts):
 *
 *   MAIL   the reverse-path is a legacy address (or <>), checked by the core's one parser;
 *   RCPT   no open relay: a permitted network, an authenticated client, or a recipient in
 *          a relay domain / relay address / a domain of the gateway's own NMTP receiver;
 *          then the router decides NMTP or SMTP now, so a recipient that cannot be
 *          delivered is refused while the client is still connected, not bounced later;
 *   DATA   bare CR / LF / NUL refused (never signed or relayed), header and message size
 *          limits, then: NMTP recipients get the message converted (§50, with provenance),
 *          signed with the gateway's key for exactly those recipients, and queued as one
 *          'nmtp' entry; SMTP recipients get the original octets with a Received field,
 *          queued as one 'smtp' entry. The 250 is sent only when every entry is durable
 *          ("accepted means stored"); a message that cannot be converted is refused in the
 *          session with its NMTP_ERR_* code, never accepted and lost.
 *
 * No socket, no smtp-server: the adapter in adapters/smtp-listener calls this.
 */
import { randomBytes } from 'node:crypto';
import { BlockList, isIPv6 } from 'node:net';
import { fromLegacyAddress, processDomain } from '../core/address/index.ts';
import { isErrorCode, NmtpError, type ErrorCode } from '../core/errors/index.ts';
import { classify } from '../core/errors/policy.ts';
import type { SigningKey } from '../core/sign/index.ts';
import type { Json, QueueBackend } from '../queue/port.ts';
import type { QueuedRecipient } from '../queue/types.ts';
import { inlineCleanup, type Cleanup } from './cleanup.ts';
import type { GatewayConfig } from './config.ts';
import { silentLog, type GatewayLog } from './observe/log.ts';
import type { Metrics } from './observe/metrics.ts';
import {
  asJson,
  entryMeta,
  recipientMeta,
  type EntryMeta,
  type RecipientMeta,
} from './envelope.ts';
import { LineEndScanner } from './line-ends.ts';
import type { ReturnPath } from './reverse/returns.ts';
import {
  replyFields,
  type AcceptedRcpt,
  type Clock,
  type MailFrom,
  type RcptTo,
  type Router,
  type SmtpInHandler,
  type SmtpReply,
  type SmtpSession,
} from './ports.ts';

export interface SmtpInOptions {
  readonly config: GatewayConfig;
  readonly router: Router;
  readonly queue: QueueBackend;
  /** The gateway's signing key (d = config.gateway.domain, s = config.gateway.selector). */
  readonly key: SigningKey;
  readonly now?: Clock;
  readonly random?: (n: number) => Uint8Array;
  readonly log?: GatewayLog;
  readonly metrics?: Metrics;
  /**
   * The reverse direction's return path (src/gateway/reverse/returns.ts): legacy DSNs about
   * NMTP senders' messages, read here and never relayed (§52.6).
   */
  readonly returns?: ReturnPath;
  /** Where messages are converted and signed (src/gateway/cleanup.ts); default: inline. */
  readonly cleanup?: Cleanup;
}

/** What smtp-in keeps about an accepted recipient between RCPT and DATA. */
interface RcptNote {
  readonly transport: 'nmtp' | 'smtp' | 'return';
  /** NMTP canonical address (nmtp), the forward-path as given (smtp), the entry id (return). */
  readonly address: string;
}

const reply = (code: number, enhanced: string, text: string, err?: ErrorCode): SmtpReply =>
  err === undefined ? { code, enhanced, text } : { code, enhanced, text, err };

/** An error as an SMTP reply: permanent → 554 5.6.0 (content) unless given, else 451 4.3.0. */
function refusal(e: unknown, permanent: [number, string] = [554, '5.6.0']): SmtpReply {
  const v = classify(e);
  const text = v.message.replace(/^NMTP_ERR_[A-Z0-9_]+: /, '').replace(/[\r\n]+/g, ' ');
  return v.temporary
    ? reply(451, '4.3.0', `temporary failure: ${text}`, v.code)
    : reply(permanent[0], permanent[1], text, v.code);
}

/** How often the LMTP answer wait looks at the queue. */
const ANSWER_POLL_MS = 20;
/** Seconds past the budget during which DSNs still wait for smtp-in's marks. */
const ANSWER_SLACK_S = 30;

/** The SMTP reply for a recipient whose NMTP answer is final; undefined while it waits. */
function finalReply(r: QueuedRecipient, id: string): SmtpReply | undefined {
  const last = r.last;
  const detail = [last?.text].filter((x) => x !== undefined && x !== '').join(' ');
  if (r.state === 'accepted') {
    return reply(
      250,
      '2.0.0',
      `delivered over NMTP${r.id === undefined ? '' : ` as ${r.id}`} (queue ${id})`,
    );
  }
  if (r.state === 'rejected') {
    const enhanced =
      last?.enhanced !== undefined && /^5\.\d{1,3}\.\d{1,3}$/.test(last.enhanced)
        ? last.enhanced
        : '5.0.0';
    const code = last?.code !== undefined && last.code >= 500 && last.code <= 599 ? last.code : 550;
    const err = last?.err !== undefined && isErrorCode(last.err) ? last.err : undefined;
    return reply(
      code,
      enhanced,
      `refused by the NMTP receiver${detail === '' ? '' : `: ${detail}`}`,
      err,
    );
  }
  return undefined;
}

function withoutHold(j: Json | undefined): Json | undefined {
  const m = entryMeta(j);
  if (m === undefined) return j;
  const rest: { -readonly [K in keyof EntryMeta]?: EntryMeta[K] } = { ...m };
  delete rest.answerUntil;
  return asJson(rest as EntryMeta);
}

/** Seven days: the signature outlives the queue's maximum age (5 days by default). */
const SIGNATURE_SLACK = 2 * 86400;

export class SmtpIn implements SmtpInHandler {
  private readonly networks = new BlockList();
  private readonly trusted = new BlockList();
  private readonly relayDomains: Set<string>;
  private readonly relayRecipients: Set<string>;
  private readonly now: Clock;
  private readonly random: (n: number) => Uint8Array;
  private readonly log: GatewayLog;

  constructor(private readonly o: SmtpInOptions) {
    const c = o.config;
    for (const n of c.smtp.relay.networks) addNetwork(this.networks, n);
    for (const n of c.dsn.trustedNetworks) addNetwork(this.trusted, n);
    if (c.dsn.trustRelayNetworks)
      for (const n of c.smtp.relay.networks) addNetwork(this.trusted, n);
    this.relayDomains = new Set(
      [...c.smtp.relay.domains, ...c.nmtp.receiver.domains].map(canonicalDomain),
    );
    this.relayRecipients = new Set(c.smtp.relay.recipients.map(canonicalLegacy));
    this.now = o.now ?? Date.now;
    this.random = o.random ?? ((n) => randomBytes(n));
    this.log = o.log ?? silentLog();
  }

  async connect(): Promise<SmtpReply | undefined> {
    return undefined;
  }

  async mailFrom(s: SmtpSession, m: MailFrom): Promise<SmtpReply | undefined> {
    const r = this.checkMailFrom(m);
    this.o.metrics?.smtpIn('mail', r ?? { code: 250 });
    if (r !== undefined) {
      this.log.event('smtp.mail.refused', {
        ...who(s),
        from: m.address,
        helo: s.helo,
        ...replyFields(r),
      });
    }
    return r;
  }

  private checkMailFrom(m: MailFrom): SmtpReply | undefined {
    if (m.address === '') return undefined;
    try {
      // The core's parser decides; a legacy-only form (quoted local part) is still a valid
      // reverse-path: only syntax matters here.
      fromLegacyAddress(m.address, { smtputf8: m.smtputf8 });
    } catch (e) {
      if (e instanceof NmtpError && e.code === 'NMTP_ERR_ADDR_LEGACY_UNMAPPABLE') return undefined;
      return refusal(e, [553, '5.1.7']);
    }
    if (m.size !== undefined && m.size > this.o.config.smtp.limits.messageSize) {
      return reply(552, '5.3.4', 'message size exceeds fixed limit');
    }
    return undefined;
  }

  async rcptTo(
    s: SmtpSession,
    m: MailFrom,
    r: RcptTo,
    accepted: readonly AcceptedRcpt[],
  ): Promise<{ readonly reply: SmtpReply } | { readonly note: unknown }> {
    const out = await this.checkRcpt(s, m, r, accepted);
    this.o.metrics?.smtpIn('rcpt', 'reply' in out ? out.reply : { code: 250 });
    if ('reply' in out) {
      this.log.event('smtp.rcpt.refused', {
        ...who(s),
        rcpt: r.address,
        from: m.address,
        ...replyFields(out.reply),
      });
    }
    return out;
  }

  private async checkRcpt(
    s: SmtpSession,
    m: MailFrom,
    r: RcptTo,
    accepted: readonly AcceptedRcpt[],
  ): Promise<{ readonly reply: SmtpReply } | { readonly note: unknown }> {
    const c = this.o.config;
    if (accepted.length >= c.smtp.limits.recipients) {
      return { reply: reply(452, '4.5.3', 'too many recipients') };
    }
    if (!m.smtputf8 && /[^\x20-\x7e]/.test(r.address)) {
      return { reply: reply(553, '5.6.7', 'non-ASCII address needs SMTPUTF8') };
    }
    const back = this.o.returns?.match(r.address);
    if (back !== undefined) {
      // The gateway's own return path: a report about an NMTP sender's message. Taken
      // from anyone (a remote MTA sends it), and consumed here, never relayed (§52.6).
      const note: RcptNote = { transport: 'return', address: back };
      return { note };
    }
    if (!this.mayRelay(s, r.address)) {
      return {
        reply: reply(554, '5.7.1', 'relay access denied', 'NMTP_ERR_GW_RELAY_DENIED'),
      };
    }
    const d = await this.o.router.route(r.address);
    this.o.metrics?.routed(d.transport);
    if (d.transport === 'temperror') {
      this.log.event('route.temperror', { ...who(s), rcpt: r.address, why: d.why });
      return { reply: reply(451, '4.4.3', `routing temporarily unavailable: ${d.why}`) };
    }
    if (d.transport === 'invalid') {
      return { reply: reply(550, '5.1.3', `bad recipient address: ${d.why}`, d.err) };
    }
    this.log.event('route.decided', {
      ...who(s),
      rcpt: r.address,
      transport: d.transport,
      via: d.via,
      why: d.why,
    });
    const note: RcptNote = { transport: d.transport, address: d.address };
    return { note };
  }

  /** Postfix's permit_mynetworks, permit_sasl_authenticated, then relay_domains. */
  private mayRelay(s: SmtpSession, rcpt: string): boolean {
    if (s.user !== undefined) return true;
    if (inList(this.networks, s.remoteAddress)) return true;
    if (this.relayRecipients.has(canonicalLegacy(rcpt))) return true;
    const at = rcpt.lastIndexOf('@');
    return at > 0 && this.relayDomains.has(canonicalDomain(rcpt.slice(at + 1)));
  }

  async data(
    s: SmtpSession,
    m: MailFrom,
    rcpts: readonly AcceptedRcpt[],
    message: AsyncIterable<Uint8Array>,
  ): Promise<SmtpReply | readonly SmtpReply[]> {
    const { reply: one, nmtpId } = await this.receive(s, m, rcpts, message);
    this.o.metrics?.smtpIn('data', one);
    if (one.code >= 400) {
      this.log.event('smtp.message.refused', {
        ...who(s),
        from: m.address,
        rcpts: rcpts.length,
        ...replyFields(one),
      });
    }
    if (s.protocol !== 'lmtp') return one;
    // LMTP (RFC 2033 §4.2): one reply per accepted recipient. NMTP recipients get the
    // receiver's own answer when it comes within the budget (§52.5 rule 1: "the gateway
    // answers in the SMTP session whenever it can"), else "queued" and a DSN later.
    const answers =
      nmtpId === undefined ? new Map<string, SmtpReply>() : await this.answers(nmtpId);
    return rcpts.map((r) => {
      const n = r.note as RcptNote;
      return (n.transport === 'nmtp' ? answers.get(n.address) : undefined) ?? one;
    });
  }

  private async receive(
    s: SmtpSession,
    m: MailFrom,
    rcpts: readonly AcceptedRcpt[],
    message: AsyncIterable<Uint8Array>,
  ): Promise<{ readonly reply: SmtpReply; readonly nmtpId?: string }> {
    const r = await this.store(s, m, rcpts, message);
    return 'code' in r ? { reply: r } : r;
  }

  /**
   * Waits up to `smtp.answerBudget` for the NMTP recipients of entry `id` to reach a final
   * answer; returns the SMTP reply for each recipient that did, marks those `answered` (no
   * DSN will repeat them) and ends the entry's hold on DSNs.
   */
  private async answers(id: string): Promise<Map<string, SmtpReply>> {
    const budgetMs = this.o.config.smtp.answerBudget * 1000;
    // Real time: the wait is a real timer whatever clock stamps the entries.
    const end = Date.now() + budgetMs;
    let s = await this.o.queue.get(id);
    while (s !== undefined && s.done === undefined && Date.now() < end) {
      await new Promise((r) => setTimeout(r, ANSWER_POLL_MS));
      s = await this.o.queue.get(id);
    }
    const out = new Map<string, SmtpReply>();
    if (s === undefined) return out;
    for (const r of s.recipients) {
      const reply = finalReply(r, s.id);
      if (reply !== undefined) out.set(r.rcpt, reply);
    }
    await this.o.queue
      .annotate(id, (cur) => ({
        ...cur,
        meta: withoutHold(cur.meta),
        // A refusal given in the session is the client's to report (RFC 3461 §5.2.2); an
        // acceptance is not a report to the sender: with NOTIFY=SUCCESS the client passed
        // the request on (we announce DSN), so the "relayed" DSN is still ours to send.
        recipients: cur.recipients.map((r) =>
          out.has(r.rcpt) && r.state !== 'accepted'
            ? { ...r, meta: asJson({ ...recipientMeta(r.meta)!, answered: true }) }
            : r,
        ),
      }))
      .catch((e: unknown) => {
        // The answers stand; a DSN may repeat one of them later (never lose one instead).
        this.log.event('gateway.error', { service: 'smtp-in', queueId: id, detail: String(e) });
        out.clear();
      });
    return out;
  }

  private async store(
    s: SmtpSession,
    m: MailFrom,
    rcpts: readonly AcceptedRcpt[],
    message: AsyncIterable<Uint8Array>,
  ): Promise<SmtpReply | { readonly reply: SmtpReply; readonly nmtpId?: string }> {
    const L = this.o.config.smtp.limits;
    const scan = new LineEndScanner();
    const chunks: Uint8Array[] = [];
    let size = 0;
    let fault: string | undefined;
    // Read to the end whatever happens: the listener answers only after the final dot.
    for await (const chunk of message) {
      size += chunk.length;
      if (fault !== undefined || size > L.messageSize) continue;
      fault = scan.push(chunk);
      chunks.push(chunk);
    }
    fault ??= scan.end();
    if (size > L.messageSize) return reply(552, '5.3.4', 'message size exceeds fixed limit');
    if (fault !== undefined) {
      // "never sign or relay such bytes" (SMTP smuggling, CVE-2023-51764 class).
      return reply(550, '5.6.0', `${fault} in message data`, 'NMTP_ERR_GW_BARE_LINE_END');
    }
    const bytes = Buffer.concat(chunks);
    const headerEnd = endOfHeader(bytes);
    if (headerEnd > L.headerSize) return reply(552, '5.3.4', 'message header size exceeds limit');

    const nmtp = rcpts.filter((r) => (r.note as RcptNote).transport === 'nmtp');
    const smtp = rcpts.filter((r) => (r.note as RcptNote).transport === 'smtp');
    const back = rcpts.filter((r) => (r.note as RcptNote).transport === 'return');
    if (back.length > 0) {
      // Its effect on the cookies is durable before the 250 (annotate), like any acceptance.
      try {
        await this.o.returns!.receive(
          back.map((r) => (r.note as RcptNote).address),
          bytes,
        );
      } catch (e) {
        return refusal(e, [451, '4.3.0']);
      }
      if (nmtp.length === 0 && smtp.length === 0) {
        return reply(250, '2.0.0', 'Ok: report received');
      }
    }
    const nowMs = this.now();
    const id = Buffer.from(this.random(15)).toString('base64url');
    const meta: EntryMeta = {
      origin: 'smtp-in',
      mailFrom: m.address,
      ...(m.envid === undefined ? {} : { envid: m.envid }),
      ...(m.ret === undefined ? {} : { ret: m.ret }),
      smtputf8: m.smtputf8,
      eightBit: m.body === '8BITMIME',
      arrival: Math.floor(nowMs / 1000),
      client: {
        ip: s.remoteAddress,
        helo: s.helo,
        ...(s.clientHostname === undefined ? {} : { name: s.clientHostname }),
      },
      trust: {
        authenticated: s.user !== undefined,
        trustedRelay: inList(this.trusted, s.remoteAddress),
      },
      headers: bytes.subarray(0, headerEnd).toString('latin1'),
    };
    const budget = this.o.config.smtp.answerBudget;
    const nmtpMeta: EntryMeta =
      s.protocol === 'lmtp' && budget > 0
        ? { ...meta, answerUntil: Math.ceil(nowMs / 1000) + budget + ANSWER_SLACK_S }
        : meta;
    const rmeta = (r: AcceptedRcpt): RecipientMeta => ({
      legacy: r.address,
      ...(r.notify === undefined ? {} : { notify: r.notify }),
      ...(r.orcpt === undefined ? {} : { orcpt: r.orcpt }),
    });

    // Both entries are built before either is stored, so a conversion failure refuses the
    // whole message with nothing queued.
    let framed: Uint8Array | undefined;
    if (nmtp.length > 0) {
      try {
        framed = await this.convertAndSign(s, m, rcpts, nmtp, bytes, nowMs);
      } catch (e) {
        const r = refusal(e);
        this.o.metrics?.convertFailed(r.err ?? e);
        this.log.event('convert.failed', {
          ...who(s),
          err: r.err ?? 'NMTP_ERR_INTERNAL',
          from: m.address,
          detail: r.text,
        });
        return r;
      }
    }
    const added: string[] = [];
    const enqueue = async (
      qid: string,
      kind: 'nmtp' | 'smtp',
      of: readonly AcceptedRcpt[],
      entry: EntryMeta,
      message: Uint8Array,
    ): Promise<void> => {
      await this.o.queue.add({
        id: qid,
        user: m.address,
        recipients: of.map((r) => (r.note as RcptNote).address),
        kind,
        meta: asJson(entry),
        recipientMeta: of.map((r) => asJson(rmeta(r))),
        message,
      });
      added.push(qid);
      this.o.metrics?.queued(kind);
      this.log.event('queue.added', {
        queueId: qid,
        kind,
        from: m.address,
        rcpts: of.length,
        size: message.length,
      });
    };
    try {
      if (framed !== undefined) await enqueue(id, 'nmtp', nmtp, nmtpMeta, framed);
      if (smtp.length > 0) {
        const trace = received(this.o.config, s, m, smtp, id, nowMs);
        await enqueue(`${id}-s`, 'smtp', smtp, meta, Buffer.concat([trace, bytes]));
      }
    } catch (e) {
      // Not stored: say so (4xx), and take back what was, so the client's retry is the
      // only copy.
      for (const a of added) await this.o.queue.delete(a).catch(() => undefined);
      return refusal(e, [451, '4.3.0']);
    }
    this.log.event('smtp.message.queued', {
      ...who(s),
      queueId: id,
      from: m.address,
      rcpts: rcpts.length,
      size,
    });
    const queued = reply(250, '2.0.0', `Ok: queued as ${id}`);
    return framed === undefined ? queued : { reply: queued, nmtpId: id };
  }

  private async convertAndSign(
    s: SmtpSession,
    m: MailFrom,
    all: readonly AcceptedRcpt[],
    nmtp: readonly AcceptedRcpt[],
    bytes: Uint8Array,
    nowMs: number,
  ): Promise<Uint8Array> {
    const c = this.o.config;
    const t = Math.floor(nowMs / 1000);
    return (this.o.cleanup ?? inlineCleanup).run({
      legacy: bytes,
      convert: {
        gateway: c.gateway.domain,
        now: nowMs,
        envelope: {
          mailFrom: m.address,
          rcptTo: all.map((r) => r.address),
          clientIp: s.remoteAddress,
          helo: s.helo,
        },
        limits: {
          maxMessageBytes: c.smtp.limits.messageSize,
          maxDepth: Math.min(c.smtp.limits.mimeDepth, 30),
          maxHeaderBytes: c.smtp.limits.headerSize,
        },
      },
      sign: {
        key: this.o.key,
        domain: c.gateway.domain,
        selector: c.gateway.selector,
        // "recipients bound to the RCPT list": exactly the NMTP recipients of this entry.
        recipients: nmtp.map((r) => (r.note as RcptNote).address),
        signedAt: t,
        expiresAt: t + c.queue.retry.maxAge + SIGNATURE_SLACK,
        salt: this.random(16),
      },
    });
  }
}

const who = (s: SmtpSession): { session: string; client: string } => ({
  session: s.id,
  client: s.remoteAddress,
});

function addNetwork(list: BlockList, cidr: string): void {
  const [addr, bits] = cidr.split('/') as [string, string | undefined];
  const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
  if (bits === undefined) list.addAddress(addr, type);
  else list.addSubnet(addr, Number(bits), type);
}

function inList(list: BlockList, ip: string): boolean {
  // IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d.
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4 !== undefined) return list.check(v4, 'ipv4');
  return list.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4');
}

function canonicalDomain(d: string): string {
  try {
    return processDomain(d).ascii;
  } catch {
    return d.toLowerCase();
  }
}

function canonicalLegacy(a: string): string {
  const at = a.lastIndexOf('@');
  return at < 0 ? a : `${a.slice(0, at)}@${canonicalDomain(a.slice(at + 1))}`;
}

/** Octets of the header block including its empty line (the whole message if none). */
function endOfHeader(b: Uint8Array): number {
  const i = Buffer.from(b.buffer, b.byteOffset, b.length).indexOf('\r\n\r\n');
  if (b[0] === 0x0d && b[1] === 0x0a) return 2;
  return i < 0 ? b.length : i + 4;
}

/** The Received field (RFC 5321 §4.4) for mail relayed back to the legacy side. */
function received(
  c: GatewayConfig,
  s: SmtpSession,
  m: MailFrom,
  rcpts: readonly AcceptedRcpt[],
  id: string,
  nowMs: number,
): Uint8Array {
  const helo = s.helo.replace(/[^\x21-\x7e]/g, '?');
  const name = s.clientHostname ?? 'unknown';
  const proto = `${m.smtputf8 ? 'UTF8' : ''}${s.protocol === 'lmtp' ? 'LMTP' : 'ESMTP'}${s.tls ? 'S' : ''}`;
  const forClause = rcpts.length === 1 ? `\r\n\tfor <${rcpts[0]!.address}>` : '';
  const date = new Date(nowMs).toUTCString().replace('GMT', '+0000');
  return Buffer.from(
    `Received: from ${helo} (${name} [${s.remoteAddress}])\r\n\tby ${c.gateway.hostname} (nmtp-gateway) with ${proto} id ${id}${forClause};\r\n\t${date}\r\n`,
    'utf8',
  );
}
