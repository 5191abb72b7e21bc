/**
 * The admin endpoint (node:http): GET or HEAD of
 *   /metrics  Prometheus text exposition;
 *   /healthz  200 "ok" while the process runs (liveness: restart me if this fails);
 *   /readyz   200 and the checks as JSON when every check passes, else 503 (readiness: send
 *             me no traffic), so a load balancer drains a gateway whose queue cannot store.
 * Anything else is 404 (405 for another method on those paths).
 *
 * It listens on loopback by default (config `admin.listen`) and is bounded like any other
 * listener: no request body is ever read (a request that has one is answered and the
 * connection closed), headers must arrive within a few seconds, a slow check cannot hold a
 * request for long, and close() ends idle keep-alive connections so a process can exit.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { NmtpError } from '../../core/errors/index.ts';
import { bounded } from './metrics.ts';

export interface Readiness {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, boolean>>;
}

export interface AdminOptions {
  /** HOST:PORT (an IPv6 literal in brackets); port 0 = any free port. */
  readonly listen: string;
  readonly metrics: { text(): Promise<string>; readonly contentType: string };
  readonly ready: () => Promise<Readiness>;
  /** Told about a failed /metrics or /readyz (the client gets 500 or 503). */
  readonly onError?: (e: unknown) => void;
  /** How long /metrics or /readyz may take (ms; default 10000). */
  readonly timeout?: number;
  /**
   * The queue, for `nmtp-gateway queue` while the gateway runs (the embedded backend's
   * directory has one owner): GET /queue, GET /queue/ID, POST /queue/ID/retry,
   * DELETE /queue/ID. Loopback only, as the listener is by default.
   */
  readonly queue?: AdminQueue;
}

/** What the queue routes need of a queue backend (src/queue/port.ts). */
export interface AdminQueue {
  list(): Promise<unknown[]>;
  get(id: string): Promise<unknown>;
  retry(id: string): Promise<boolean>;
  delete(id: string): Promise<boolean>;
}

export interface AdminServer {
  readonly port: number;
  /** Stops listening, ends idle keep-alive connections, resolves when every one is closed. */
  close(): Promise<void>;
}

/**
 * A `ready` function from named checks, run in parallel: a check that throws or does not
 * answer within `timeoutMs` counts as failed. E.g. `readiness({ queue: () => q.ready() })`.
 */
export function readiness(
  checks: Readonly<Record<string, () => Promise<boolean>>>,
  timeoutMs = 5000,
): () => Promise<Readiness> {
  return async () => {
    const names = Object.keys(checks);
    const results = await Promise.all(
      names.map((n) =>
        bounded(checks[n]!, timeoutMs).then(
          (ok) => ok === true,
          () => false,
        ),
      ),
    );
    const out: Record<string, boolean> = {};
    names.forEach((n, i) => (out[n] = results[i]!));
    return { ok: results.every(Boolean), checks: out };
  };
}

/** Header bytes a request may send: the endpoint's paths are short, scrapers send little. */
const MAX_HEADER_SIZE = 8 * 1024;
/** How long close() lets a request in progress finish before its connection is cut. */
const CLOSE_GRACE_MS = 2000;

export async function startAdmin(o: AdminOptions): Promise<AdminServer> {
  const { host, port } = splitHostPort(o.listen);
  const timeout = o.timeout ?? 10_000;
  let closing = false;

  const server = createServer({ maxHeaderSize: MAX_HEADER_SIZE }, (req, res) => {
    const socket = req.socket;
    busy.add(socket);
    res.once('close', () => {
      busy.delete(socket);
      // Answered while closing: this connection takes no further request.
      if (closing) socket.end();
    });
    void handle(req, res).catch((e: unknown) => {
      o.onError?.(e);
      if (!res.headersSent) send(req, res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  server.headersTimeout = 5000;
  server.requestTimeout = timeout + 5000;
  server.keepAliveTimeout = 5000;
  server.maxHeadersCount = 64;
  server.maxRequestsPerSocket = 1000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (o.queue !== undefined && (path === '/queue' || path?.startsWith('/queue/') === true)) {
      return queueRoute(req, res, o.queue, path);
    }
    const known = path === '/metrics' || path === '/healthz' || path === '/readyz';
    // A body is never read: say so by closing the connection after the answer, rather than
    // letting node drain whatever the client sends.
    if (hasBody(req)) res.setHeader('Connection', 'close');
    if (!known) return send(req, res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (path === '/healthz') return send(req, res, 200, 'text/plain; charset=utf-8', 'ok\n');
    if (path === '/metrics') {
      const text = await bounded(() => o.metrics.text(), timeout);
      return send(req, res, 200, o.metrics.contentType, text);
    }
    let r: Readiness;
    try {
      r = await bounded(o.ready, timeout);
    } catch (e) {
      o.onError?.(e);
      r = { ok: false, checks: {} };
    }
    const ok = r.ok && Object.values(r.checks).every(Boolean);
    const body = `${JSON.stringify({ ok, checks: r.checks })}\n`;
    return send(req, res, ok ? 200 : 503, 'application/json', body);
  }

  async function queueRoute(
    req: IncomingMessage,
    res: ServerResponse,
    q: AdminQueue,
    path: string,
  ): Promise<void> {
    const json = (status: number, v: unknown): void =>
      send(req, res, status, 'application/json', `${JSON.stringify(v)}\n`);
    const m = /^\/queue(?:\/([A-Za-z0-9_-]{1,64})(\/retry)?)?$/.exec(path);
    if (m === null) return send(req, res, 404, 'text/plain; charset=utf-8', 'not found\n');
    const [, id, retry] = m;
    const method = req.method ?? 'GET';
    const allow =
      id === undefined ? 'GET, HEAD' : retry !== undefined ? 'POST' : 'GET, HEAD, DELETE';
    if (!allow.split(', ').includes(method)) {
      res.setHeader('Allow', allow);
      return send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (id === undefined) return json(200, await q.list());
    if (retry !== undefined) return (await q.retry(id)) ? json(200, { id }) : json(404, { id });
    if (method === 'DELETE') return (await q.delete(id)) ? json(200, { id }) : json(404, { id });
    const s = await q.get(id);
    return s === undefined ? json(404, { id }) : json(200, s);
  }

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    type: string,
    body: string,
  ): void {
    const bytes = Buffer.from(body, 'utf8');
    if (closing) res.setHeader('Connection', 'close');
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': bytes.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    // HEAD: the same headers, Content-Length included, and no body.
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  const sockets = new Set<Socket>();
  /** Sockets with a request being answered; the others are idle (or never sent one). */
  const busy = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  // Malformed requests, oversized or late headers: node answers 400, 431 or 408 and closes.

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;

  let closed: Promise<void> | undefined;
  return {
    port: bound,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        // Idle keep-alive connections, and connections that never sent a request, go now
        // (node's closeIdleConnections() leaves the latter until headersTimeout).
        for (const s of sockets) if (!busy.has(s)) s.destroy();
        // A scrape in progress gets its answer (with Connection: close); one that hangs
        // does not keep the process alive.
        const t = setTimeout(() => {
          server.closeAllConnections();
          for (const s of sockets) s.destroy();
        }, CLOSE_GRACE_MS);
        t.unref();
        server.once('close', () => clearTimeout(t));
      });
      return closed;
    },
  };
}

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** "host:port" as the config validated it; an IPv6 literal loses its brackets. */
function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = s.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || host === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `admin listen "${s}": expected HOST:PORT`);
  }
  return { host, port };
}
