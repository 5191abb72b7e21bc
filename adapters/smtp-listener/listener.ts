/**
 * The SMTP/LMTP listener: smtp-server behind the gateway's `SmtpInHandler` port
 * (src/gateway/ports.ts). Every SMTP event goes to the handler — connect, MAIL, RCPT, DATA —
 * and the handler's `SmtpReply` is what the client reads. What the listener itself enforces,
 * whatever the handler says:
 *
 *   connections  at most `limits.connections` at once and `limits.connectionsPerClient` per
 *                client address: 421 4.7.0 and close (Postfix smtpd_client_connection_
 *                count_limit). Counted from accept to close, so a slow or half-open client
 *                keeps its place; beyond twice the limit a connection is closed unanswered.
 *   lines        a bare LF or CR, or NUL, in a command line: 521 5.5.2 and close, the line
 *                never acted on (guard.ts); in DATA: see data.ts (the message is never
 *                accepted: 521 5.5.2 and close).
 *   size         SIZE is announced (RFC 1870); MAIL SIZE= above it gets smtp-server's
 *                552 5.3.4; a message past it gets 552 5.3.4 (data.ts).
 *   SMTPUTF8     RFC 6531 §3.4: a non-ASCII MAIL FROM or RCPT TO address when MAIL FROM had
 *                no SMTPUTF8 parameter gets 553 5.6.7 (smtp-server would take it).
 *   STARTTLS     offered when a certificate is given; `requireTls` refuses MAIL before it
 *                with 530 5.7.0 (Postfix smtpd_tls_security_level = encrypt).
 *   timeouts     `commandTimeout` is smtp-server's idle timer (it counts only while the
 *                client owes input, in DATA too); `dataTimeout` bounds the whole DATA phase
 *                and `minDataRate` its average pace: 421 4.4.2 and close. Values are seconds;
 *                fractions are accepted (the schema's are whole; tests use fractions).
 *   greeting     sent as soon as the handler's `connect` allows it, or after `greetPause`
 *                seconds; a client that talks before it gets 421 4.7.0 "you talk too
 *                soon" and is disconnected (smtp-server's own fixed 100 ms pause is
 *                replaced: see `greetAfter`).
 *
 * Replies. Every reply carries exactly one RFC 3463 enhanced code (ENHANCEDSTATUSCODES is
 * announced). smtp-server prefixes an enhanced code of its own choosing to every reply it
 * sends, including an application's error text; the listener's and the handler's texts
 * already start with theirs, so for those the prefix is turned off (the patched `send`
 * below). A refusal with a catalog code ends " # NMTP_ERR_…" — after "#" comes what is for
 * people, as in NMTP replies (docs/protocol.md §60.6) — e.g.
 *   521 5.5.2 mx.example Error: bare LF in command line refused # NMTP_ERR_GW_BARE_LINE_END
 *
 * A handler that throws gets its client 451 4.3.0 (unknown errors are temporary). A 2xx
 * "reply" from `connect` or `mailFrom` means go on (smtp-server's own 220/250 is sent); from
 * `rcptTo` it means accepted, with no note.
 *
 * LMTP (RFC 2033 §4.2): after the final dot one reply per accepted recipient, in order;
 * smtp-server takes them as an array from the onData callback. smtp-server keeps one
 * envelope entry per distinct recipient (a repeated RCPT TO replaces the earlier one), and
 * so does the list the handler gets, so the counts match.
 *
 * AUTH is off (no mechanisms announced); `SmtpSession.user` is never set yet.
 *
 * Events (`onEvent`) use the names and fields of the gateway's log catalog
 * (src/gateway/observe/events.ts), so the composition root can pass them straight on:
 * smtp.connect, smtp.refused, smtp.tls, smtp.tls.failed, smtp.mail.refused,
 * smtp.rcpt.refused, smtp.message.refused (the listener's own refusals only: the handler
 * logs its decisions), smtp.timeout, smtp.disconnect, internal.error.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { NmtpError } from '../../src/core/errors/index.ts';
import { classify } from '../../src/core/errors/policy.ts';
import type { GatewayConfig } from '../../src/gateway/config.ts';
import type { EventFields, EventName } from '../../src/gateway/observe/events.ts';
import {
  replyFields,
  type AcceptedRcpt,
  type MailFrom,
  type SmtpInHandler,
  type SmtpReply,
  type SmtpSession,
} from '../../src/gateway/ports.ts';
import { watchData } from './data.ts';
import {
  ENHANCED_PREFIX,
  isAscii,
  lineText,
  mailFromOf,
  pathOf,
  rcptToOf,
  reply,
  replyText,
  splitReplyText,
} from './envelope.ts';
import { guardConnection } from './guard.ts';

/** The log catalog's events this listener reports (src/gateway/observe/events.ts). */
export type SmtpListenerEvent = Extract<
  EventName,
  | 'smtp.connect'
  | 'smtp.refused'
  | 'smtp.tls'
  | 'smtp.tls.failed'
  | 'smtp.mail.refused'
  | 'smtp.rcpt.refused'
  | 'smtp.message.refused'
  | 'smtp.timeout'
  | 'smtp.disconnect'
  | 'gateway.error'
