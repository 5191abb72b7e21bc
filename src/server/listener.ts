/**
 * The transport host's listener: implicit TLS on every connection (§60.2: "Connections use
 * implicit TLS … from the first octet; there is no plaintext phase and no STARTTLS, so
 * there is nothing to downgrade"), a connection limit overall and per client address, a
 * handshake deadline, and one session runner per connection. Plaintext only when
 * explicitly asked for AND bound to a loopback address ("Plaintext is permitted only for
 * tests on loopback, by explicit configuration").
 *
 * Abuse bounds (§60.9 "Abuse and limits"): every TCP connection is counted from accept to
 * close, so connections stuck in the TLS handshake count too. Sessions are limited to
 * `maxConnections` in total and `maxPerIp` per client address; a connection beyond that
 * gets one coded 421 line instead of a greeting. Open connections (sessions, handshakes,
 * refusals being written) are limited to twice those numbers; beyond that a connection is
 * closed at accept, before any TLS work, so a flood costs a socket for a moment and no
 * handshake.
 */
import { createServer as createTcpServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
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
  /** Sessions in total (default 1000); open TCP connections are capped at twice this. */
  readonly maxConnections?: number;
  /** Sessions per client address (default 20); open TCP connections at twice this. */
  readonly maxPerIp?: number;
  /**
   * A TLS handshake not finished this long after accept is dropped (default 10 000 ms): a
   * deadline, not an idle timer, so a ClientHello trickled one octet at a time is dropped too.
   */
  readonly handshakeTimeoutMs?: number;
}

export type SessionRunner = (socket: Duplex, ip: string) => Promise<void>;

/** What the listener holds right now. */
export interface ConnectionCounts {
  /** Open TCP connections: in the TLS handshake, in a session, or being refused. */
  readonly open: number;
  /** Sessions running (greeting sent, not yet closed). */
  readonly sessions: number;
  /** Open TCP connections per client address (addresses with none are absent). */
  readonly perIp: ReadonlyMap<string, number>;
}

export interface Listening {
  readonly host: string;
  readonly port: number;
  /** A snapshot of the connection counts (operators' metrics; tests check the release). */
  connections(): ConnectionCounts;
  /** Stops accepting, ends every open connection, resolves when all are closed. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_CONNECTIONS = 1000;
export const DEFAULT_MAX_PER_IP = 20;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The one line a refused connection gets instead of a greeting. */
const TOO_MANY = encodeReply({
  code: 421,
  enhanced: '4.7.0',
  params: { err: 'NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS' },
  text: '',
});

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

const increment = (m: Map<string, number>, k: string): void => {
  m.set(k, (m.get(k) ?? 0) + 1);
};
const decrement = (m: Map<string, number>, k: string): void => {
  const left = (m.get(k) ?? 1) - 1;
  if (left <= 0) m.delete(k);
  else m.set(k, left);
};

/** Refuses options no listener may run with; callers check before acquiring anything. */
export function checkListenOptions(o: ListenOptions): void {
  // "a server MUST NOT offer a plaintext listener except when explicitly configured for a
  // loopback address" (§60.15).
  if (o.plaintext === true && !isLoopback(o.host)) {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'plaintext is allowed only on loopback');
  }
}

