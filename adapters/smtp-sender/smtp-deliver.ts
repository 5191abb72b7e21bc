/**
 * The gateway's SMTP client ("smtp" in Postfix's split): one SMTP transaction to the
 * smarthost per queue job, over nodemailer's pooled SMTP transport, with the queue's
 * legacy message sent as it is (`raw`) and the envelope given explicitly (`envelope`).
 *
 *   - Per-recipient answers: the RCPT reply of each refused recipient, the final reply to
 *     the message for the accepted ones, each with its enhanced code (RFC 2034 §4: the
 *     first token of the text). A refusal of MAIL FROM or of the message answers every
 *     recipient of the transaction. A connection that fails first (refused, timeout,
 *     STARTTLS or AUTH trouble) answers none: `failure`, which the queue treats as temporary.
 *   - The reverse-path is the request's: '' is the null sender, `MAIL FROM:<>` (DSNs).
 *   - RFC 3461 parameters travel on: RET and ENVID from the entry's meta, NOTIFY and ORCPT
 *     from each recipient's. nodemailer takes one NOTIFY/ORCPT per transaction, so
 *     recipients with different ones go in separate transactions over the same pool.
 *   - SMTPUTF8 (RFC 6531 §3.2): a message that needs it (a non-ASCII envelope address, or
 *     UTF-8 header fields of a message received with SMTPUTF8) goes only to a smarthost that
 *     offers it; otherwise its recipients are refused 553 5.6.7 (address) / 554 5.6.9
 *     (header), NMTP_ERR_GW_SMTPUTF8_NOT_OFFERED, as Postfix does. nodemailer itself would
 *     send the UTF-8 octets regardless, so the smarthost's EHLO is learnt first.
 *   - BODY=8BITMIME when the entry says the message is 8bit (`use8BitMime`), SIZE from the
 *     file.
 *
 * The message bytes reach the wire unchanged apart from SMTP's dot-stuffing: nodemailer
 * only rewrites bare CR and LF, which a queued message never holds (smtp-in refuses them,
 * the DSN builder writes none).
 */
import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import nodemailer from 'nodemailer';
import MimeNode from 'nodemailer/lib/mime-node';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { leadingEnhancedStatus, parseNotify } from '../../src/core/delivery/index.ts';
import type { Json, SmtpDeliverFn, SmtpDeliverOutcome } from '../../src/queue/port.ts';

export interface SmtpDelivererOptions {
  readonly host: string;
  readonly port: number;
  /**
   * STARTTLS: `none` never, `opportunistic` when offered (no certificate check, as Postfix's
   * `may`: a failed check would otherwise stop mail that plaintext would carry), `require`
   * refuses to send without it (certificate checked unless `tlsOptions` say otherwise).
   */
  readonly tls: 'none' | 'opportunistic' | 'require';
  /** EHLO name: the gateway's host name. */
  readonly name: string;
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Pool: connections at once (default 5), messages per connection (100), idle ms (4 min). */
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
  /** How long what the smarthost's EHLO offered is trusted, ms (default 10 minutes). */
  readonly capabilityTtl?: number;
  /** Unix milliseconds (default Date.now). */
  readonly now?: () => number;
}