>;

/** A plain callback; `(name, fields) => log.event(name, fields)` fits it. */
export type SmtpListenerEvents = <N extends SmtpListenerEvent>(
  name: N,
  fields: EventFields<N>,
) => void;

export interface SmtpListenerOptions {
  readonly protocol: 'smtp' | 'lmtp';
  readonly host: string;
  /** 0 = an ephemeral port (read it from the result). */
  readonly port: number;
  /** The `smtp` section of the gateway configuration (listeners and relay are not read). */
  readonly config: GatewayConfig['smtp'];
  /** Greeting name when `config.banner` is absent (gateway.hostname). */
  readonly hostname: string;
  /** PEM certificate chain and key (contents, not file names); absent: no STARTTLS. */
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined;
  readonly handler: SmtpInHandler;
  readonly onEvent?: SmtpListenerEvents;
  /** Look up clients' reverse DNS names (default true; tests on loopback turn it off). */
  readonly reverseLookup?: boolean;
}

export interface SmtpListener {
  readonly host: string;
  readonly port: number;
  /** Open connections now, in total and per client address (metrics; tests check release). */
  connections(): { readonly open: number; readonly perClient: ReadonlyMap<string, number> };
  /** Stops accepting, tells every client 421 4.3.2, resolves once all connections are gone. */
  close(): Promise<void>;
}

/** What the listener keeps per connection. */
interface Conn {
  readonly id: string;
  readonly conn: SMTPConnection;
  readonly socket: Socket;
  readonly ip: string;
  readonly opened: number;
  /** The last command line dispatched, as text (undefined: not UTF-8). */
  line: string | undefined;
  /** Its verb, until the command's first reply is sent. */
  pendingVerb: string | undefined;
  /** The HELO/EHLO/LHLO argument as sent. */
  helo: string | undefined;
  messages: number;
  closed: boolean;
}

/** One mail transaction, keyed by smtp-server's envelope object (new at every reset). */
interface Tx {
  readonly mail: MailFrom;
  accepted: AcceptedRcpt[];
  /** smtp-server's key for each accepted recipient (its lower-cased address). */
  keys: string[];
}

type SmtpError = Error & { responseCode: number };
const smtpError = (r: SmtpReply): SmtpError =>
  Object.assign(new Error(replyText(r)), { responseCode: r.code });

const isReplyList = (r: SmtpReply | readonly SmtpReply[]): r is readonly SmtpReply[] =>
  Array.isArray(r);

/** setTimeout's ceiling: "no timeout" for smtp-server, which treats 0 as its 60 s default. */
const NEVER_MS = 2 ** 31 - 1;

const normalizeIp = (ip: string): string => ip.replace(/^::ffff:(?=\d+\.)/i, '');