export async function listen(o: ListenOptions, run: SessionRunner): Promise<Listening> {
  checkListenOptions(o);
  const maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const maxPerIp = o.maxPerIp ?? DEFAULT_MAX_PER_IP;
  const handshakeTimeout = o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  /** Open TCP connections per address, and every one of them (to end them on close()). */
  const openPerIp = new Map<string, number>();
  const raw = new Set<Socket>();
  /** Sessions per address. */
  const sessionsPerIp = new Map<string, number>();
  const live = new Set<Duplex>();
  /** Handshake deadlines of TLS connections, by peer address and port. */
  const handshaking = new Map<string, NodeJS.Timeout>();
  const peer = (s: Socket): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;

  /** Every TCP connection, at accept: counted until it closes, or closed at once. */
  const admit = (socket: Socket, tls: boolean): boolean => {
    // A reset peer is an ordinary event here, never a crash.
    socket.on('error', () => undefined);
    const ip = socket.remoteAddress ?? '';
    // Hard ceilings: twice the session limits. Beyond them nothing is spent on the
    // connection — no handshake, no reply (a client sees the connection closed).
    if ((openPerIp.get(ip) ?? 0) >= 2 * maxPerIp || raw.size >= 2 * maxConnections) {
      socket.destroy();
      return false;
    }
    increment(openPerIp, ip);
    raw.add(socket);
    // TCP_NODELAY: the session writes each reply as it is decided, often several small ones
    // in a row (pipelined RCPTs and DATA); Nagle's algorithm would hold each behind the
    // client's delayed ACK (≈ 40 ms on Linux). Set on the TCP socket, it covers the TLS
    // socket wrapping it.
    socket.setNoDelay(true);
    const key = peer(socket);
    let deadline: NodeJS.Timeout | undefined;
    if (tls) {
      // Our own deadline from accept, cleared when the handshake ends (see `secure`): node's
      // handshakeTimeout is a socket timer, whose restarts are node's business.
      deadline = setTimeout(() => socket.destroy(), handshakeTimeout);
      deadline.unref();
      handshaking.set(key, deadline);
    }
    socket.once('close', () => {
      decrement(openPerIp, ip);
      raw.delete(socket);
      if (deadline !== undefined) {
        clearTimeout(deadline);
        if (handshaking.get(key) === deadline) handshaking.delete(key);
      }
    });
    return true;
  };

  /** The handshake of a TLS connection ended: its deadline is off. */
  const secure = (s: Socket): void => {
    const key = peer(s);
    clearTimeout(handshaking.get(key));
    handshaking.delete(key);
  };

  /** A connection ready for NMTP (after the handshake): a session, or one 421 line. */
  const accept = (socket: Duplex, ip: string): void => {
    socket.on('error', () => undefined);
    if (live.size >= maxConnections || (sessionsPerIp.get(ip) ?? 0) >= maxPerIp) {
      // Bounded cost for "a client that opens 1,000 connections": one line, then close.
      // The peer may never read it; destroy once it is flushed (or the peer is gone).
      socket.end(TOO_MANY, () => socket.destroy());
      return;
    }
    live.add(socket);
    increment(sessionsPerIp, ip);
    void run(socket, ip)
      .catch(() => undefined)
      .finally(() => {
        live.delete(socket);
        decrement(sessionsPerIp, ip);
        // The session loop ends the socket; make sure it is gone whatever happened.
        socket.destroy();
      });
  };

  let server: Server;
  if (o.plaintext === true) {
    server = createTcpServer((s) => {
      if (admit(s, false)) accept(s, s.remoteAddress ?? '');
    });
  } else {
    if (o.certFile === undefined || o.keyFile === undefined) {
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'a TLS listener needs a certificate and key');
    }
    const tls = createTlsServer(
      {
        cert: readFileSync(o.certFile),
        key: readFileSync(o.keyFile),
        // "TLS 1.3 or later" (§60.2): a TLS 1.2 (or older, or SSLv2-format) ClientHello is
        // refused by the handshake itself with a protocol_version alert; no NMTP is spoken.
        minVersion: 'TLSv1.3',
        // Node's own handshake timer too (it reports through 'tlsClientError' below).
        handshakeTimeout,
      },
      (s: TLSSocket) => {
        secure(s);
        accept(s, s.remoteAddress ?? '');
      },
    );
    // The TLS server wraps the TCP socket in its own 'connection' listener (registered
    // first); destroying the TCP socket here also ends the wrapper, before any handshake
    // octet is processed.
    tls.on('connection', (s: Socket) => void admit(s, true));
    // A failed or timed-out handshake (a plaintext client, TLS 1.2, garbage): node leaves
    // the socket open when this event has a listener — a handshake timeout would otherwise
    // hold the connection (and its count) forever. Close it.
    tls.on('tlsClientError', (_e: Error, s: TLSSocket) => s.destroy());
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
    connections: () => ({ open: raw.size, sessions: live.size, perIp: new Map(openPerIp) }),
    async close() {
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of live) s.destroy();
      for (const s of raw) s.destroy();
      await done;
    },
  };
}
