/**
 * What the SMTP listener tests share: a raw SMTP client over a real socket (writes octets
 * exactly as given, reads whole replies), STARTTLS on it with node:tls, a scripted
 * SmtpInHandler that records what reaches it, and the listener's configuration.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { DEFAULT_CONFIG, type GatewayConfig } from '../../../src/gateway/config.ts';
import type {
  AcceptedRcpt,
  MailFrom,
  RcptTo,
  SmtpInHandler,
  SmtpReply,
  SmtpSession,
} from '../../../src/gateway/ports.ts';

export type SmtpConfig = GatewayConfig['smtp'];

export function smtpConfig(
  limits: Partial<SmtpConfig['limits']> = {},
  rest: Partial<Omit<SmtpConfig, 'limits'>> = {},
): SmtpConfig {
  return { ...DEFAULT_CONFIG.smtp, ...rest, limits: { ...DEFAULT_CONFIG.smtp.limits, ...limits } };
}

/** A client that reads replies line by line; `closed` settles when the server hangs up. */
export class RawClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;
  /** Every line received so far. */
  readonly received: string[] = [];

  private constructor(public socket: Socket | TLSSocket) {
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.ended = true;
        this.wake();
        resolve();
      };
      socket.once('close', done);
    });
    this.listen(socket);
  }

  private listen(s: Socket | TLSSocket): void {
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static async open(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress });
    s.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new RawClient(s);
  }

  /** The next complete reply (all its lines, joined by "\n"); `undefined` once closed. */
  async reply(): Promise<string | undefined> {
    for (;;) {
      const lines = this.buf.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3}(?: |$)/.test(lines[i]!)) {
          const reply = lines.slice(0, i + 1);
          this.buf = lines.slice(i + 1).join('\r\n');
          this.received.push(...reply);
          return reply.join('\n');
        }
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Replies until the server closes. */
  async rest(): Promise<string[]> {
    const out: string[] = [];
    for (let r = await this.reply(); r !== undefined; r = await this.reply()) out.push(r);
    return out;
  }

  write(octets: string | Uint8Array): void {
    this.socket.write(typeof octets === 'string' ? Buffer.from(octets, 'utf8') : octets);
  }

  /** One octet per write, each after the previous one left (exercises every split). */
  async trickle(octets: string): Promise<void> {
    for (const b of Buffer.from(octets, 'utf8')) {
      if (this.ended) return;
      await new Promise<void>((resolve) => this.socket.write(Uint8Array.of(b), () => resolve()));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  async cmd(line: string): Promise<string | undefined> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** STARTTLS already answered 220: the rest of the session runs over TLS. */
  async startTls(ca: Buffer): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const t = tlsConnect({ socket: plain, servername: 'localhost', ca });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
    });
    this.socket = t;
    this.listen(t);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface DataCall {
  readonly session: SmtpSession;
  readonly mail: MailFrom;
  readonly rcpts: readonly AcceptedRcpt[];
  /** The whole message, when the handler read it to its end. */
  bytes?: Buffer;
  /** What the message stream threw, when it did. */
  error?: unknown;
}

/** What reached the scripted handler. */
export interface Seen {
  readonly connects: Omit<SmtpSession, 'helo' | 'tls' | 'user'>[];
  readonly mails: { session: SmtpSession; mail: MailFrom }[];
  readonly rcpts: { session: SmtpSession; rcpt: RcptTo; acceptedBefore: number }[];
  readonly data: DataCall[];
}

export const ok = (text = 'queued'): SmtpReply => ({ code: 250, enhanced: '2.0.0', text });

/**
 * A scripted SmtpInHandler: accepts everything (notes are the addresses), reads the whole
 * message, answers `ok` (LMTP: one per recipient); `script` overrides any method.
 */
export function scripted(script: Partial<SmtpInHandler> = {}): {
  handler: SmtpInHandler;
  seen: Seen;
} {
  const seen: Seen = { connects: [], mails: [], rcpts: [], data: [] };
  const base: SmtpInHandler = {
    async connect(s) {
      seen.connects.push(s);
      return undefined;
    },
    async mailFrom(session, mail) {
      seen.mails.push({ session, mail });
      return undefined;
    },
    async rcptTo(session, _m, rcpt, accepted) {
      seen.rcpts.push({ session, rcpt, acceptedBefore: accepted.length });
      return { note: `note:${rcpt.address}` };
    },
    async data(session, mail, rcpts, message) {
      const call: DataCall = { session, mail, rcpts };
      seen.data.push(call);
      const parts: Uint8Array[] = [];
      try {
        for await (const c of message) parts.push(c);
      } catch (e) {
        call.error = e;
        throw e;
      }
      call.bytes = Buffer.concat(parts);
      return session.protocol === 'lmtp' ? rcpts.map((r) => ok(`${r.address} delivered`)) : ok();
    },
  };
  const handler: SmtpInHandler = {
    connect: (s) => (script.connect ?? base.connect)(s),
    mailFrom: (s, m) => {
      if (script.mailFrom === undefined) return base.mailFrom(s, m);
      seen.mails.push({ session: s, mail: m });
      return script.mailFrom(s, m);
    },
    rcptTo: (s, m, r, a) => {
      if (script.rcptTo === undefined) return base.rcptTo(s, m, r, a);
      seen.rcpts.push({ session: s, rcpt: r, acceptedBefore: a.length });
      return script.rcptTo(s, m, r, a);
    },
    data: (s, m, r, msg) => (script.data ?? base.data)(s, m, r, msg),
  };
  return { handler, seen };
}

/** "250 2.1.0 Accepted" → one enhanced code right after the code, never two. */
export function oneEnhanced(reply: string | undefined): boolean {
  return (
    reply !== undefined &&
    reply
      .split('\n')
      .every((l) => /^\d{3}[ -][245]\.\d{1,3}\.\d{1,3} (?![245]\.\d{1,3}\.\d{1,3}( |$))/.test(l))
  );
}
