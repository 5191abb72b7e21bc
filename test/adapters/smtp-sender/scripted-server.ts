/**
 * A scripted SMTP server over node:net on 127.0.0.1 and an ephemeral port, for the connection
 * pool's tests: it records every connection (its command lines and the messages it received,
 * dot-unstuffed), how many are open at once, and lets a test choose the reply to any command
 * of any connection, drop a connection without a reply, or answer 421 and close.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { MessageSource } from '../../../src/client/source.ts';

/** A legacy message in memory (`full` view) in reused pieces of `max` octets, as the queue gives. */
export function rawSource(bytes: Uint8Array): MessageSource {
  return {
    size: bytes.length,
    layout: () => Promise.reject(new Error('not framed')),
    viewLength: async () => bytes.length,
    async *pieces(_view, max = 64 * 1024) {
      const buf = new Uint8Array(max);
      for (let i = 0; i < bytes.length; i += max) {
        const n = Math.min(max, bytes.length - i);
        buf.set(bytes.subarray(i, i + n));
        yield buf.subarray(0, n);
      }
    },
  };
}

export interface ScriptedConnection {
  /** 1 for the first connection accepted. */
  readonly index: number;
  readonly commands: string[];
  readonly messages: Buffer[];
  /** Resolves once the socket is closed (by either side). */
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

/** What the script sees: the connection, the command line ('.' for the end of data). */
export interface ScriptedCommand {
  readonly conn: ScriptedConnection;
  readonly line: string;
  readonly verb: string;
  /** Transactions begun on this connection before this command's (MAIL FROM counts). */
  readonly transaction: number;
}

export interface ScriptedOptions {
  /** EHLO keywords (default PIPELINING, 8BITMIME, SIZE 10240000, ENHANCEDSTATUSCODES). */
  readonly extensions?: readonly string[];
  /**
   * The reply to a command, or 'drop' to close the connection without one; undefined keeps
   * the default. A 421 reply closes the connection after it (RFC 5321 §3.8).
   */
  readonly reply?: (c: ScriptedCommand) => string | 'drop' | undefined;
  /** AUTH PLAIN is offered and accepted for this user and password. */
  readonly auth?: { readonly user: string; readonly pass: string };
}

export interface ScriptedServer {
  readonly port: number;
  readonly connections: ScriptedConnection[];
  /** The most connections open at the same time. */
  maxOpen(): number;
  /** Connections open now. */
  open(): number;
  close(): Promise<void>;
}

export async function startScripted(o: ScriptedOptions = {}): Promise<ScriptedServer> {
  const connections: ScriptedConnection[] = [];
  const sockets = new Set<Socket>();
  let max = 0;
  const extensions = o.extensions ?? [
    'PIPELINING',
    '8BITMIME',
    'SIZE 10240000',
    'ENHANCEDSTATUSCODES',
    ...(o.auth === undefined ? [] : ['AUTH PLAIN']),
  ];
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    max = Math.max(max, sockets.size);
    let isClosed = false;
    const closed = new Promise<void>((resolve) =>
      sock.on('close', () => {
        isClosed = true;
        sockets.delete(sock);
        resolve();
      }),
    );
    const conn: ScriptedConnection = {
      index: connections.length + 1,
      commands: [],
      messages: [],
      closed,
      isClosed: () => isClosed,
    };
    connections.push(conn);
    sock.on('error', () => undefined);
    // Pipelined replies leave at once (Nagle would hold each behind a delayed ACK).
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let inData = false;
    let inTransaction = false;
    let accepted = 0;
    let transaction = 0;
    /** Answers, unless the script says otherwise; false once the connection is gone. */
    const answer = (line: string, verb: string, fallback: string): boolean => {
      const r = o.reply?.({ conn, line, verb, transaction }) ?? fallback;
      if (r === 'drop') {
        sock.destroy();
        return false;
      }
      sock.write(r + '\r\n');
      if (r.startsWith('421')) {
        sock.end();
        return false;
      }
      return r.startsWith('2') || r.startsWith('3');
    };
    sock.write('220 scripted.test ESMTP\r\n');
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (!sock.destroyed && sock.writable) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const wire = buf.subarray(0, end + 2);
          buf = buf.subarray(end + 5);
          inData = false;
          inTransaction = false;
          // RFC 5321 §4.5.2: a leading dot of a line is removed.
          conn.messages.push(
            Buffer.from(wire.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1'),
          );
          conn.commands.push('.');
          answer('.', '.', '250 2.0.0 Ok: queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 2);
        conn.commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') {
          const lines = ['scripted.test', ...extensions];
          const r = o.reply?.({ conn, line, verb, transaction });
          if (r === 'drop') return void sock.destroy();
          sock.write(
            r !== undefined
              ? r + '\r\n'
              : lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''),
          );
        } else if (verb === 'AUTH') {
          const [, mech, initial] = line.split(' ');
          const [, user, pass] = Buffer.from(initial ?? '', 'base64')
            .toString()
            .split('\0');
          const ok =
            mech === 'PLAIN' &&
            user === o.auth?.user &&
            pass === o.auth?.pass &&
            o.auth !== undefined;
          answer(
            line,
            verb,
            ok ? '235 2.7.0 Authentication successful' : '535 5.7.8 Authentication failed',
          );
        } else if (verb === 'MAIL') {
          transaction++;
          accepted = 0;
          inTransaction = answer(line, verb, '250 2.1.0 Ok');
        } else if (verb === 'RCPT') {
          const ok = answer(
            line,
            verb,
            inTransaction ? '250 2.1.5 Ok' : '503 5.5.1 Error: need MAIL command',
          );
          if (ok && inTransaction) accepted++;
        } else if (verb === 'DATA') {
          inData = answer(
            line,
            verb,
            inTransaction && accepted > 0
              ? '354 End data with <CR><LF>.<CR><LF>'
              : '554 5.5.1 Error: no valid recipients',
          );
        } else if (verb === 'RSET') {
          inTransaction = false;
          answer(line, verb, '250 2.0.0 Ok');
        } else if (verb === 'NOOP') answer(line, verb, '250 2.0.0 Ok');
        else if (verb === 'QUIT') {
          sock.end('221 2.0.0 Bye\r\n');
          return;
        } else answer(line, verb, '502 5.5.2 Error: command not recognized');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    connections,
    maxOpen: () => max,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
