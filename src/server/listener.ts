/**
 * The transport host's listener: implicit TLS on every connection (§60.2: "Connections use
 * implicit TLS … from the first octet; there is no plaintext phase and no STARTTLS, so
 * there is nothing to downgrade"), a connection limit overall and per client address, and
 * one session runner per connection. Plaintext only when explicitly asked for AND bound
 * to a loopback address ("Plaintext is permitted only for tests on loopback, by explicit
 * configuration").
 */
import { createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { NmtpError } from '../core/errors/index.ts';
import { encodeReply } from '../core/wire/index.ts';

export interface ListenOptions {
  readonly host: string;
  /** 0 = an ephemeral port (read it from `address`). */
  readonly port: number;
  /** PEM certificate chain and key files. Required unless `plaintext`. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** Loopback tests only; refused for any other address. */
  readonly plaintext?: boolean;
  readonly maxConnections?: number;
  readonly maxPerIp?: number;
  /** A TLS handshake that takes longer than this is dropped (slowloris before the greeting). */
  readonly handshakeTimeoutMs?: number;
}

export type SessionRunner = (socket: Duplex, ip: string) => Promise<void>;

export interface Listening {
  readonly host: string;
  readonly port: number;
  /** Stops accepting, ends every open session, resolves when all are closed. */
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export async function listen(o: ListenOptions, run: SessionRunner): Promise<Listening> {
  if (o.plaintext === true && !isLoopback(o.host)) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'plaintext is allowed only on loopback');
  }
  const maxConnections = o.maxConnections ?? 1000;
  const maxPerIp = o.maxPerIp ?? 20;
  const perIp = new Map<string, number>();
  const open = new Set<Duplex>();
  let total = 0;

  const accept = (socket: Duplex, raw: Socket): void => {
    const ip = raw.remoteAddress ?? '';
    const n = perIp.get(ip) ?? 0;
    if (total >= maxConnections || n >= maxPerIp) {
      // Bounded cost for "a client that opens 1,000 connections": one line, then close.
      socket.end(
        encodeReply({
          code: 421,
          enhanced: '4.7.0',
          params: { err: 'NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS' },
          text: '',
        }),
      );
      socket.on('error', () => undefined);
      return;
    }
    total++;
    perIp.set(ip, n + 1);
    open.add(socket);
    void run(socket, ip).finally(() => {
      total--;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left === 0) perIp.delete(ip);
      else perIp.set(ip, left);
      open.delete(socket);
    });
  };

  let server: Server;
  if (o.plaintext === true) {
    server = createTcpServer((s) => accept(s, s));
  } else {
    if (o.certFile === undefined || o.keyFile === undefined) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'a TLS listener needs a certificate and key');
    }
    const tls = createTlsServer(
      {
        cert: readFileSync(o.certFile),
        key: readFileSync(o.keyFile),
        // "TLS 1.3 or later" (§60.2).
        minVersion: 'TLSv1.3',
        handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
      },
      (s) => accept(s, s),
    );
    tls.on('tlsClientError', () => undefined);
    server = tls;
  }
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : o.port;
  return {
    host: o.host,
    port,
    async close() {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of open) s.destroy();
      await done;
    },
  };
}
