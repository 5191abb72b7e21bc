/**
 * Real SMTP servers on 127.0.0.1 and an ephemeral port for the SMTP deliverer's tests: an
 * smtp-server sink that offers the extensions a test asks for, answers each recipient as
 * told, and records every transaction (the MAIL and RCPT parameters as received) and how
 * many connections it saw; and a server that only greets with a given reply and hangs up
 * (a busy or refusing MX).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface SinkTransaction {
  readonly mailFrom: string;
  /** MAIL FROM parameters as received (upper-case names; a flag is `true`). */
  readonly mailArgs: Readonly<Record<string, string | boolean>>;
  readonly rcptTo: readonly string[];
  /** RCPT TO parameters per recipient, in order. */
  readonly rcptArgs: readonly Readonly<Record<string, string | boolean>>[];
  readonly data: Buffer;
  /** Whether the session was under TLS (STARTTLS) when the message came. */
  readonly secure: boolean;
}

export interface Sink {
  readonly port: number;
  readonly transactions: SinkTransaction[];
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export interface SinkOptions {
  /** Offered in EHLO (all by default, SIZE 10240000); false hides the extension. */
  readonly smtputf8?: boolean;
  readonly eightBitMime?: boolean;
  readonly dsn?: boolean;
  /** SIZE's value; false: SIZE not offered. */
  readonly size?: number | false;
  /** Offer STARTTLS (smtp-server's built-in self-signed certificate); default false. */
  readonly starttls?: boolean;
  /** An error reply for a recipient ("550 5.1.1 no such user"), or undefined to accept it. */
  readonly rcpt?: (address: string) => string | undefined;
}

type Args = Record<string, string | boolean>;

const smtpError = (reply: string): Error => {
  const m = /^(\d{3}) (.*)$/.exec(reply)!;
  return Object.assign(new Error(m[2]), { responseCode: Number(m[1]) });
};

export async function startSink(o: SinkOptions = {}): Promise<Sink> {
  const transactions: SinkTransaction[] = [];
  let connections = 0;
  const server = new SMTPServer({
    secure: false,
    disabledCommands: o.starttls === true ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    banner: 'sink.test',
    hideSMTPUTF8: o.smtputf8 === false,
    hide8BITMIME: o.eightBitMime === false,
    hideDSN: o.dsn === false,
    ...(o.size === false ? { hideSize: true } : { size: o.size ?? 10_240_000 }),
    onConnect(_session, cb) {
      connections++;
      cb();
    },
    onRcptTo(address, _session, cb) {
      const refusal = o.rcpt?.(address.address);
      cb(refusal === undefined ? undefined : smtpError(refusal));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        const from = env.mailFrom === false ? undefined : env.mailFrom;
        transactions.push({
          mailFrom: from?.address ?? '',
          mailArgs: ((from as { args?: Args } | undefined)?.args ?? {}) as Args,
          rcptTo: env.rcptTo.map((r) => r.address),
          rcptArgs: env.rcptTo.map((r) => ((r as { args?: Args }).args ?? {}) as Args),
          data: Buffer.concat(chunks),
          secure: session.secure,
        });
        cb();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    transactions,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A server that greets every connection with `reply` (e.g. "421 4.3.2 busy") and closes it. */
export async function startGreeter(reply: string): Promise<{
  readonly port: number;
  connections(): number;
  close(): Promise<void>;
}> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.end(`${reply}\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
