/**
 * A pool of SMTP connections to one server, built on nodemailer's SMTPConnection: what
 * nodemailer's pooled transport (lib/smtp-pool) did for the deliverer, without its Mail
 * object, MimeNode and per-message stream pipeline. The message goes to
 * `SMTPConnection.send` as one Buffer (or a stream for a large one), and SMTPConnection
 * writes the envelope parameters (SIZE, BODY=8BITMIME, SMTPUTF8, RET/ENVID/NOTIFY/ORCPT as
 * the server's EHLO allows) and dot-stuffs the data (its DataStream) exactly as it did under
 * the pooled transport; the connections are DotStuffConnections (data-stuff.ts), which give
 * DataStream a native path for CRLF text with the same output octets.
 *
 * Kept from smtp-pool (nodemailer 10.6, lib/smtp-pool/index.js and pool-resource.js):
 *   - at most `maxConnections` connections (default 5); a message waits for a free one;
 *   - a connection carries at most `maxMessages` messages (default 100), then a fresh one;
 *   - an idle connection is QUIT after `idleTimeout` ms (default 4 min, below the 5 minutes
 *     RFC 5321 §4.5.3.2.7 asks servers to wait);
 *   - AUTH after EHLO (and STARTTLS) when credentials are set and the server offers AUTH;
 *   - no RSET after a message the server accepted (smtp-pool sends none: the next MAIL FROM
 *     starts a new transaction, RFC 5321 §4.1.1.2); after a refused envelope or message
 *     (not 421) a RSET, and the connection is reused once it answers 2xx, closed otherwise;
 *   - a connection that failed (lost, timed out, a protocol error) or got a 421 is closed,
 *     never reused;
 *   - a message whose reused connection turns out dead before the server heard a byte of
 *     it (the server closed it while idle, or answered 421 to MAIL FROM) goes again over
 *     another connection: smtp-pool requeued it, bounded here by maxConnections + 1 tries;
 *   - close(): idle connections closed at once, a connection in a transaction when its
 *     transaction ends; messages still waiting fail.
 * Not kept: smtp-pool's rate limit and its requeue of a message whose fresh connection
 * closed before the greeting (here a failure the queue retries), neither of which the
 * deliverer used.
 */
import type { Readable } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { DotStuffConnection } from './data-stuff.ts';

export interface SmtpPoolOptions {
  /** Where and how to connect: host, port, name, TLS, timeouts (nodemailer's options). */
  readonly connection: SMTPConnection.Options;
  /** AUTH credentials; used when the server offers AUTH (as smtp-pool). */
  readonly auth?: { readonly user: string; readonly pass: string };
  readonly maxConnections?: number;
  readonly maxMessages?: number;
  /** Milliseconds an unused connection is kept; 0 or less: until close(). */
  readonly idleTimeout?: number;
}

/** The message: whole, or a stream made afresh for each try. */
export type PoolMessage = Buffer | (() => Readable);

export interface SmtpPool {
  /** One transaction; rejects with SMTPConnection's error (code, command, response …). */
  send(
    envelope: SMTPConnection.Envelope,
    message: PoolMessage,
  ): Promise<SMTPConnection.SentMessageInfo>;
  /** Closes idle connections now, busy ones when their transaction ends. */
  close(): void;
  /** Connections open or opening (for tests and metrics). */
  readonly size: number;
}

interface Conn {
  readonly smtp: SMTPConnection;
  /** Transactions tried on it (smtp-pool counts failed ones too). */
  messages: number;
  dead: boolean;
  idleTimer?: NodeJS.Timeout;
}

interface Waiter {
  resolve(c: Conn): void;
  reject(e: unknown): void;
}

/** nodemailer's errors.isTransientError: the connection ended rather than the message refused. */
function transient(e: SMTPConnection.SMTPError): boolean {
  return (
    e.responseCode === 421 ||
    e.code === 'ECONNECTION' ||
    e.code === 'ESOCKET' ||
    e.code === 'ETIMEDOUT'
  );
}

function poolClosed(): Error {
  return Object.assign(new Error('Connection pool was closed'), { code: 'ECONNECTION' });
}