export type SmtpDeliverer = SmtpDeliverFn & {
  /** Closes the pool's idle connections; a transaction in progress finishes first. */
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

/** The EHLO keywords that change what is sent, from the reply's lines. */
function capabilitiesOf(ehloLines: readonly string[]): { smtputf8: boolean } {
  return { smtputf8: ehloLines.some((l) => /^SMTPUTF8\b/i.test(l.trim())) };
}

/** What nodemailer will write for an envelope address (it reparses and may re-encode). */
function wireAddress(address: string): string | undefined {
  const node = new MimeNode('text/plain');
  node.setEnvelope({ from: false, to: [address] });
  const to = node.getEnvelope().to;
  return to.length === 1 ? to[0] : undefined;
}

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

export function smtpDeliverer(o: SmtpDelivererOptions): SmtpDeliverer {
  const connection = {
    host: o.host,
    port: o.port,
    secure: false,
    name: o.name,
    ignoreTLS: o.tls === 'none',
    requireTLS: o.tls === 'require',
    opportunisticTLS: o.tls === 'opportunistic',
    tls: { rejectUnauthorized: o.tls === 'require', ...o.tlsOptions },
    ...(o.timeouts?.connection === undefined ? {} : { connectionTimeout: o.timeouts.connection }),
    ...(o.timeouts?.greeting === undefined ? {} : { greetingTimeout: o.timeouts.greeting }),
    ...(o.timeouts?.socket === undefined ? {} : { socketTimeout: o.timeouts.socket }),
    logger: false,
  } as const;
  const transport = nodemailer.createTransport({
    ...connection,
    pool: true,
    ...(o.auth === undefined ? {} : { auth: { user: o.auth.user, pass: o.auth.pass } }),
    ...(o.pool?.maxConnections === undefined ? {} : { maxConnections: o.pool.maxConnections }),
    ...(o.pool?.maxMessages === undefined ? {} : { maxMessages: o.pool.maxMessages }),
    ...(o.pool?.idleTimeout === undefined ? {} : { idleTimeout: o.pool.idleTimeout }),
    // The message is given whole; nothing may be fetched from files or URLs on its behalf.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  // Failures reach each sendMail's caller; an 'error' event nobody listens to would end the
  // process.
  transport.on('error', () => undefined);
  const now = o.now ?? Date.now;
  const ttl = o.capabilityTtl ?? 600_000;
  let known: { smtputf8: boolean; at: number } | undefined;

  /** What the smarthost offers: from a recent transaction, else from a fresh EHLO. */
  async function capabilities(): Promise<{ smtputf8: boolean } | undefined> {
    if (known !== undefined && now() - known.at < ttl) return known;
    const probe = new SMTPConnection(connection);
    const caps = await new Promise<{ smtputf8: boolean } | undefined>((resolve) => {
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
    });
    if (caps !== undefined) known = { ...caps, at: now() };
    return caps;
  }

  async function sendOne(
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
    const hasDsn = Object.values(dsn).some((v) => v !== undefined);
    const info = (await transport.sendMail({
      envelope: {
        from: from === '' ? false : from,
        to: [...to],
        size: source.size,
        use8BitMime: eightBit,
      },
      ...(hasDsn ? { dsn } : {}),
      raw: Readable.from(copies(), { objectMode: false }),
    })) as unknown as SendInfo;
    if (info.ehlo !== undefined) known = { ...capabilitiesOf(info.ehlo), at: now() };
    return info;
  }

  const deliver: SmtpDeliverFn = async (req) => {
    const answers = new Map<string, Answer>();
    const refuse = (rcpt: string, code: number, enhanced: string, text: string): void => {
      answers.set(rcpt, { rcpt, code, enhanced, text });
    };

    // nodemailer reparses envelope addresses (and writes IDN domains as A-labels): the
    // answers come back under the address it wrote, so each is mapped back to ours.
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

    // RFC 6531 §3.2: without SMTPUTF8 offered, UTF-8 addresses and header fields are not sent.
    const utf8Address =
      NON_ASCII.test(from) || sendable.some((r) => NON_ASCII.test(wireOf.get(r)!));
    const utf8Header =
      !utf8Address &&
      flag(req.meta, 'smtputf8') &&
      (await headerIsUtf8(req.message.pieces('full')));
    if (utf8Address || utf8Header) {
      const caps = await capabilities();
      if (caps === undefined) {
        return {
          recipients: [...answers.values()],
          failure: 'could not learn whether the smarthost offers SMTPUTF8',
        };
      }
      if (!caps.smtputf8) {
        for (const r of sendable) {
          if (utf8Address) {
            refuse(
              r,
              553,
              '5.6.7',
              `SMTPUTF8 is required, but was not offered by host ${o.host} (${ERR_SMTPUTF8})`,
            );
          } else {
            refuse(
              r,
              554,
              '5.6.9',
              `SMTPUTF8 is required for UTF-8 header fields, but was not offered by host ${o.host} (${ERR_SMTPUTF8})`,
            );
          }
        }
        return { recipients: [...answers.values()] };
      }
    }

    // One transaction per distinct NOTIFY/ORCPT (nodemailer sends one for all recipients).
    const ret = str(req.meta, 'ret');
    const envid = str(req.meta, 'envid');
    const groups = new Map<string, { notify?: string; orcpt?: string; rcpts: string[] }>();
    req.recipients.forEach((rcpt, i) => {
      if (!wireOf.has(rcpt)) return;
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
        const answerWire = (wire: string, reply: ParsedReply): void => {
          for (const r of byWire.get(wire.toLowerCase()) ?? []) {
            if (g.rcpts.includes(r)) answers.set(r, { rcpt: r, ...reply });
          }
        };
        const answerAll = (reply: ParsedReply): void => {
          for (const r of g.rcpts) answers.set(r, { rcpt: r, ...reply });
        };
        try {
          const info = await sendOne(
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
          if (final !== undefined) for (const w of info.accepted) answerWire(w, final);
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
            // a timeout, the message file — temporary, the queue retries.
            failures.push(`${e.code ?? 'error'}: ${e.message}`.replace(/[\r\n]+/g, ' '));
          }
        }
      }),
    );
    return {
      recipients: req.recipients.flatMap((r) => {
        const a = answers.get(r);
        return a === undefined ? [] : [a];
      }),
      ...(failures.length === 0 ? {} : { failure: failures.join('; ') }),
    };
  };

  return Object.assign(deliver, {
    close: async (): Promise<void> => {
      transport.close();
    },
  });
}