export async function startSmtpListener(o: SmtpListenerOptions): Promise<SmtpListener> {
  const cfg = o.config;
  const L = cfg.limits;
  const name = cfg.banner ?? o.hostname;
  if (cfg.requireTls && o.tls === undefined) {
    throw new NmtpError('NMTP_ERR_GW_CONFIG_INVALID', 'smtp.requireTls needs a certificate');
  }
  const emit: SmtpListenerEvents = (event, fields) => {
    try {
      o.onEvent?.(event, fields);
    } catch {
      // A broken log sink must not take the session down.
    }
  };
  const byId = new Map<string, Conn>();
  const txs = new WeakMap<object, Tx>();
  const raw = new Set<Socket>();
  const perClient = new Map<string, number>();
  let live = 0;
  /** Waiting for the last connection to be finished (close()). */
  const idle: (() => void)[] = [];

  const connOf = (s: SMTPServerSession): Conn => {
    const c = byId.get(s.id);
    if (c === undefined) throw new NmtpError('NMTP_ERR_INTERNAL', `no connection ${s.id}`);
    return c;
  };
  const sessionOf = (c: Conn, s: SMTPServerSession): SmtpSession => {
    const appears = typeof s.hostNameAppearsAs === 'string' ? s.hostNameAppearsAs : '';
    const reverse = typeof s.clientHostname === 'string' ? s.clientHostname : '';
    return {
      id: s.id,
      protocol: o.protocol,
      remoteAddress: s.remoteAddress,
      remotePort: s.remotePort,
      // smtp-server keeps the name lower-cased; the handler gets it as sent.
      helo: c.helo !== undefined && c.helo.toLowerCase() === appears ? c.helo : appears,
      // smtp-server writes "[ip]" when there is no reverse name.
      ...(reverse === '' || reverse.startsWith('[') ? {} : { clientHostname: reverse }),
      tls: s.secure,
    };
  };
  /** A handler that threw: temporary, logged as a bug. */
  const failure = (c: Conn | undefined, e: unknown): SmtpReply => {
    const v = classify(e);
    emit('gateway.error', {
      service: 'smtp-in',
      err: v.code,
      detail: v.message,
      ...(e instanceof Error && e.stack !== undefined ? { stack: e.stack } : {}),
      ...(c === undefined ? {} : { session: c.id }),
    });
    return reply(451, '4.3.0', 'Error: local error, try again later', v.code);
  };

  const onConnect = (s: SMTPServerSession, cb: (err?: Error | null) => void): void => {
    const c = connOf(s);
    const { clientHostname } = sessionOf(c, s);
    o.handler
      .connect({
        id: s.id,
        protocol: o.protocol,
        remoteAddress: s.remoteAddress,
        remotePort: s.remotePort,
        ...(clientHostname === undefined ? {} : { clientHostname }),
      })
      .then(
        (r) => {
          if (r === undefined || r.code < 300) return cb();
          emit('smtp.refused', { session: c.id, client: c.ip, ...replyFields(r) });
          cb(smtpError(r));
        },
        (e: unknown) => cb(smtpError(failure(c, e))),
      );
  };

  const onSecure = (socket: TLSSocket, s: SMTPServerSession, cb: (err?: Error | null) => void) => {
    const c = byId.get(s.id);
    if (c !== undefined) {
      const cipher = socket.getCipher();
      emit('smtp.tls', {
        session: c.id,
        client: c.ip,
        tls: `${socket.getProtocol() ?? ''} ${cipher?.name ?? ''}`.trim(),
      });
    }
    cb();
  };

  const onMailFrom = (
    parsed: SMTPServerAddress,
    s: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): void => {
    const c = connOf(s);
    if (cfg.requireTls && !s.secure) {
      return cb(
        smtpError(
          reply(530, '5.7.0', 'Must issue a STARTTLS command first', 'NMTP_ERR_GW_TLS_REQUIRED'),
        ),
      );
    }
    if (c.line === undefined) {
      return cb(
        smtpError(
          reply(553, '5.1.7', 'Error: sender address is not UTF-8', 'NMTP_ERR_ADDR_LEGACY_SYNTAX'),
        ),
      );
    }
    const mail = mailFromOf(pathOf(c.line) ?? parsed.address, parsed.args);
    if (!mail.smtputf8 && !isAscii(mail.address)) {
      return cb(smtpError(needsUtf8('sender')));
    }
    o.handler.mailFrom(sessionOf(c, s), mail).then(
      (r) => {
        if (r !== undefined && r.code >= 300) return cb(smtpError(r));
        txs.set(s.envelope, { mail, accepted: [], keys: [] });
        cb();
      },
      (e: unknown) => cb(smtpError(failure(c, e))),
    );
  };

  const onRcptTo = (
    parsed: SMTPServerAddress,
    s: SMTPServerSession,
    cb: (err?: Error | null) => void,
  ): void => {
    const c = connOf(s);
    const tx = txs.get(s.envelope);
    if (tx === undefined) {
      return cb(smtpError(reply(503, '5.5.1', 'Error: need MAIL command')));
    }
    if (c.line === undefined) {
      return cb(
        smtpError(
          reply(
            553,
            '5.1.3',
            'Error: recipient address is not UTF-8',
            'NMTP_ERR_ADDR_LEGACY_SYNTAX',
          ),
        ),
      );
    }
    const rcpt = rcptToOf(pathOf(c.line) ?? parsed.address, parsed.args);
    if (!tx.mail.smtputf8 && !isAscii(rcpt.address)) {
      return cb(smtpError(needsUtf8('recipient')));
    }
    const envelope = s.envelope;
    o.handler.rcptTo(sessionOf(c, s), tx.mail, rcpt, [...tx.accepted]).then(
      (r) => {
        if ('reply' in r && r.reply.code >= 300) return cb(smtpError(r.reply));
        if (txs.get(envelope) !== tx) return cb(smtpError(reply(503, '5.5.1', 'Error: reset')));
        const accepted: AcceptedRcpt = { ...rcpt, note: 'note' in r ? r.note : undefined };
        // smtp-server keeps one entry per address (lower-cased), a repeat replacing it.
        const key = parsed.address.toLowerCase();
        const at = tx.keys.indexOf(key);
        if (at >= 0) tx.accepted[at] = accepted;
        else {
          tx.accepted.push(accepted);
          tx.keys.push(key);
        }
        cb();
      },
      (e: unknown) => cb(smtpError(failure(c, e))),
    );
  };

  const onData = (
    stream: SMTPServerDataStream,
    s: SMTPServerSession,
    cb: (err?: Error | null, message?: string | (string | Error)[]) => void,
  ): void => {
    const c = connOf(s);
    const tx = txs.get(s.envelope);
    if (tx === undefined || tx.accepted.length === 0) {
      stream.resume();
      return cb(smtpError(reply(503, '5.5.1', 'Error: need RCPT command')));
    }
    const phase = watchData(
      stream,
      {
        messageSize: L.messageSize,
        commandTimeout: L.commandTimeout,
        dataTimeout: L.dataTimeout,
        minDataRate: L.minDataRate,
      },
      name,
      (v) => {
        emit('smtp.timeout', { session: c.id, client: c.ip, detail: v.detail });
        // send(421) closes the connection.
        c.conn.send(421, replyText(v.reply));
      },
    );
    const rcpts = [...tx.accepted];
    const handled = o.handler.data(sessionOf(c, s), tx.mail, rcpts, phase.message).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    void handled.then(() => phase.handlerDone());
    const refused = (r: SmtpReply): void =>
      emit('smtp.message.refused', {
        session: c.id,
        client: c.ip,
        from: tx.mail.address,
        rcpts: rcpts.length,
        size: phase.size(),
        ...replyFields(r),
      });

    void phase.done
      .then(async () => {
        const v = phase.verdict();
        if (v !== undefined) {
          // The listener's verdict: the handler never saw the whole message, and whatever it
          // answers is not sent (nor waited for).
          if (v.kind !== 'slow') refused(v.reply);
          if (v.kind === 'line-end') {
            // Nothing pipelined behind the message is acted on: the connection closes.
            if (c.conn._parser !== false) c.conn._parser.isClosed = true;
            cb(smtpError(v.reply));
            c.conn.close();
            return;
          }
          return cb(smtpError(v.reply));
        }
        const h = await handled;
        if (!h.ok) {
          const r = failure(c, h.e);
          refused(r);
          return cb(smtpError(r));
        }
        if (o.protocol === 'lmtp') {
          let list = isReplyList(h.r) ? [...h.r] : rcpts.map(() => h.r as SmtpReply);
          if (list.length !== rcpts.length) {
            const r = failure(
              c,
              new Error(`handler gave ${list.length} replies for ${rcpts.length} recipients`),
            );
            list = rcpts.map((_, i) => list[i] ?? r);
          }
          if (list.some((r) => r.code < 300)) c.messages++;
          return cb(
            null,
            list.map((r) => (r.code < 300 ? replyText(r) : smtpError(r))),
          );
        }
        let one: SmtpReply;
        if (!isReplyList(h.r)) one = h.r;
        else if (h.r.length === 1) one = h.r[0]!;
        else one = failure(c, new Error(`handler gave ${h.r.length} replies to an SMTP DATA`));
        if (one.code >= 300) return cb(smtpError(one));
        c.messages++;
        cb(null, replyText(one));
      })
      .catch((e: unknown) => {
        // A bug of ours after the dot: no reply can be trusted any more.
        failure(c, e);
        c.conn.close();
      });
  };

  const needsUtf8 = (who: 'sender' | 'recipient'): SmtpReply =>
    reply(
      553,
      '5.6.7',
      `Error: non-ASCII ${who} address needs SMTPUTF8`,
      'NMTP_ERR_GW_SMTPUTF8_REQUIRED',
    );

  const greetMs = Math.max(0, cfg.greetPause * 1000);
  const commandMs = L.commandTimeout > 0 ? Math.max(1, L.commandTimeout * 1000) : NEVER_MS;
  const smtp = new SMTPServer({
    name,
    lmtp: o.protocol === 'lmtp',
    logger: false,
    size: L.messageSize,
    maxRecipients: L.recipients,
    socketTimeout: Math.min(commandMs, NEVER_MS),
    heloResponse: '%s',
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hideSTARTTLS: o.tls === undefined,
    authOptional: true,
    disabledCommands: o.tls === undefined ? ['AUTH', 'STARTTLS'] : ['AUTH'],
    disableReverseLookup: o.reverseLookup === false,
    ...(o.tls === undefined
      ? {}
      : { key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.2' as const }),
    onConnect,
    onSecure,
    onMailFrom,
    onRcptTo,
    onData,
    onClose: (s: SMTPServerSession) => {
      const c = byId.get(s.id);
      if (c !== undefined) finish(c);
    },
  });
  // Connection errors are reported per connection (below); the server's copy is noise.
  smtp.on('error', () => undefined);

  /** A connection is gone: its counts are released once (socket close or smtp-server's). */
  const finish = (c: Conn): void => {
    if (c.closed) return;
    c.closed = true;
    live--;
    const left = (perClient.get(c.ip) ?? 1) - 1;
    if (left <= 0) perClient.delete(c.ip);
    else perClient.set(c.ip, left);
    raw.delete(c.socket);
    byId.delete(c.id);
    if (live === 0) for (const f of idle.splice(0)) f();
    emit('smtp.disconnect', {
      session: c.id,
      client: c.ip,
      messages: c.messages,
      seconds: (performance.now() - c.opened) / 1000,
    });
  };

  const admit = (socket: Socket): void => {
    socket.on('error', () => undefined);
    const ip = normalizeIp(socket.remoteAddress ?? '');
    // A flood beyond twice the limit costs a socket for a moment and no reply.
    if (raw.size >= 2 * L.connections) {
      socket.destroy();
      return;
    }
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
    const id = randomBytes(9).toString('base64url');
    const mine = perClient.get(ip) ?? 0;
    if (live >= L.connections || mine >= L.connectionsPerClient) {
      const r = reply(
        421,
        '4.7.0',
        mine >= L.connectionsPerClient
          ? `${name} Error: too many connections from ${ip}`
          : `${name} Error: too many connections`,
        'NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS',
      );
      emit('smtp.refused', { session: id, client: ip, ...replyFields(r) });
      socket.end(`421 ${replyText(r)}\r\n`, () => socket.destroy());
      return;
    }
    live++;
    perClient.set(ip, mine + 1);
    emit('smtp.connect', {
      session: id,
      client: ip,
      clientPort: socket.remotePort ?? 0,
      protocol: o.protocol,
    });
    smtp.connect(socket, { id });
    // smtp-server adds the connection to its set synchronously; it is the newest one.
    let conn: SMTPConnection | undefined;
    for (const x of smtp.connections) conn = x;
    const c: Conn = {
      id,
      conn: conn!,
      socket,
      ip,
      opened: performance.now(),
      line: undefined,
      pendingVerb: undefined,
      helo: undefined,
      messages: 0,
      closed: false,
    };
    socket.once('close', () => finish(c));
    if (conn === undefined || conn.id !== id || conn._socket !== socket) {
      // smtp-server's internals are not what this adapter was written against.
      emit('gateway.error', {
        service: 'smtp-in',
        err: 'NMTP_ERR_INTERNAL',
        detail: 'smtp-server connection not found',
      });
      socket.destroy();
      return;
    }
    byId.set(id, c);
    installHooks(c);
    greetAfter(conn, greetMs);
  };

  /**
   * smtp-server's init() always waits 100 ms before connectionReady() (reverse lookup,
   * onConnect, then the 220), to catch early talkers: 100 ms of latency per session that
   * Postfix's smtpd does not have. Its timer calls `this.connectionReady()` when it fires,
   * so the instance's own property, set here, turns that call into nothing, and the real
   * one runs after `greetPause` instead. Until connectionReady's onConnect has answered,
   * `_ready` is false and any command gets 421 "You talk too soon" (which closes).
   */
  const greetAfter = (conn: SMTPConnection, ms: number): void => {
    // Implicit TLS (not configured here): init() sets its timer only after the handshake.
    if (conn.needsUpgrade) return;
    const ready = conn.connectionReady.bind(conn);
    conn.connectionReady = () => undefined;
    if (ms <= 0) return ready();
    const t = setTimeout(() => {
      if (!conn._closing && !conn._closed) ready();
    }, ms);
    // Like smtp-server's own timer: a pending greeting keeps no process alive.
    t.unref();
  };

  const installHooks = (c: Conn): void => {
    const conn = c.conn;
    guardConnection(conn, {
      line: (rawLine) => {
        c.line = lineText(rawLine);
        const words = (c.line ?? rawLine.toString('latin1')).trim().split(/\s+/);
        c.pendingVerb = words[0]?.toUpperCase();
        if (/^(HELO|EHLO|LHLO)$/.test(c.pendingVerb ?? '') && words.length === 2) {
          c.helo = words[1];
        }
      },
      fault: (fault) => {
        const r = reply(
          521,
          '5.5.2',
          `${name} Error: ${fault} in command line refused`,
          'NMTP_ERR_GW_BARE_LINE_END',
        );
        c.pendingVerb = undefined;
        emit('smtp.refused', { session: c.id, client: c.ip, ...replyFields(r) });
        conn.send(r.code, replyText(r));
        conn.close();
      },
    });
    const send = conn.send;
    conn.send = function (code, data, context): void {
      let text = data;
      if (code === 421 && text === 'Timeout - closing connection') {
        // smtp-server's idle timer (commandTimeout): same reply as the DATA timers.
        text = replyText(
          reply(421, '4.4.2', `${name} Error: timeout exceeded`, 'NMTP_ERR_GW_TIMEOUT'),
        );
        emit('smtp.timeout', {
          session: c.id,
          client: c.ip,
          detail: `no command within ${L.commandTimeout} s`,
        });
      }
      if (code === 421 && text === `${name} You talk too soon`) {
        // smtp-server's early-talker refusal (greetPause): one enhanced code, as every reply.
        const r = reply(421, '4.7.0', `${name} Error: you talk too soon`);
        text = replyText(r);
        emit('smtp.refused', { session: c.id, client: c.ip, ...replyFields(r) });
      }
      // Ours (and the handler's) start with their enhanced code: no second one.
      const own = typeof text === 'string' && ENHANCED_PREFIX.test(text);
      const ctx = own ? false : context;
      const verb = c.pendingVerb;
      c.pendingVerb = undefined;
      if (code >= 400 && code !== 421 && (verb === 'MAIL' || verb === 'RCPT')) {
        const parts = (own ? splitReplyText(text as string) : undefined) ?? {
          enhanced: conn._getEnhancedStatusCode(code, ctx),
          text: Array.isArray(text) ? text.join(' ') : (text ?? ''),
        };
        const path = (c.line === undefined ? undefined : pathOf(c.line)) ?? '';
        const common = {
          session: c.id,
          client: c.ip,
          ...(c.helo === undefined ? {} : { helo: c.helo }),
          code,
          ...parts,
        };
        if (verb === 'MAIL') emit('smtp.mail.refused', { ...common, from: path });
        else {
          const from = txs.get(conn.session.envelope)?.mail.address;
          emit('smtp.rcpt.refused', {
            ...common,
            rcpt: path,
            ...(from === undefined ? {} : { from }),
          });
        }
      }
      send.call(this, code, text, ctx);
    };
    conn.on('error', (err: Error & { meta?: unknown }) => {
      if (err.meta !== undefined) {
        emit('smtp.tls.failed', { session: c.id, client: c.ip, detail: err.message });
      }
    });
  };

  const server: Server = createServer(admit);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : o.port;

  return {
    host: o.host,
    port,
    connections: () => ({ open: live, perClient: new Map(perClient) }),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const bye = replyText(reply(421, '4.3.2', `${name} Service shutting down`));
      for (const c of byId.values()) c.conn.send(421, bye);
      // Clients that do not close their side within a second are cut off.
      const force = setTimeout(() => {
        for (const s of raw) s.destroy();
      }, 1000);
      await closed;
      // The server's 'close' can come before the sockets' own 'close' listeners ran.
      if (live > 0) await new Promise<void>((resolve) => idle.push(resolve));
      clearTimeout(force);
    },
  };
}