export function smtpPool(o: SmtpPoolOptions): SmtpPool {
  const maxConnections = o.maxConnections ?? 5;
  const maxMessages = o.maxMessages ?? 100;
  const idleTimeout = o.idleTimeout ?? 4 * 60_000;
  // As smtp-pool: no AUTH when both are empty (an unset environment variable).
  const auth =
    o.auth === undefined || (o.auth.user === '' && o.auth.pass === '')
      ? undefined
      : { user: o.auth.user, credentials: { user: o.auth.user, pass: o.auth.pass } };

  /** Open or opening connections, counted against maxConnections. */
  const all = new Set<Conn>();
  /** Ready ones, the most recently used last. */
  const idle: Conn[] = [];
  const waiters: Waiter[] = [];
  /** Connections saying QUIT (no longer counted), closed at once by close(). */
  const retiring = new Set<SMTPConnection>();
  let closed = false;

  function drop(c: Conn): void {
    if (c.dead) return;
    c.dead = true;
    clearTimeout(c.idleTimer);
    all.delete(c);
    const i = idle.indexOf(c);
    if (i >= 0) idle.splice(i, 1);
    // A slot is free: the first waiting message gets a new connection.
    while (!closed && waiters.length > 0 && all.size < maxConnections) {
      const w = waiters.shift()!;
      open().then(w.resolve, w.reject);
    }
  }

  function retire(c: Conn): void {
    drop(c);
    if (c.smtp.destroyed) return;
    retiring.add(c.smtp);
    c.smtp.once('end', () => retiring.delete(c.smtp));
    c.smtp.quit();
  }

  function open(): Promise<Conn> {
    const smtp = new DotStuffConnection(o.connection);
    const c: Conn = { smtp, messages: 0, dead: false };
    all.add(c);
    // Whenever it ends or fails, it is out of the pool; an 'error' without a listener would
    // end the process.
    smtp.on('error', () => drop(c));
    smtp.once('end', () => drop(c));
    return new Promise<Conn>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown): void => {
        if (settled) return;
        settled = true;
        drop(c);
        smtp.close();
        reject(e);
      };
      // A failed connect (refused, a 4xx/5xx greeting, STARTTLS trouble) reports through
      // 'error', not the connect callback.
      smtp.on('error', fail);
      smtp.once('end', () =>
        fail(Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' })),
      );
      smtp.connect((err) => {
        if (err !== undefined && err !== null) return fail(err);
        const ready = (): void => {
          if (settled) return;
          settled = true;
          smtp.removeListener('error', fail);
          resolve(c);
        };
        if (auth === undefined || !smtp.allowsAuth) return ready();
        smtp.login(auth, (e) => (e === null ? ready() : fail(e)));
      });
    });
  }

  function acquire(): Promise<Conn> {
    if (closed) return Promise.reject(poolClosed());
    for (let c = idle.pop(); c !== undefined; c = idle.pop()) {
      clearTimeout(c.idleTimer);
      if (!c.dead && !c.smtp.destroyed) return Promise.resolve(c);
      drop(c);
    }
    if (all.size < maxConnections) return open();
    return new Promise<Conn>((resolve, reject) => waiters.push({ resolve, reject }));
  }

  function release(c: Conn): void {
    if (c.dead || c.smtp.destroyed) return drop(c);
    if (closed) {
      drop(c);
      c.smtp.close();
      return;
    }
    if (c.messages >= maxMessages) return retire(c);
    const w = waiters.shift();
    if (w !== undefined) return w.resolve(c);
    idle.push(c);
    if (idleTimeout > 0) {
      c.idleTimer = setTimeout(() => {
        const i = idle.indexOf(c);
        if (i >= 0) idle.splice(i, 1);
        retire(c);
      }, idleTimeout);
      c.idleTimer.unref();
    }
  }

  function sendOn(
    c: Conn,
    envelope: SMTPConnection.Envelope,
    message: PoolMessage,
  ): Promise<SMTPConnection.SentMessageInfo> {
    // Cleared so that afterwards it tells whether the server answered anything in this
    // transaction (see unsent below).
    c.smtp.lastServerResponse = false;
    return new Promise((resolve, reject) => {
      // A copy: SMTPConnection keeps its bookkeeping (mailError, accepted …) on the envelope
      // object, which a second try must not inherit.
      const e = { ...envelope };
      c.smtp.send(e, typeof message === 'function' ? message() : message, (err, info) => {
        c.messages++;
        if (err !== null && err !== undefined) reject(err);
        else resolve(info!);
      });
    });
  }

  /** RSET, then back to the pool; closed when the RSET is not answered 2xx. */
  function reset(c: Conn): Promise<void> {
    return new Promise<void>((resolve) => {
      // A connection that ends meanwhile never calls back (SMTPConnection drops its pending
      // reply handlers on close).
      c.smtp.once('end', resolve);
      c.smtp.reset((e) => {
        c.smtp.removeListener('end', resolve);
        if (e === null) release(c);
        else {
          drop(c);
          c.smtp.close();
        }
        resolve();
      });
    });
  }

  /**
   * Whether the server cannot have received any of the message: no reply at all in this
   * transaction, or the last one a 4xx/5xx (MAIL FROM, RCPT or DATA refused: the message is
   * written only after a 354). After a 354 or a 2xx it may have, and is not sent again.
   */
  function unsent(e: SMTPConnection.SMTPError, smtp: SMTPConnection): boolean {
    const last = smtp.lastServerResponse;
    return e.code !== 'EMESSAGE' && (last === false || /^[45]/.test(last));
  }

  async function send(
    envelope: SMTPConnection.Envelope,
    message: PoolMessage,
  ): Promise<SMTPConnection.SentMessageInfo> {
    for (let tries = 1; ; tries++) {
      const c = await acquire();
      const reused = c.messages > 0;
      try {
        const info = await sendOn(c, envelope, message);
        release(c);
        return info;
      } catch (err) {
        const e = err as SMTPConnection.SMTPError;
        if (
          (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') &&
          e.responseCode !== 421 &&
          !c.smtp.destroyed
        ) {
          // Refused, the connection itself is fine: RSET (RFC 5321 §4.1.1.5), then reuse it.
          // smtp-pool answers before the RSET's reply; waiting for it keeps the next message
          // on this connection instead of opening another meanwhile.
          await reset(c);
          throw err;
        }
        drop(c);
        c.smtp.close();
        if (!(reused && transient(e) && unsent(e, c.smtp) && tries <= maxConnections)) throw err;
      }
    }
  }

  return {
    send,
    close(): void {
      closed = true;
      for (const c of [...idle]) {
        drop(c);
        c.smtp.close();
      }
      for (const s of retiring) s.close();
      retiring.clear();
      for (const w of waiters.splice(0)) w.reject(poolClosed());
    },
    get size() {
      return all.size;
    },
  };
}
